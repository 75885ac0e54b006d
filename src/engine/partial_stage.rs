//! Partial aggregates written without DataFusion's final aggregation.
//!
//! DataFusion aggregates in two stages: a partial stage on each input partition, which passes
//! rows through (as partial states) once it finds nearly as many groups as rows, then a
//! repartition by the groups and a final stage that combines every group's partial states
//! into one row. A feature's per-day partials group events by key and day, and most groups
//! hold one event (a month at 1M customers: 12M events, 8.8M groups): the final stage built a
//! table of 8.8M groups, most of a first run's time and memory in the features.
//!
//! Whoever reads the partials sums them again per key (a daily run's update groups the previous
//! totals with them), so a table of partials may hold a (key, day) more than once.
//! [`without_final_stage`] replaces a final aggregation over a partial one with a projection of
//! the partial stage's output: the same columns, under the same names, a group possibly split
//! over a few rows. It does so only when every aggregate's partial state is its value (`COUNT`,
//! `SUM`, `MIN`, `MAX`, not `DISTINCT`), so that adding the rows of a group up gives the group.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;

/// Aggregates whose one partial state is the aggregate itself: partial rows add up.
const ADDITIVE: [&str; 4] = ["count", "sum", "min", "max"];

/// `plan` with each final aggregation whose partial states are its values replaced by the
/// partial stage's output (see the module's documentation): its rows may repeat a group.
pub(crate) fn without_final_stage(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_down(|node| {
        Ok(match partial_stage_of(&node) {
            Some(projection) => Transformed::new(projection, true, TreeNodeRecursion::Jump),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// The partial stage below `node` projected to `node`'s columns, when `node` is a final
/// aggregation of additive aggregates over one.
fn partial_stage_of(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let last = node.downcast_ref::<AggregateExec>()?;
    if !matches!(
        last.mode(),
        AggregateMode::Final | AggregateMode::FinalPartitioned
    ) || !last.group_expr().is_single()
        || last.filter_expr().iter().any(Option::is_some)
    {
        return None;
    }
    for aggregate in last.aggr_expr() {
        let states = aggregate.state_fields().ok()?;
        let additive = ADDITIVE.contains(&aggregate.fun().name()) && !aggregate.is_distinct();
        if !additive || states.len() != 1 || states[0].data_type() != aggregate.field().data_type()
        {
            return None;
        }
    }
    let mut input = last.input();
    while input.downcast_ref::<RepartitionExec>().is_some()
        || input.downcast_ref::<CoalescePartitionsExec>().is_some()
    {
        input = input.children().into_iter().next()?;
    }
    let partial = input.downcast_ref::<AggregateExec>()?;
    if *partial.mode() != AggregateMode::Partial {
        return None;
    }
    // The partial stage's columns are the groups, then one state per aggregate: the final
    // stage's columns in the same order, of the same types, under other names.
    let (states, wanted) = (input.schema(), last.schema());
    if states.fields().len() != wanted.fields().len() {
        return None;
    }
    let mut columns: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    for (i, (state, field)) in states.fields().iter().zip(wanted.fields()).enumerate() {
        if state.data_type() != field.data_type() || state.is_nullable() != field.is_nullable() {
            return None;
        }
        columns.push((Arc::new(Column::new(state.name(), i)), field.name().clone()));
    }
    let projection = ProjectionExec::try_new(columns, Arc::clone(input)).ok()?;
    Some(Arc::new(projection))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// A session with events in two partitions: key 1's two events of 2026-01-01 fall one in
    /// each, so their partial stages each hold a part of that group.
    async fn session() -> SessionContext {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("amount", DataType::Int64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let hour = 3_600_000_000_i64;
        let day = 24 * hour;
        let start = 1_767_225_600_000_000_i64; // 2026-01-01
        let batch = |k: Vec<i64>, amount: Vec<Option<i64>>, at: Vec<i64>| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(k)),
                Arc::new(Int64Array::from(amount)),
                Arc::new(TimestampMicrosecondArray::from(at)),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let one = batch(
            vec![1, 2],
            vec![Some(10), Some(7)],
            vec![start + 10 * hour, start + day],
        );
        let two = batch(
            vec![1, 1],
            vec![Some(5), None],
            vec![start + 11 * hour, start + 2 * day],
        );
        let table = MemTable::try_new(Arc::clone(&schema), vec![vec![one], vec![two]]).unwrap();
        ctx.register_table("events", Arc::new(table)).unwrap();
        ctx
    }

    const PARTIALS: &str = "SELECT k, CAST(at AS DATE) AS day, COUNT(*) AS n, SUM(amount) AS total, \
                            MAX(at) AS latest FROM events GROUP BY k, CAST(at AS DATE)";

    async fn rows_of(
        ctx: &SessionContext,
        plan: Arc<dyn ExecutionPlan>,
    ) -> Vec<(i64, i64, Option<i64>)> {
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        let mut rows = Vec::new();
        for b in &batches {
            let col = |i: usize| b.column(i).as_any().downcast_ref::<Int64Array>().unwrap();
            for r in 0..b.num_rows() {
                let total = (!col(3).is_null(r)).then(|| col(3).value(r));
                rows.push((col(0).value(r), col(2).value(r), total));
            }
        }
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn the_final_stage_goes_and_the_rows_add_up_to_the_groups() {
        let ctx = session().await;
        let df = ctx.sql(PARTIALS).await.unwrap();
        let whole = df.clone().create_physical_plan().await.unwrap();
        let partial = without_final_stage(Arc::clone(&whole)).unwrap();
        assert_eq!(
            partial.schema(),
            whole.schema(),
            "same columns, names and types"
        );
        let text = displayable(partial.as_ref()).indent(false).to_string();
        assert!(!text.contains("Final"), "{text}");
        assert!(text.contains("mode=Partial"), "{text}");

        // Key 1's two events of 2026-01-01, one in each partition, stay two rows.
        let rows = rows_of(&ctx, partial).await;
        assert_eq!(
            rows,
            vec![
                (1, 1, None),
                (1, 1, Some(5)),
                (1, 1, Some(10)),
                (2, 1, Some(7))
            ]
        );
        // Summed per key again, they give what the whole aggregation gives.
        let whole_rows = rows_of(&ctx, whole).await;
        assert_eq!(
            whole_rows,
            vec![(1, 1, None), (1, 2, Some(15)), (2, 1, Some(7))]
        );
    }

    #[tokio::test]
    async fn distinct_counts_and_averages_keep_their_final_stage() {
        let ctx = session().await;
        for sql in [
            "SELECT k, COUNT(DISTINCT amount) AS n FROM events GROUP BY k",
            "SELECT k, AVG(amount) AS a FROM events GROUP BY k",
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.create_physical_plan().await.unwrap();
            let kept = without_final_stage(Arc::clone(&plan)).unwrap();
            let text = displayable(kept.as_ref()).indent(false).to_string();
            assert!(text.contains("Final"), "{sql}: {text}");
        }
    }
}
