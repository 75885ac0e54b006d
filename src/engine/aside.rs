//! Writing a query's rows except the ones it flags, whose keys are kept aside in memory: how a
//! first run's feature totals, one row per key, also find the keys erased among them, so that
//! the per-day partials after them leave those keys out without hashing every event's key
//! (see `features::state`).

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{filter, filter_record_batch, not, prep_null_mask_filter};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::DataFusionError;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::{EngineError, Groups, Written, execute, on_cluster, write_result};
use crate::objects::Folder;
use crate::store::TableLayout;

/// Rows a query flags, to keep aside instead of writing.
pub(crate) struct Aside<'a> {
    /// The query's boolean column that flags them (not written).
    pub(crate) mark: &'a str,
    /// Their column to keep.
    pub(crate) key: &'a str,
    /// The in-memory table, of one column `k`, they are registered as.
    pub(crate) table: &'a str,
}

/// Streams a planned query into Parquet at `target` as `write_frame` does, leaving out the rows
/// that `aside.mark` flags, and that column. Their `aside.key` values are registered as the
/// table `aside.table`, held in this process's memory: never written, and plans show no
/// values. Returns what was written and how many rows were set aside. Only in process: a
/// cluster's executors cannot read this process's memory.
pub(crate) async fn write_frame_setting_aside(
    ctx: &SessionContext,
    what: &str,
    df: DataFrame,
    aside: &Aside<'_>,
    target: &Folder,
    root: &Folder,
    layout: TableLayout,
) -> Result<(Written, usize), EngineError> {
    let failed = |e| EngineError::execution(what, e);
    if on_cluster(ctx) {
        let refused = "rows held in this process cannot be read on a cluster";
        return Err(failed(DataFusionError::Internal(refused.into())));
    }
    let mut result = execute(what, df, Groups::Whole).await?;
    let schema = result.stream.schema();
    let mark = schema.index_of(aside.mark).map_err(|e| failed(e.into()))?;
    let key = schema.index_of(aside.key).map_err(|e| failed(e.into()))?;
    let written: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != mark).collect();
    let written_schema = Arc::new(schema.project(&written).map_err(|e| failed(e.into()))?);
    // What the result is sorted by, in the columns written.
    result.order.retain(|c| c.column_idx as usize != mark);
    for c in &mut result.order {
        c.column_idx -= i32::from(c.column_idx as usize > mark);
    }
    let keys: Arc<Mutex<Vec<ArrayRef>>> = Arc::default();
    let found = Arc::clone(&keys);
    let split = move |batch: RecordBatch| -> Result<RecordBatch, DataFusionError> {
        let Some(flags) = batch.column(mark).as_boolean_opt() else {
            let message = format!(
                "the column marking rows to set aside is {}",
                batch.column(mark).data_type()
            );
            return Err(DataFusionError::Internal(message));
        };
        let flags = match flags.null_count() {
            0 => flags.clone(),
            _ => prep_null_mask_filter(flags),
        };
        let kept = batch.project(&written)?;
        if flags.true_count() == 0 {
            return Ok(kept);
        }
        let mut found = found.lock().map_err(|_| {
            DataFusionError::Internal("a writer setting rows aside panicked".into())
        })?;
        found.push(filter(batch.column(key), &flags)?);
        Ok(filter_record_batch(&kept, &not(&flags)?)?)
    };
    let stream = result.stream.map(move |batch| batch.and_then(&split));
    result.stream = Box::pin(RecordBatchStreamAdapter::new(written_schema, stream));
    let output = write_result(what, result, target, root, layout).await?;
    let keys = std::mem::take(&mut *keys.lock().expect("the writer is done"));
    let set_aside = keys.iter().map(|k| k.len()).sum();
    let k = Arc::new(Schema::new(vec![Field::new(
        "k",
        schema.field(key).data_type().clone(),
        true,
    )]));
    let batches = keys
        .into_iter()
        .map(|column| RecordBatch::try_new(Arc::clone(&k), vec![column]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.into()))?;
    let table = MemTable::try_new(k, vec![batches]).map_err(failed)?;
    ctx.deregister_table(aside.table).map_err(failed)?;
    ctx.register_table(aside.table, Arc::new(table))
        .map_err(failed)?;
    Ok((output, set_aside))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig};

    /// Rows flagged in either of two partitions are left out of the table written, the flag
    /// column with them, and their keys (NULL among them) registered in memory.
    #[tokio::test]
    async fn flagged_rows_are_kept_aside_not_written() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let sql = "SELECT k, v, k % 3 = 0 OR k IS NULL AS flagged FROM \
                   (VALUES (1, 'a'), (3, 'b'), (4, 'c'), (6, 'd'), (7, 'e'), (NULL, 'f')) AS t(k, v)";
        let df = ctx.sql(sql).await.unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let root = Folder::local(tmp.path());
        let target = root.join("t");
        let aside = Aside {
            mark: "flagged",
            key: "k",
            table: "aside",
        };
        let layout = TableLayout::default();
        let (written, set_aside) =
            write_frame_setting_aside(&ctx, "test", df, &aside, &target, &root, layout)
                .await
                .unwrap();
        assert_eq!((written.rows(), set_aside), (3, 3));
        let read = ctx
            .read_parquet(target.url(false), ParquetReadOptions::default())
            .await
            .unwrap();
        let columns: Vec<&str> = read
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(columns, ["k", "v"]);
        let text = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
            }
        };
        ctx.register_parquet("written", target.url(false), ParquetReadOptions::default())
            .await
            .unwrap();
        let kept = text("SELECT string_agg(v, '' ORDER BY v) AS v FROM written").await;
        assert!(kept.contains("| ace |"), "{kept}");
        let keys =
            text("SELECT count(*) AS n, count(k) AS known, sum(k) AS total FROM aside").await;
        assert!(keys.contains("| 3 | 2     | 9     |"), "{keys}");
    }
}
