//! `ROW_NUMBER()` per key in one pass over sorted input.
//!
//! DataFusion runs `ROW_NUMBER() OVER (PARTITION BY k ORDER BY …)` in its general windowing
//! operator, which keeps state for every PARTITION BY value and slices each batch per value:
//! with one partition per customer that cost about a second per million rows, most of a ranking
//! query. segflow ranks per customer several times a run (each offer round ranks every
//! customer's candidates, `ROW_NUMBER() … = 1` picks each customer's current address). When every
//! function of a windowing operator is `ROW_NUMBER` and its input arrives sorted by the
//! PARTITION BY keys (DataFusion sorts it so), the numbers are a running count that restarts
//! where the key changes: [`RowNumberExec`] finds those places with arrow's `partition` kernel
//! and carries the count across batches. Ties in the ORDER BY are numbered in arrival order,
//! as the general operator numbers them.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::partition;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::config::ConfigOptions;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::window::StandardWindowExpr;
use datafusion::physical_expr::{PhysicalExpr, physical_exprs_equal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::ReplaceChildrenOptions;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
};
use futures::{Stream, StreamExt};

/// Replaces windowing operators that only number rows per key with [`RowNumberExec`].
#[derive(Debug, Default)]
pub(crate) struct RowNumbers;

impl PhysicalOptimizerRule for RowNumbers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let replaced = node
                .downcast_ref::<BoundedWindowAggExec>()
                .and_then(RowNumberExec::replacing);
            Ok(match replaced {
                Some(exec) => Transformed::yes(Arc::new(exec) as Arc<dyn ExecutionPlan>),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "segflow_row_numbers"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Numbers the rows of each run of equal PARTITION BY keys 1, 2, 3, … in arrival order; one
/// output column per `ROW_NUMBER` of the windowing operator it replaces, which keeps the
/// required input order and distribution, schema and properties.
#[derive(Debug)]
pub(crate) struct RowNumberExec {
    window: Arc<BoundedWindowAggExec>,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    metrics: ExecutionPlanMetricsSet,
}

impl RowNumberExec {
    /// The replacement of `window`, when each of its functions is `ROW_NUMBER` over the same
    /// PARTITION BY and ORDER BY and its input is sorted by them.
    fn replacing(window: &BoundedWindowAggExec) -> Option<Self> {
        let exprs = window.window_expr();
        let first = exprs.first()?;
        let numbers_only = exprs.iter().all(|expr| {
            is_row_number(expr.as_any())
                && physical_exprs_equal(expr.partition_by(), first.partition_by())
                && expr.order_by() == first.order_by()
        });
        let input_columns = window.input().schema().fields().len();
        let output_types_fit = window.schema().fields()[input_columns..]
            .iter()
            .all(|f| f.data_type() == &DataType::UInt64);
        let sorted = window.input_order_mode == InputOrderMode::Sorted;
        let observed = window.state_observer().is_some();
        (numbers_only && output_types_fit && sorted && !observed).then(|| Self {
            window: Arc::new(window.clone()),
            keys: first.partition_by().to_vec(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

fn is_row_number(expr: &dyn std::any::Any) -> bool {
    expr.downcast_ref::<StandardWindowExpr>()
        .and_then(|e| {
            e.get_standard_func_expr()
                .as_any()
                .downcast_ref::<WindowUDFExpr>()
        })
        .is_some_and(|f| f.fun().name() == "row_number")
}

impl DisplayAs for RowNumberExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let keys: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        write!(f, "RowNumberExec: partition_by=[{}]", keys.join(", "))
    }
}

impl ExecutionPlan for RowNumberExec {
    fn name(&self) -> &str {
        "RowNumberExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.window.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.window.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.window.apply_expressions(f)
    }

    fn input_distribution_requirements(
        &self,
    ) -> datafusion::physical_plan::InputDistributionRequirements {
        self.window.input_distribution_requirements()
    }

    fn required_input_ordering(
        &self,
    ) -> Vec<Option<datafusion::physical_expr::OrderingRequirements>> {
        self.window.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let window = Arc::clone(&self.window).replace_children(children, options)?;
        window
            .downcast_ref::<BoundedWindowAggExec>()
            .and_then(RowNumberExec::replacing)
            .map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>)
            .ok_or_else(|| {
                DataFusionError::Internal("RowNumberExec: new input is not sorted by key".into())
            })
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = ReplaceChildrenOptions::new(
            datafusion::physical_plan::execution_plan::ChildrenPropertiesMode::Recompute,
        );
        self.replace_children(children, options)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.window.input().execute(partition, context)?;
        let key_types = self
            .keys
            .iter()
            .map(|k| Ok(SortField::new(k.data_type(&input.schema())?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::pin(RowNumberStream {
            input,
            schema: self.window.schema(),
            keys: self.keys.clone(),
            numbers: self.window.window_expr().len(),
            converter: RowConverter::new(key_types)?,
            last: None,
            count: 0,
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

struct RowNumberStream {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// How many `ROW_NUMBER` columns to append (all equal).
    numbers: usize,
    converter: RowConverter,
    /// The key of the previous batch's last row, and the number it was given.
    last: Option<OwnedRow>,
    count: u64,
    baseline: BaselineMetrics,
}

impl RowNumberStream {
    fn number(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let keys = self
            .keys
            .iter()
            .map(|k| k.evaluate(&batch)?.into_array(rows))
            .collect::<Result<Vec<ArrayRef>>>()?;
        // The lengths of the runs of equal keys in this batch.
        let runs: Vec<usize> = if keys.is_empty() {
            vec![rows]
        } else {
            partition(&keys)?.ranges().iter().map(|r| r.len()).collect()
        };
        let key_at = |converter: &RowConverter, row: usize| {
            let one: Vec<ArrayRef> = keys.iter().map(|k| k.slice(row, 1)).collect();
            converter.convert_columns(&one).map(|r| r.row(0).owned())
        };
        // Without PARTITION BY the input is one partition and the count never restarts.
        let continues = keys.is_empty() || self.last == Some(key_at(&self.converter, 0)?);
        if !continues {
            self.count = 0;
        }
        let mut numbers = Vec::with_capacity(rows);
        for (i, run) in runs.into_iter().enumerate() {
            if i > 0 {
                self.count = 0;
            }
            numbers.extend((self.count + 1)..=(self.count + run as u64));
            self.count += run as u64;
        }
        if !keys.is_empty() {
            self.last = Some(key_at(&self.converter, rows - 1)?);
        }
        let numbers: ArrayRef = Arc::new(UInt64Array::from(numbers));
        let mut columns = batch.columns().to_vec();
        columns.extend(std::iter::repeat_n(numbers, self.numbers));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl Stream for RowNumberStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.poll_next_unpin(cx);
        let this = &mut *self;
        let result = match polled {
            Poll::Ready(Some(Ok(batch))) => {
                let elapsed = this.baseline.elapsed_compute().clone();
                let timer = elapsed.timer();
                let numbered = this.number(batch);
                timer.done();
                Poll::Ready(Some(numbered))
            }
            other => other,
        };
        this.baseline.record_poll(result)
    }
}

impl RecordBatchStream for RowNumberStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    /// 200 rows in batches of 7 — keys run across batch boundaries — with NULL keys, over two
    /// target partitions.
    fn context(rule: bool) -> SessionContext {
        let config = SessionConfig::new()
            .with_batch_size(7)
            .with_target_partitions(2);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(RowNumbers));
        }
        let ctx = SessionContext::new_with_state(state.build());
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer", DataType::Int64, true),
            Field::new("offer", DataType::Utf8, true),
            Field::new("score", DataType::Int64, false),
        ]));
        let batches = (0..200i64)
            .collect::<Vec<_>>()
            .chunks(7)
            .map(|rows| {
                let customer =
                    Int64Array::from_iter(rows.iter().map(|i| (i % 13 != 0).then_some(i * 7 % 23)));
                let offer = StringArray::from_iter(
                    rows.iter()
                        .map(|i| (i % 5 != 0).then(|| format!("o{}", i % 3))),
                );
                let score = Int64Array::from_iter_values(rows.iter().copied());
                let columns: Vec<ArrayRef> =
                    vec![Arc::new(customer), Arc::new(offer), Arc::new(score)];
                RecordBatch::try_new(schema.clone(), columns).unwrap()
            })
            .collect();
        let table = MemTable::try_new(schema, vec![batches]).unwrap();
        ctx.register_table("candidates", Arc::new(table)).unwrap();
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let plan = displayable(plan.as_ref()).indent(true).to_string();
        let rows = pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string();
        (plan, rows)
    }

    #[tokio::test]
    async fn numbers_rows_as_datafusion_does() {
        let queries = [
            // One key column, NULL keys included, numbers used to pick the best rows.
            "SELECT * FROM (SELECT customer, score, ROW_NUMBER() OVER (PARTITION BY customer \
             ORDER BY score DESC) AS rn FROM candidates) WHERE rn <= 2 ORDER BY customer, score",
            // Two key columns, two numbers over the same window.
            "SELECT customer, offer, score, \
             ROW_NUMBER() OVER (PARTITION BY customer, offer ORDER BY score) AS a, \
             ROW_NUMBER() OVER (PARTITION BY customer, offer ORDER BY score) AS b \
             FROM candidates ORDER BY customer, offer, score",
            // No PARTITION BY: one count over all rows.
            "SELECT score, ROW_NUMBER() OVER (ORDER BY score DESC) AS rn FROM candidates \
             ORDER BY score",
        ];
        for sql in queries {
            let (plan, rows) = run(&context(true), sql).await;
            let (general, expected) = run(&context(false), sql).await;
            assert!(plan.contains("RowNumberExec"), "{plan}");
            assert!(general.contains("BoundedWindowAggExec"), "{general}");
            assert_eq!(rows, expected, "{sql}");
        }
    }

    #[tokio::test]
    async fn leaves_other_window_functions_alone() {
        let sql = "SELECT customer, score, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY score) \
                   AS rn, SUM(score) OVER (PARTITION BY customer ORDER BY score) AS running \
                   FROM candidates ORDER BY customer, score";
        let (plan, rows) = run(&context(true), sql).await;
        let (_, expected) = run(&context(false), sql).await;
        assert!(!plan.contains("RowNumberExec"), "{plan}");
        assert_eq!(rows, expected);
    }
}
