//! Statistics of float columns that leave NaN out.
//!
//! Parquet leaves NaN out of a float column's minimum and maximum, yet DataFusion reads them
//! as exact: a file whose minimum equals its maximum is taken to hold that one value, and its
//! column is read as a constant. A file of amounts `NaN, 10.0, 10.0` was read as `10.0` three
//! times (every model and feature saw the NaN as 10.0, with exit 0), and `MIN`/`MAX` answered
//! from statistics would miss it. [`InexactFloatStatistics`] marks the minimum and maximum of
//! every float column of every scanned file as inexact before any other rule reads them: the
//! column is then read, and pruning by row group statistics, which only ever keeps or skips
//! data, is unchanged.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::Result;
use datafusion::common::Statistics;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// Marks float columns' minima and maxima inexact in every file scan. The first physical
/// optimizer rule: later ones (statistics-answered aggregates) read them.
#[derive(Debug, Default)]
pub(crate) struct InexactFloatStatistics;

impl PhysicalOptimizerRule for InexactFloatStatistics {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(scan) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
                return Ok(Transformed::no(node));
            };
            let floats = float_columns(config.file_schema());
            if floats.is_empty() {
                return Ok(Transformed::no(node));
            }
            let mut config = config.clone();
            config.file_groups = (config.file_groups.into_iter())
                .map(|group| inexact_group(group, &floats))
                .collect();
            Ok(Transformed::yes(DataSourceExec::from_data_source(config)))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "segflow_inexact_float_statistics"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The places of a file schema's float columns (statistics list the file's columns first).
fn float_columns(schema: &Schema) -> Vec<usize> {
    let float =
        |t: &DataType| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    (schema.fields().iter().enumerate())
        .filter(|(_, f)| float(f.data_type()))
        .map(|(i, _)| i)
        .collect()
}

fn inexact_group(mut group: FileGroup, floats: &[usize]) -> FileGroup {
    let statistics = group.statistics_mut().map(|s| {
        inexact(s, floats);
        Arc::new(s.clone())
    });
    let files = (group.into_inner().into_iter())
        .map(|mut file| {
            file.statistics = file.statistics.map(|s| {
                let mut s = Arc::unwrap_or_clone(s);
                inexact(&mut s, floats);
                Arc::new(s)
            });
            file
        })
        .collect();
    match statistics {
        Some(statistics) => FileGroup::new(files).with_statistics(statistics),
        None => FileGroup::new(files),
    }
}

fn inexact(statistics: &mut Statistics, floats: &[usize]) {
    for &i in floats {
        if let Some(column) = statistics.column_statistics.get_mut(i) {
            column.min_value = column.min_value.clone().to_inexact();
            column.max_value = column.max_value.clone().to_inexact();
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    use super::*;

    /// A file of one NaN among equal values: its statistics say min = max = 10.
    fn write_file(dir: &std::path::Path) -> std::path::PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![f64::NAN, 10.0, 10.0])),
            ],
        )
        .unwrap();
        let path = dir.join("a.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut writer =
            datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    async fn amounts(ctx: &SessionContext, path: &std::path::Path) -> Vec<String> {
        let path = path.to_string_lossy();
        ctx.register_parquet("t", path.as_ref(), ParquetReadOptions::default())
            .await
            .unwrap();
        let batches = ctx
            .sql("SELECT CAST(amount AS VARCHAR) AS a FROM t ORDER BY k")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
        text.to_string().lines().map(str::to_string).collect()
    }

    fn context(rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) -> SessionContext {
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        SessionContext::new_with_state(state)
    }

    #[tokio::test]
    async fn a_nan_among_equal_values_is_read_as_nan() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path());
        let rules = crate::engine::physical_optimizer_rules();
        let read = amounts(&context(rules), &path).await;
        assert_eq!(read[3..6], ["| NaN  |", "| 10.0 |", "| 10.0 |"], "{read:?}");
        // DataFusion's rules alone read the file as a column of 10.
        let theirs = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        let read = amounts(&context(theirs), &path).await;
        assert_eq!(read[3..6], ["| 10.0 |", "| 10.0 |", "| 10.0 |"], "{read:?}");
    }
}
