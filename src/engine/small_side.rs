//! Joins to a small table under a memory limit.
//!
//! Under `--memory-limit` segflow asks DataFusion for sort-merge joins, whose sorts spill, instead
//! of hash joins, whose build side cannot. DataFusion then plans every equi-join as a sort-merge
//! join, even one whose other input is a handful of rows: a feature keeps its per-day partials
//! only for keys not erased, a join with the erasure list (a few rows), which sorted each month
//! of partials by the SHA-256 of its key — at 1M customers 8.8M rows and 3 s a month, twelve
//! times in a first run, and the largest memory outside the pool's account. Without a limit
//! DataFusion builds a hash table of such an input, collected whole once for every partition;
//! [`CollectSmallSide`] does the same under a limit for an input whose row count is known
//! exactly — a Parquet table read whole, a list of values — and is under the number of rows at
//! which DataFusion collects a side whole (`hash_join_single_partition_threshold_rows`, 128k),
//! and under its byte size (`hash_join_single_partition_threshold`, 1 MB) when that is known
//! too. An estimate is not enough: DataFusion estimates the output of a filter or a join from
//! column statistics, and at 10M customers it took anti joins of 12M rows for small ones;
//! collected, they held 2 GB the pool could not spill. The collected table is reserved in the
//! pool like any other; every other join stays a sort-merge join.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// Turns a sort-merge join with one small input into a hash join that collects it. Runs right
/// after DataFusion's own join selection, before distribution and sort order are enforced, so
/// the sorts a sort-merge join would need are never planned.
#[derive(Debug, Default)]
pub(crate) struct CollectSmallSide;

impl PhysicalOptimizerRule for CollectSmallSide {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let limits = &config.optimizer;
        let small = |side: &Arc<dyn ExecutionPlan>| -> Result<bool> {
            let stats = StatisticsContext::new().compute(side.as_ref(), &StatisticsArgs::new())?;
            let Precision::Exact(rows) = stats.num_rows else {
                return Ok(false);
            };
            let bytes = stats.total_byte_size.get_value().copied().unwrap_or(0);
            Ok(rows < limits.hash_join_single_partition_threshold_rows
                && bytes < limits.hash_join_single_partition_threshold)
        };
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<SortMergeJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let build_left = small(join.left())?;
            let build_right =
                !build_left && join.join_type().supports_swap() && small(join.right())?;
            if !build_left && !build_right {
                return Ok(Transformed::no(node));
            }
            let hash = HashJoinExec::try_new(
                Arc::clone(join.left()),
                Arc::clone(join.right()),
                join.on().to_vec(),
                join.filter().clone(),
                &join.join_type(),
                None,
                PartitionMode::CollectLeft,
                join.null_equality(),
                false,
            )?;
            Ok(Transformed::yes(if build_left {
                Arc::new(hash)
            } else {
                hash.swap_inputs(PartitionMode::CollectLeft)?
            }))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "segflow_collect_small_side"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    use super::*;

    /// Two Parquet tables, 300,000 customers and the 2 erased, joined as a feature's partials
    /// keep only keys not erased; the physical plan under a memory limit's settings, and the
    /// keys kept. `erased` is the table of erased keys as the query reads it.
    async fn keep_not_erased(
        rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
        erased: &str,
    ) -> (String, usize) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new();
        for (name, sql) in [
            (
                "customers",
                "SELECT value AS customer_id, value % 7 AS purchases FROM range(300000)",
            ),
            ("erased", "SELECT 3 AS customer_id UNION ALL SELECT 299999"),
        ] {
            let path = dir.path().join(format!("{name}.parquet"));
            ctx.sql(sql)
                .await
                .unwrap()
                .write_parquet(path.to_str().unwrap(), Default::default(), None)
                .await
                .unwrap();
        }
        let mut config = SessionConfig::new().with_target_partitions(2);
        config.options_mut().optimizer.prefer_hash_join = false;
        let state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        let ctx = SessionContext::new_with_state(state);
        for name in ["customers", "erased"] {
            let path = dir.path().join(format!("{name}.parquet"));
            ctx.register_parquet(name, path.to_str().unwrap(), ParquetReadOptions::default())
                .await
                .unwrap();
        }
        let df = ctx
            .sql(&format!(
                "SELECT c.customer_id FROM customers c \
                 WHERE NOT EXISTS (SELECT 1 FROM {erased} e WHERE e.customer_id = c.customer_id)"
            ))
            .await
            .unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        let rows = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        (text, rows)
    }

    #[tokio::test]
    async fn a_small_input_is_collected_instead_of_sorted() {
        let (datafusion, kept) = keep_not_erased(
            datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules,
            "erased",
        )
        .await;
        assert!(datafusion.contains("SortMergeJoin"), "{datafusion}");
        assert_eq!(kept, 299_998);

        let (segflow, kept) =
            keep_not_erased(crate::engine::physical_optimizer_rules(), "erased").await;
        assert!(!segflow.contains("SortMergeJoin"), "{segflow}");
        assert!(!segflow.contains("SortExec"), "{segflow}");
        assert!(
            segflow.contains("HashJoinExec: mode=CollectLeft, join_type=RightAnti"),
            "{segflow}"
        );
        assert_eq!(kept, 299_998);
    }

    /// A filter's output is only estimated (here from the column's minimum and maximum: a few
    /// rows of 300,000, rightly); estimates can be far off, so the join stays a sort-merge join.
    #[tokio::test]
    async fn an_input_only_estimated_small_is_not_collected() {
        let filtered = "(SELECT customer_id FROM customers WHERE customer_id < 2)";
        let (segflow, kept) =
            keep_not_erased(crate::engine::physical_optimizer_rules(), filtered).await;
        assert!(segflow.contains("SortMergeJoin"), "{segflow}");
        assert_eq!(kept, 299_998);
    }
}
