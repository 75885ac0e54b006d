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
mod scrub;
mod steps;
mod validate;

use std::path::PathBuf;

use chrono::NaiveDate;
use tracing::{Instrument, info, info_span};

pub use backfill::{BackfillError, backfill, rebuild_following};
pub use error::RunError;
pub use validate::validate;

use crate::engine::EngineOptions;
use crate::pipeline::Pipeline;
use crate::report::Manifest;
use crate::store::PipelineStore;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub date: NaiveDate,
    /// `--param name=value` overrides, parsed but not yet typed.
    pub params: Vec<(String, String)>,
    pub engine: EngineOptions,
    /// Publish even when an `error` check fails (recorded in the manifest).
    pub force: bool,
    /// Stop a run that takes longer (nothing is published).
    pub timeout: Option<std::time::Duration>,
}

/// The step a run is in, for messages about a run that is stopped or slow.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doing(std::sync::Arc<std::sync::Mutex<String>>);

impl Doing {
    pub(crate) fn set(&self, step: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = step.into();
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What a finished run published.
#[derive(Debug)]
pub struct RunReport {
    pub manifest: Manifest,
    pub run_dir: PathBuf,
    /// Whether `latest.json` points at this run (false when an older date was rerun).
    pub is_latest: bool,
}

pub(crate) fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// Runs the pipeline for one date and publishes it.
pub async fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<RunReport, RunError> {
    let span = info_span!("run", pipeline = %pipeline.name, run_date = %options.date);
    let doing = Doing::default();
    let work = run_inner(pipeline, options, &doing).instrument(span);
    let Some(limit) = options.timeout else {
        return work.await;
    };
    // Dropping the run cancels its queries, removes its staging and releases its lock: the
    // published state stays as it was.
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| RunError::Timeout {
            date: options.date,
            limit,
            step: doing.get(),
        })?
}

async fn run_inner(
    pipeline: &Pipeline,
    options: &RunOptions,
    doing: &Doing,
) -> Result<RunReport, RunError> {
    let params = pipeline.params.bind(options.date, &options.params)?;
    let store = PipelineStore::new(&pipeline.output, &pipeline.name)?;
    let mut run = steps::Run::begin(pipeline, &store, params, options, doing.clone()).await?;
    run.register_sources().await?;
    run.erasure().await?;
    run.models().await?;
    run.table_checks().await?;
    run.decide().await?;
    let steps::Finished {
        staged,
        manifest,
        ctx,
    } = run.finish(&store)?;
    let newly_erased = manifest.output_rows("erased")
        > manifest
            .previous_run
            .map(|date| store.read_manifest::<Manifest>(date))
            .transpose()?
            .map_or(0, |previous| previous.output_rows("erased"));
    let run_dir = store.run_dir(options.date);
    let is_latest = staged.publish(&manifest)?;
    info!(run_dir = %run_dir.display(), is_latest, "run published");
    if newly_erased {
        let scrubbed = scrub::scrub_earlier_runs(&ctx, pipeline, &store, options.date).await?;
        if !scrubbed.is_empty() {
            let dates: Vec<String> = scrubbed.iter().map(ToString::to_string).collect();
            info!(dates = %dates.join(", "), "erased customers removed from earlier runs");
        }
    }
    Ok(RunReport {
        manifest,
        run_dir,
        is_latest,
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
            self.run_dir.display(),
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
