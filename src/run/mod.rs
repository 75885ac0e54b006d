//! One run of a pipeline for one date, end to end, and the commands built on runs: `validate`
//! (plan everything, run nothing), `backfill` (dates in order, resumable), rebuilding the
//! dates after a rerun, and rewriting earlier runs when customers are erased.
//!
//! A run goes through these steps, each a function of its own module returning what it
//! produced; this module only orders them and builds the manifest from their results:
//!
//! ```text
//!  sources ─► erasure ─► models ─► table checks ─► suppressions ─► segments ─► offers
//!     ─► suppressed/ ─► circuit breakers ─► publish (store) ─► scrub earlier runs
//! ```

mod backfill;
mod error;
mod progress;
mod report;
mod scrub;
mod steps;
mod validate;

use chrono::NaiveDate;
use tracing::{Instrument, info, info_span, warn};

pub use backfill::Finished;
pub use backfill::{BackfillError, backfill};
use backfill::{finish_pending_rebuild, rebuild_following};
pub use error::RunError;
pub use progress::{Progress, StepProgress};
pub use report::rebuild as rebuild_report;
pub use validate::validate;

use crate::engine::EngineOptions;
use crate::objects::Stores;
use crate::pipeline::Pipeline;
use crate::report::Manifest;
use crate::store::{PipelineLock, PipelineStore, Purpose};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub date: NaiveDate,
    /// `--param name=value` overrides, parsed but not yet typed.
    pub params: Vec<(String, String)>,
    pub engine: EngineOptions,
    /// Publish even when an `error` check fails (recorded in the manifest).
    pub force: bool,
    /// Compute features from all their events, not from the previous run's state.
    pub full_refresh: bool,
    /// Stop a run that takes longer (nothing is published).
    pub timeout: Option<std::time::Duration>,
    /// Where the run is, for whoever shows it.
    pub progress: Progress,
}

/// What a finished run published.
#[derive(Debug)]
pub struct RunReport {
    pub manifest: Manifest,
    /// Where the run was published (a folder, or an object-store URL).
    pub run_dir: String,
    /// Whether `latest.json` points at this run (false when an older date was rerun).
    pub is_latest: bool,
    /// Published dates after this one, rerun because their history follows from it.
    pub rebuilt: Vec<NaiveDate>,
    /// A rebuild an earlier command left pending, finished before this run.
    pub finished: Option<Finished>,
}

pub(crate) fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// A pipeline's object stores, its published folder and the lock one command holds on it.
pub(crate) struct Locked<'a> {
    pipeline: &'a Pipeline,
    stores: Stores,
    store: PipelineStore,
    lock: PipelineLock,
    progress: Progress,
    /// The id the lock names, for the first run started under it: "in progress" then names
    /// a run whose logs and manifest have that id.
    first_run_id: std::sync::Mutex<Option<String>>,
}

impl<'a> Locked<'a> {
    /// Opens the stores and takes the pipeline's lock for a run of `date`.
    async fn take(pipeline: &'a Pipeline, options: &RunOptions) -> Result<Self, RunError> {
        let progress = options.progress.clone();
        // Arguments are checked before anything is written.
        pipeline.params.bind(options.date, &options.params)?;
        let stores = pipeline.open_stores(options.engine.store_timeout)?;
        let store = pipeline.store(&stores);
        progress.set("waiting for the pipeline's lock");
        let run_id = new_run_id();
        let lock = store.lock(options.date, &run_id, Purpose::Run).await?;
        Ok(Self {
            pipeline,
            stores,
            store,
            lock,
            progress,
            first_run_id: std::sync::Mutex::new(Some(run_id)),
        })
    }

    /// The id of a run started under the lock: the lock's own for the first.
    fn run_id(&self) -> String {
        let first = self.first_run_id.lock().map(|mut id| id.take());
        first.ok().flatten().unwrap_or_else(new_run_id)
    }

    async fn release(self) {
        self.lock.release().await;
    }
}

/// Runs `work` within the options' time limit, saying which step it was in if it ran out.
async fn limited<T>(
    options: &RunOptions,
    work: impl std::future::Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    let Some(limit) = options.timeout else {
        return work.await;
    };
    // Dropping the run cancels its queries, removes its staging and gives up its lock (a lock
    // on an object store lapses with its lease): the published state stays as it was.
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RunError::Timeout {
            date: options.date,
            limit,
            step: options.progress.step(),
        })?
}

/// Runs the pipeline for one date and publishes it; then reruns the published dates after it,
/// whose history follows from it. All under the pipeline's lock.
pub async fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<RunReport, RunError> {
    let span = info_span!("pipeline", pipeline = %pipeline.name);
    let work = async {
        let locked = limited(options, Locked::take(pipeline, options)).await?;
        let result = async {
            let finished = finish_pending_rebuild(&locked, options).await?;
            let mut report = limited(options, run_date(&locked, options)).await?;
            report.finished = finished;
            // Each later date rebuilt has a `--timeout` of its own, and says where it stopped.
            report.rebuilt = rebuild_following(&locked, options.date, options).await?;
            Ok(report)
        }
        .await;
        locked.release().await;
        result
    };
    work.instrument(span).await
}

/// One date, under the lock: steps, gates, publish, and the rewrite of earlier runs when
/// customers were erased. Its log lines carry its own date, also when a backfill or a rerun's
/// rebuild runs it, inside the `pipeline` span of the command.
async fn run_date(locked: &Locked<'_>, options: &RunOptions) -> Result<RunReport, RunError> {
    let span = info_span!("run", run_date = %options.date);
    run_date_steps(locked, options).instrument(span).await
}

async fn run_date_steps(locked: &Locked<'_>, options: &RunOptions) -> Result<RunReport, RunError> {
    let pipeline = locked.pipeline;
    let params = pipeline.params.bind(options.date, &options.params)?;
    let mut run = steps::Run::begin(locked, params, options).await?;
    run.register_sources().await?;
    if let Err(err) = run.compute().await {
        return Err(run.with_data_fault(err).await);
    }
    let steps::Finished {
        staged,
        manifest,
        ctx,
        previous,
    } = {
        options.progress.set("circuit breakers");
        run.finish().await?
    };
    // Earlier runs lose the newly erased customers before this run is published: a run
    // stopped in between publishes nothing, so its next attempt still sees them as new.
    let newly_erased =
        manifest.output_rows("erased") > previous.as_ref().map_or(0, |p| p.output_rows("erased"));
    let mut scrubbed = scrub::Scrubbed::default();
    if newly_erased {
        options
            .progress
            .set("removing erased customers from earlier runs");
        scrubbed = scrub::scrub_earlier_runs(&ctx, locked, options.date, staged.run()).await?;
        if !scrubbed.dates.is_empty() {
            let dates: Vec<String> = scrubbed.dates.iter().map(ToString::to_string).collect();
            info!(dates = %dates.join(", "), "erased customers removed from earlier runs");
        }
    }
    options.progress.set("publish");
    let html = report::page(&locked.store, pipeline, &manifest).await?;
    crate::store::write_text(&staged.run().join("report.html"), html).await?;
    let is_latest = match scrubbed.replaced_holds_them {
        true => staged.publish_erased(&locked.lock, &manifest).await?,
        false => staged.publish(&locked.lock, &manifest).await?,
    };
    // Published: what follows cannot make the run fail.
    if let Err(err) = report::write_index(&locked.store).await {
        warn!(error = %err, "the runs' index page was not rewritten; `segflow report` rewrites it");
    }
    let run_dir = locked.store.describe_run(options.date).await;
    info!(run_dir = %run_dir, is_latest, "run published");
    options.progress.done();
    Ok(RunReport {
        manifest,
        run_dir,
        is_latest,
        rebuilt: Vec::new(),
        finished: None,
    })
}

impl RunReport {
    /// The human summary printed after a run.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let m = &self.manifest;
        let mut out = format!(
            "published {} for {} to {}{}\n",
            m.pipeline,
            m.run_date,
            self.run_dir,
            if self.is_latest {
                ""
            } else {
                " (an older date: latest.json unchanged)"
            }
        );
        for output in &m.outputs {
            let _ = writeln!(out, "  {:<40} {:>10} rows", output.path, output.rows);
        }
        for check in m
            .checks
            .iter()
            .filter(|c| c.status == crate::checks::Status::Failed)
        {
            let verdict = if check.blocks() {
                "FORCED past"
            } else {
                "warning"
            };
            let _ = writeln!(out, "  {verdict}: {}", check.line());
        }
        let total: u64 = m.steps.iter().map(|s| s.elapsed_ms).sum();
        let _ = writeln!(out, "  run {} took {:.1}s", m.run_id, total as f64 / 1000.0);
        out
    }
}
