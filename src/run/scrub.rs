//! Erasure reaches back: when a run erases new customers, every earlier published run that
//! still holds them is rewritten without them and published again, like a rerun, before the
//! run that erased them is published (so a run stopped in between leaves them new to its retry).
//!
//! The run's tables are the outputs its manifest lists. An earlier run is copied into staging
//! (files hard-linked on a local disk, copied on the store: published Parquet is never changed
//! in place), every table that holds an erased key is rewritten without it, the manifest's
//! counts are updated, and the copy is published in place of the run. A reader sees the run
//! before or after the rewrite, never a mix.

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use tracing::info;

use super::{Locked, RunError, new_run_id};
use crate::engine;
use crate::erasure;
use crate::features;
use crate::objects::Folder;
use crate::report::Manifest;
use crate::sql::Params;

/// What erasing new customers did to the runs before this one.
#[derive(Debug, Default)]
pub(super) struct Scrubbed {
    /// The dates whose published run was rewritten without them.
    pub(super) dates: Vec<NaiveDate>,
    /// Whether the run this one replaces (the date's published run, on a rerun) holds them:
    /// this one then publishes keeping none of the runs it replaces readable.
    pub(super) replaced_holds_them: bool,
}

/// Rewrites every published run other than `current` that still holds an erased key, and
/// deletes the other attempts an object store keeps that hold one. The erased list is read
/// from `run`, the run of `current` (staged).
pub(super) async fn scrub_earlier_runs(
    ctx: &SessionContext,
    locked: &Locked<'_>,
    current: NaiveDate,
    run: &Folder,
) -> Result<Scrubbed, RunError> {
    let mut scrubbed = Scrubbed::default();
    let Some(key) = locked.pipeline.key() else {
        return Ok(scrubbed);
    };
    if !erasure::register_published(ctx, run).await? {
        return Ok(scrubbed);
    }
    let params = locked.pipeline.params.bind(current, &[])?;
    for date in locked.store.published_dates().await? {
        if date == current {
            // Only an object store keeps the runs a rerun replaces.
            scrubbed.replaced_holds_them = locked.store.root().local_path().is_none()
                && holds_erased(ctx, locked, key, date, &params).await?;
        } else if scrub_run(ctx, locked, key, date, current, &params).await? {
            scrubbed.dates.push(date);
        }
    }
    scrub_unpublished(ctx, locked, key, run, &params).await?;
    scrub_blocked(ctx, locked, key, &params).await?;
    Ok(scrubbed)
}

/// Whether the run published for `date` holds an erased key.
async fn holds_erased(
    ctx: &SessionContext,
    locked: &Locked<'_>,
    key: &str,
    date: NaiveDate,
    params: &Params,
) -> Result<bool, RunError> {
    let store = &locked.store;
    let Some(published) = store.published_run(date).await? else {
        return Ok(false);
    };
    let manifest: Manifest = store.read_manifest(date).await?;
    Ok(!holding(ctx, &published, &manifest, key, params)
        .await?
        .is_empty())
}

/// Deletes the failing rows that blocked runs kept (`blocked/run_date=D/checks/…`) where they
/// hold an erased key: those runs were never published, so nothing else rewrites them. Their
/// reports stay, saying what failed.
async fn scrub_blocked(
    ctx: &SessionContext,
    locked: &Locked<'_>,
    key: &str,
    params: &Params,
) -> Result<(), RunError> {
    let store = &locked.store;
    for date in store.blocked_dates().await? {
        let Ok(report) = store.read_blocked::<Manifest>(date).await else {
            continue;
        };
        let folder = store.blocked_folder(date);
        let samples = (report.checks.iter()).filter_map(|check| check.sample.as_deref());
        for (i, sample) in samples.enumerate() {
            let name = format!("__segflow_scrub_blocked_{i}");
            let table = folder.join(sample);
            if engine::register_parquet(ctx, &name, &table).await.is_err() {
                continue;
            }
            if erasure::holds_erased(ctx, &name, key, params).await? {
                crate::store::delete_folder(&table).await?;
                info!(%date, sample, "failing rows of a blocked run deleted: they held an erased customer");
            }
        }
    }
    Ok(())
}

/// The tables of a run that hold an erased key, each registered under a name of its own.
#[derive(Default)]
struct Holding {
    /// Outputs, by their place in the manifest.
    outputs: Vec<(String, usize)>,
    /// Failing rows a check sampled (they are the run's too), by their path in the run.
    samples: Vec<(String, String)>,
}

impl Holding {
    fn is_empty(&self) -> bool {
        self.outputs.is_empty() && self.samples.is_empty()
    }
}

/// Which tables of `run` (described by `manifest`) hold an erased key.
async fn holding(
    ctx: &SessionContext,
    run: &Folder,
    manifest: &Manifest,
    key: &str,
    params: &Params,
) -> Result<Holding, RunError> {
    let mut found = Holding::default();
    for (i, output) in manifest.outputs.iter().enumerate() {
        let name = format!("__segflow_scrub_{i}");
        engine::register_parquet(ctx, &name, &run.join(&output.path)).await?;
        if erasure::holds_erased(ctx, &name, key, params).await? {
            found.outputs.push((name, i));
        }
    }
    let samples = (manifest.checks.iter()).filter_map(|check| check.sample.as_deref());
    for (i, sample) in samples.enumerate() {
        let name = format!("__segflow_scrub_sample_{i}");
        engine::register_parquet(ctx, &name, &run.join(sample)).await?;
        if erasure::holds_erased(ctx, &name, key, params).await? {
            found.samples.push((name, sample.to_string()));
        }
    }
    Ok(found)
}

/// Rewrites one published run without the erased keys, if it holds any; true when it did.
/// Publishing the rewrite deletes the attempts of its date it replaces.
async fn scrub_run(
    ctx: &SessionContext,
    locked: &Locked<'_>,
    key: &str,
    date: NaiveDate,
    current: NaiveDate,
    params: &Params,
) -> Result<bool, RunError> {
    let store = &locked.store;
    let Some(published) = store.published_run(date).await? else {
        return Ok(false);
    };
    let mut manifest: Manifest = store.read_manifest(date).await?;
    let dirty = holding(ctx, &published, &manifest, key, params).await?;
    if dirty.is_empty() {
        return Ok(false);
    }
    let run_id = format!("{}-erasure", new_run_id());
    let staged = store.restage(&locked.lock, date, &run_id).await?;
    for (name, i) in &dirty.outputs {
        let output = &mut manifest.outputs[*i];
        staged.clear(&output.path).await?;
        let target = staged.run().join(&output.path);
        let written =
            erasure::rewrite_without_erased(ctx, name, key, params, &target, staged.run()).await?;
        // A feature's per-day partials sit beside its totals, not in the manifest.
        if let Some(days) = features::days_beside(&output.path) {
            staged.clear(&days).await?;
            features::scrub_days(ctx, &published, staged.run(), &output.path, key, params).await?;
        }
        output.rows = written.rows();
        output.files = written.files;
    }
    for (name, sample) in &dirty.samples {
        staged.clear(sample).await?;
        let target = staged.run().join(sample);
        erasure::rewrite_without_erased(ctx, name, key, params, &target, staged.run()).await?;
    }
    manifest.erasure_applied_by = Some(format!("run of {current}"));
    // The page shows the tables' counts, and those of the (already rewritten) runs before.
    let html = super::report::page(store, locked.pipeline, &manifest).await?;
    crate::store::write_text(&staged.run().join("report.html"), html).await?;
    staged.publish_erased(&locked.lock, &manifest).await?;
    info!(
        %date,
        tables = dirty.outputs.len(),
        samples = dirty.samples.len(),
        "erased customers removed from an earlier run"
    );
    Ok(true)
}

/// Deletes the attempts an object store keeps beside the published runs that hold an erased
/// key: a replaced run kept readable for a reader who followed an older pointer (a rerun made
/// after a customer left the data replaced one that still held them, so rewriting the published
/// runs misses it), or what a killed run left (without a manifest: never published, deleted
/// whole). They are never published again, so they are deleted rather than rewritten.
async fn scrub_unpublished(
    ctx: &SessionContext,
    locked: &Locked<'_>,
    key: &str,
    running: &Folder,
    params: &Params,
) -> Result<(), RunError> {
    for attempt in locked.store.unpublished_attempts(running).await? {
        let manifest = attempt.join("manifest.json");
        let holds = match crate::store::read_json_if_any::<Manifest>(&manifest).await {
            Ok(Some(manifest)) => !holding(ctx, &attempt, &manifest, key, params)
                .await?
                .is_empty(),
            Ok(None) | Err(_) => true,
        };
        if holds {
            crate::store::delete_folder(&attempt).await?;
            info!(attempt = %locked.store.relative(&attempt), "an attempt kept beside a published run deleted: it held an erased customer");
        }
    }
    Ok(())
}
