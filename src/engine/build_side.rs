//! Which input of a hash join is held in memory.
//!
//! A hash join builds a table of its left input and streams its right input through it.
//! DataFusion swaps the two when statistics say the left is the larger; when a side has none —
//! a CSV source, or the result of another join, for which DataFusion estimates nothing — it
//! keeps the order of the SQL. A profile is usually written `customers LEFT JOIN features LEFT
//! JOIN …`, so every join of the chain built the customers' whole rows, all their text columns
//! copied together, once per join: at 1M customers 5 s of CPU in a 10 s model. When the left
//! side's size is unknown, [`BuildKnownSide`] builds the right side and streams the left through
//! it: the right side's size is then known (a Parquet table: a source, a feature table, a
//! materialized model, or an aggregate of one), or neither is and the SQL's order says what to
//! build, as in DuckDB, which builds the right of a join: the table a query is about comes
//! first, what is looked up for it is joined to it. Joins whose left side has a size are left
//! to DataFusion, and so are joins under `--memory-limit` (sort-merge joins, which build
//! nothing).

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// Swaps a partitioned hash join's inputs when its left input's size is unknown. Runs right
/// after DataFusion's own join selection, before distribution and sort order are enforced on
/// the result.
#[derive(Debug, Default)]
pub(crate) struct BuildKnownSide;

impl BuildKnownSide {
    /// The name of the DataFusion rule this one follows.
    pub(crate) const AFTER: &'static str = "join_selection";
}

impl PhysicalOptimizerRule for BuildKnownSide {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if *join.partition_mode() != PartitionMode::Partitioned
                || !join.join_type().supports_swap()
            {
                return Ok(Transformed::no(node));
            }
            let rows = |side: &Arc<dyn ExecutionPlan>| {
                StatisticsContext::new()
                    .compute(side.as_ref(), &StatisticsArgs::new())
                    .map(|s| s.num_rows.get_value().copied())
            };
            if rows(join.left())?.is_none() {
                return Ok(Transformed::yes(
                    join.swap_inputs(PartitionMode::Partitioned)?,
                ));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "segflow_build_known_side"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

    use super::*;

    /// A CSV of customers (no statistics) and a Parquet table of their features (row counts in
    /// its footer), joined as a profile joins them; the plan's first hash join, as EXPLAIN
    /// shows it.
    async fn first_hash_join(rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("customers.csv");
        let rows: String = (0..50).map(|i| format!("{i},name {i}\n")).collect();
        std::fs::write(&csv, format!("customer_id,name\n{rows}")).unwrap();
        let ctx = SessionContext::new();
        ctx.sql("SELECT 1 AS customer_id, 10 AS purchases UNION ALL SELECT 2, 20")
            .await
            .unwrap()
            .write_parquet(
                dir.path().join("features.parquet").to_str().unwrap(),
                Default::default(),
                None,
            )
            .await
            .unwrap();
        // As at scale: no side small enough to be collected whole into every partition.
        let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
        config
            .options_mut()
            .optimizer
            .hash_join_single_partition_threshold = 0;
        config
            .options_mut()
            .optimizer
            .hash_join_single_partition_threshold_rows = 0;
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_csv("customers", csv.to_str().unwrap(), CsvReadOptions::new())
            .await
            .unwrap();
        let features = dir.path().join("features.parquet");
        ctx.register_parquet(
            "features",
            features.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        let plan = ctx
            .sql(
                "SELECT c.customer_id, c.name, f.purchases FROM customers c \
                  LEFT JOIN features f ON f.customer_id = c.customer_id",
            )
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        text.lines()
            .find(|l| l.contains("HashJoinExec"))
            .unwrap_or_else(|| panic!("no hash join in\n{text}"))
            .trim()
            .to_string()
    }

    #[tokio::test]
    async fn a_left_join_builds_the_side_whose_size_is_known() {
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        let plain = first_hash_join(rules.clone()).await;
        assert!(
            plain.contains("mode=Partitioned, join_type=Left,"),
            "{plain}"
        );
        let after = rules
            .iter()
            .position(|r| r.name() == BuildKnownSide::AFTER)
            .unwrap();
        rules.insert(after + 1, Arc::new(BuildKnownSide));
        let swapped = first_hash_join(rules).await;
        assert!(
            swapped.contains("mode=Partitioned, join_type=Right,"),
            "{swapped}"
        );
    }
}
