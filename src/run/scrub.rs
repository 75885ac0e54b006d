//! Erasure reaches back: when a run erases new customers, every earlier published run that
//! still holds them is rewritten without them and swapped in atomically, like a rerun.
//!
//! Each earlier run folder is copied into staging (files hard-linked: published Parquet is never
//! modified in place), every Parquet table in it that has the key column is rewritten without
//! the erased keys, the manifest's counts are updated, and the folder is exchanged with the
//! published one. A reader sees the run before or after the scrub, never a mix.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use tracing::{info, warn};

use super::{RunError, new_run_id};
use crate::engine;
use crate::erasure;
use crate::pipeline::Pipeline;
use crate::report::Manifest;
use crate::sql::Params;
use crate::store::{PipelineStore, StoreError};

/// Folders (and single files) of Parquet under `root`, relative to it.
fn parquet_tables(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut has_parts = false;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
                {
                    has_parts = true;
                } else {
                    out.push(path.strip_prefix(root).expect("below root").to_owned());
                }
            }
        }
        if has_parts {
            out.push(dir.strip_prefix(root).expect("below root").to_owned());
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Rewrites every published run other than `current` that still holds an erased key; returns
/// the dates rewritten. The erased list is read from the published run of `current`.
pub(super) async fn scrub_earlier_runs(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    store: &PipelineStore,
    current: NaiveDate,
) -> Result<Vec<NaiveDate>, RunError> {
    let Some(key) = pipeline.key() else {
        return Ok(Vec::new());
    };
    if !erasure::register_published(ctx, &store.run_dir(current)).await? {
        return Ok(Vec::new());
    }
    let params = pipeline.params.bind(current, &[])?;
    let mut scrubbed = Vec::new();
    for date in store
        .published_dates()?
        .into_iter()
        .filter(|d| *d != current)
    {
        if scrub_run(ctx, key, store, date, current, &params).await? {
            scrubbed.push(date);
        }
    }
    Ok(scrubbed)
}

/// Rewrites one published run without the erased keys, if it holds any; true when it did.
async fn scrub_run(
    ctx: &SessionContext,
    key: &str,
    store: &PipelineStore,
    date: NaiveDate,
    current: NaiveDate,
    params: &Params,
) -> Result<bool, RunError> {
    let published = store.run_dir(date);
    // Which tables of that run hold an erased key?
    let mut dirty = Vec::new();
    for (i, table) in parquet_tables(&published).into_iter().enumerate() {
        let name = format!("__segflow_scrub_{i}");
        engine::register_parquet(ctx, &name, &published.join(&table)).await?;
        if erasure::holds_erased(ctx, &name, key, params).await? {
            dirty.push((name, table));
        }
    }
    if dirty.is_empty() {
        return Ok(false);
    }
    let staged = match store.begin(date, &format!("{}-erasure", new_run_id())) {
        Ok(staged) => staged,
        Err(err @ StoreError::Locked { .. }) => {
            warn!(%date, "not scrubbed now, a run of that date is in progress: {err}");
            return Ok(false);
        }
        Err(err) => return Err(err.into()),
    };
    let run_dir = staged.run_dir().to_owned();
    link_tree(&published, &run_dir)
        .map_err(StoreError::io(&run_dir, "copying the run to scrub it"))?;
    let mut manifest: Manifest = store.read_manifest(date)?;
    for (name, table) in &dirty {
        let target = run_dir.join(table);
        let replaced = if target.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        };
        replaced.map_err(StoreError::io(&target, "replacing"))?;
        let written =
            erasure::rewrite_without_erased(ctx, name, key, params, &target, &run_dir).await?;
        let relative = table.to_string_lossy();
        if let Some(output) = manifest.outputs.iter_mut().find(|o| o.path == relative) {
            output.rows = written.rows();
            output.files = written.files;
        }
    }
    manifest.erasure_applied_by = Some(format!("run of {current}"));
    staged.publish(&manifest)?;
    info!(%date, tables = dirty.len(), "erased customers removed from an earlier run");
    Ok(true)
}
