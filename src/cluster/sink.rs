//! Writing a query's result on a cluster, every partition where it is computed.
//!
//! DataFusion writes Parquet through one operator that takes its input as a single partition:
//! on Ballista the last stage gathers every row of the result into one task, and that task
//! fetches each partition from the executor that computed it whole, into memory (Ballista's
//! shuffle reader buffers a remote partition before it yields a row). Writing the sorted
//! `suppressed` table of a million customers, one executor grew from 3 to 10 GiB, and was
//! killed by the system on the next run. [`PartitionedWrites`] plans a folder write instead as
//! [`PartitionSinkExec`]: the task that computes a partition writes it to a file of its own
//! (each sorted, if the query sorts), and only the row counts are gathered. The run's process
//! merges the sorted files as it reads them back, and checks that the files hold as many rows
//! as the counts say (`engine::execute`): a task Ballista runs again after losing an
//! executor writes its partition again.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::config::{ConfigOptions, TableParquetOptions};
use datafusion::datasource::file_format::parquet::ParquetSink;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::{FileOutputMode, FileSink, FileSinkConfig};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, Partitioning, PhysicalExpr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion_proto::physical_plan::{
    AsExecutionPlan, PhysicalExtensionCodec, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::PhysicalPlanNode;

/// Plans a Parquet write into a folder as one file per partition of its input, written where
/// the partition is computed: a scheduler's last physical optimizer rule.
#[derive(Debug, Default)]
pub(super) struct PartitionedWrites;

impl PhysicalOptimizerRule for PartitionedWrites {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(write) = plan.downcast_ref::<DataSinkExec>() else {
            return Ok(plan);
        };
        let Some(sink) = parquet_sink(write) else {
            return Ok(plan);
        };
        let config = sink.config();
        let single = match config.table_paths.first() {
            Some(path) => config.file_output_mode.single_file_output(path),
            None => true,
        };
        if single || !config.table_partition_cols.is_empty() {
            return Ok(plan);
        }
        // What gathers the partitions for the one writer: each partition is written as it is,
        // sorted if the query sorts.
        let mut input = Arc::clone(write.input());
        let mut order = write.sort_order().clone();
        if let Some(merge) = input.downcast_ref::<SortPreservingMergeExec>() {
            order = Some(merge.expr().clone().into());
            input = Arc::clone(merge.input());
        } else if let Some(gather) = input.downcast_ref::<CoalescePartitionsExec>() {
            input = Arc::clone(gather.input());
        }
        let options = sink.parquet_options().clone();
        let written = PartitionSinkExec::new(input, config.clone(), options, order);
        Ok(Arc::new(CoalescePartitionsExec::new(Arc::new(written))))
    }

    fn name(&self) -> &str {
        "segflow_partitioned_writes"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Writes each partition of its input into its own Parquet file in the sink's folder, and
/// yields the partition's row count (the one-column `count` batch of DataFusion's writer).
#[derive(Debug)]
pub(super) struct PartitionSinkExec {
    input: Arc<dyn ExecutionPlan>,
    /// The folder write's.
    config: FileSinkConfig,
    options: TableParquetOptions,
    /// The order each partition is written in. Not required of the input: Ballista enforces
    /// requirements again after it cuts a plan into stages, and a union branch that comes from
    /// another stage would get a sort of its own, which Ballista then runs in every task of the
    /// stage (rows written twice, others not at all). A partition that is not known to be in
    /// this order when it runs is sorted here ([`PartitionSinkExec::execute`]).
    order: Option<LexRequirement>,
    properties: Arc<PlanProperties>,
}

impl PartitionSinkExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        config: FileSinkConfig,
        options: TableParquetOptions,
        order: Option<LexRequirement>,
    ) -> Self {
        let partitions = input.output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            config,
            options,
            order,
            properties: Arc::new(properties),
        }
    }

    /// The sink of partition `partition` of the task `task`: the folder's
    /// `part-TTTTT-PPP.parquet`. Ballista numbers each task's partitions from 0, so files are
    /// named by task as well (as Ballista names its own shuffle files).
    fn sink_of(&self, task: usize, partition: usize) -> Result<ParquetSink> {
        let mut config = self.config.clone();
        let folder = config
            .table_paths
            .first()
            .ok_or_else(|| DataFusionError::Internal("a write with no path".into()))?;
        let file = format!(
            "{}/part-{task:05}-{partition:03}.parquet",
            folder.as_str().trim_end_matches('/'),
        );
        config.table_paths = vec![ListingTableUrl::parse(file)?];
        config.file_output_mode = FileOutputMode::SingleFile;
        Ok(ParquetSink::new(config, self.options.clone()))
    }
}

/// The Parquet writer of a write, if it is one.
fn parquet_sink(write: &DataSinkExec) -> Option<&ParquetSink> {
    let sink: &dyn std::any::Any = write.sink();
    sink.downcast_ref::<ParquetSink>()
}

/// Whether partition `partition` of `plan` comes in `order`: asked of the branch of a union
/// that computes it, since a union is sorted only where all its branches are.
fn sorted(plan: &Arc<dyn ExecutionPlan>, partition: usize, order: &LexRequirement) -> Result<bool> {
    if let Some(union) = plan.downcast_ref::<UnionExec>() {
        let mut partition = partition;
        for branch in union.inputs() {
            let count = branch.output_partitioning().partition_count();
            if partition < count {
                return sorted(branch, partition, order);
            }
            partition -= count;
        }
    }
    plan.equivalence_properties()
        .ordering_satisfy_requirement(order.clone())
}

/// The number of the task running on an executor, from the name Ballista gives it
/// (`TID <job>/<stage>.<attempt>/<task>.<attempt>`); 0 elsewhere.
fn task_number(context: &TaskContext) -> usize {
    context
        .task_id()
        .and_then(|name| {
            let (_, task) = name.rsplit_once('/')?;
            task.split('.').next()?.parse().ok()
        })
        .unwrap_or_default()
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DisplayAs for PartitionSinkExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let folder = self.config.table_paths.first().map(ListingTableUrl::as_str);
        write!(
            f,
            "PartitionSinkExec: folder={}",
            folder.unwrap_or_default()
        )
    }
}

impl ExecutionPlan for PartitionSinkExec {
    fn name(&self) -> &str {
        "PartitionSinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(
                input,
                self.config.clone(),
                self.options.clone(),
                self.order.clone(),
            ))),
            _ => Err(DataFusionError::Internal(
                "PartitionSinkExec has one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = match &self.order {
            Some(order) if !sorted(&self.input, partition, order)? => {
                let sort = SortExec::new(order.clone().into(), Arc::clone(&self.input))
                    .with_preserve_partitioning(true);
                sort.execute(partition, Arc::clone(&context))?
            }
            _ => self.input.execute(partition, Arc::clone(&context))?,
        };
        let sink = self.sink_of(task_number(&context), partition)?;
        let schema = count_schema();
        let counted = Arc::clone(&schema);
        let written = futures::stream::once(async move {
            let rows = DataSink::write_all(&sink, input, &context).await?;
            let counts = Arc::new(UInt64Array::from(vec![rows]));
            Ok(RecordBatch::try_new(counted, vec![counts])?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, written)))
    }
}

/// Ballista's codec for the plans it sends its executors, and [`PartitionSinkExec`].
#[derive(Debug, Default)]
pub(super) struct SegflowCodec {
    ballista: ballista_core::serde::BallistaPhysicalExtensionCodec,
}

/// What a [`PartitionSinkExec`]'s encoding starts with: no encoding of Ballista's operators
/// (Protocol Buffers messages) starts with these bytes.
const PARTITION_SINK: &[u8] = b"segflow:partition-sink:";

impl PhysicalExtensionCodec for SegflowCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(encoded) = buf.strip_prefix(PARTITION_SINK) else {
            return self.ballista.try_decode(buf, inputs, ctx, proto_converter);
        };
        let [input] = inputs else {
            return Err(DataFusionError::Internal(
                "PartitionSinkExec has one input".into(),
            ));
        };
        // The sink travels as the write DataFusion itself encodes, of an empty input.
        let write = PhysicalPlanNode::try_decode(encoded)?.try_into_physical_plan(ctx, self)?;
        let write = write
            .downcast_ref::<DataSinkExec>()
            .ok_or_else(|| DataFusionError::Internal("not a Parquet write".into()))?;
        let sink = parquet_sink(write)
            .ok_or_else(|| DataFusionError::Internal("not a Parquet write".into()))?;
        Ok(Arc::new(PartitionSinkExec::new(
            Arc::clone(input),
            sink.config().clone(),
            sink.parquet_options().clone(),
            write.sort_order().clone(),
        )))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(written) = node.downcast_ref::<PartitionSinkExec>() else {
            return self.ballista.try_encode(node, buf, proto_converter);
        };
        let nothing = Arc::new(EmptyExec::new(written.input.schema()));
        let sink = ParquetSink::new(written.config.clone(), written.options.clone());
        let write = DataSinkExec::new(nothing, Arc::new(sink), written.order.clone());
        buf.extend_from_slice(PARTITION_SINK);
        PhysicalPlanNode::try_from_physical_plan(Arc::new(write), self)?.try_encode(buf)
    }
}
