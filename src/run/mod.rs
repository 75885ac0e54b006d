//! One run of a pipeline for one date: sources registered, models run in order, outputs
//! streamed into the staging folder, the manifest written, the run published atomically.

mod scrub;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use tracing::{Instrument, info, info_span};

use crate::engine::{self, EngineError, EngineOptions};
use crate::pipeline::params::ParamError;
use crate::pipeline::{Model, Params, Pipeline};
use crate::report::{Manifest, Output, OutputKind, RunStatus, Step};
use crate::store::{PipelineStore, StagedRun, StoreError, write_stream};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "blocked: nothing was published for {}; the previous published run stays in place{}\n{}",
        .report.run_date,
        .kept.as_ref().map(|p| format!(" (report and failing rows: {})", p.display())).unwrap_or_default(),
        .failures.join("\n")
    )]
    Blocked {
        failures: Vec<String>,
        report: Box<Manifest>,
        kept: Option<PathBuf>,
    },
    #[error("{what}: {source}")]
    Step {
        what: String,
        #[source]
        source: StoreError,
    },
}

impl RunError {
    /// 2 when the pipeline or the arguments must change, 1 for failures while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Blocked { .. } => 3,
            RunError::Params(_) => 2,
            RunError::Engine(e) if e.is_invalid_pipeline() => 2,
            RunError::Store(StoreError::RemoteOutput(_)) => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub date: NaiveDate,
    pub params: Vec<String>,
    pub engine: EngineOptions,
    /// Publish even when an `error` check fails (recorded in the manifest).
    pub force: bool,
}

/// What a finished run published.
#[derive(Debug)]
pub struct RunReport {
    pub manifest: Manifest,
    pub run_dir: PathBuf,
    /// Whether `latest.json` points at this run (false when an older date was rerun).
    pub is_latest: bool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn new_run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// Registers sources and plans every model as a view, reading no data rows: `validate`.
pub async fn validate(pipeline: &Pipeline) -> Result<(), RunError> {
    let (ctx, _) = engine::session(&EngineOptions::default())?;
    engine::register_sources(&ctx, pipeline).await?;
    let params = pipeline.params.bind(chrono::Utc::now().date_naive(), &[])?;
    for model in &pipeline.models {
        engine::register_view(&ctx, model, &params).await?;
    }
    if let Some(segments) = &pipeline.segments {
        crate::segments::plan_segments(&ctx, pipeline, segments, &params).await?;
    }
    if let (Some(offers), Some(key)) = (&pipeline.offers, pipeline.key.as_deref()) {
        crate::offers::plan_offers(&ctx, key, offers, &params).await?;
    }
    crate::checks::plan_checks(&ctx, pipeline, &params).await?;
    if let (Some(key), Some(profile)) = (
        pipeline.key.as_deref(),
        pipeline
            .segments
            .as_ref()
            .map(|s| s.from.as_str())
            .or(pipeline.offers.as_ref().map(|o| o.from.as_str())),
    ) {
        crate::suppressions::plan_suppressions(&ctx, pipeline, key, profile, &params).await?;
    }
    Ok(())
}

/// Runs the pipeline for one date and publishes it.
pub async fn run(pipeline: &Pipeline, options: &RunOptions) -> Result<RunReport, RunError> {
    let span = info_span!("run", pipeline = %pipeline.name, run_date = %options.date);
    run_inner(pipeline, options).instrument(span).await
}

async fn run_inner(pipeline: &Pipeline, options: &RunOptions) -> Result<RunReport, RunError> {
    let started_at = now();
    let params = pipeline.params.bind(options.date, &options.params)?;
    let store = PipelineStore::new(&pipeline.output, &pipeline.name)?;
    let run_id = new_run_id();
    let staged = store.begin(options.date, &run_id)?;
    let previous_run = store.previous_run(options.date)?;
    info!(run_id = %run_id, previous_run = ?previous_run, "run started");

    let (ctx, identifiers) = engine::session(&options.engine)?;
    let mut steps = Vec::new();
    let clock = Instant::now();
    let mut manifest = Manifest {
        pipeline: pipeline.name.clone(),
        status: RunStatus::Published,
        forced: false,
        run_date: options.date,
        run_id,
        segflow_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at,
        finished_at: String::new(),
        previous_run,
        parameters: params.to_json(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        segments: Vec::new(),
        suppressions: Vec::new(),
        offers: Vec::new(),
        checks: Vec::new(),
        invalid_identifiers: Default::default(),
        steps: Vec::new(),
        erasure_applied_by: None,
    };
    let inputs = match engine::register_sources(&ctx, pipeline).await {
        Ok(inputs) => inputs,
        // Data that breaks its contract is a broken upstream: block, like a failed gate.
        Err(err @ EngineError::Contract { .. }) => {
            manifest.status = RunStatus::Blocked;
            return Err(RunError::Blocked {
                failures: vec![err.to_string()],
                report: Box::new(manifest),
                kept: None,
            });
        }
        Err(err) => return Err(err.into()),
    };
    steps.push(step("register sources", None, clock));

    let mut outputs = Vec::new();
    let previous_dir = previous_run.map(|date| store.run_dir(date));
    if let Some(key) = &pipeline.key {
        crate::suppressions::register_erased(
            &ctx,
            pipeline,
            key,
            &params,
            previous_dir.as_deref(),
            staged.run_dir(),
            &mut outputs,
        )
        .await?;
    }
    for model in &pipeline.models {
        let clock = Instant::now();
        let span = info_span!("model", model = %model.name);
        let rows = run_model(
            &ctx,
            pipeline.key.as_deref(),
            model,
            &params,
            &staged,
            &mut outputs,
        )
        .instrument(span)
        .await?;
        let step = step(&format!("model {}", model.name), rows, clock);
        match rows {
            Some(rows) => {
                info!(model = %model.name, rows, elapsed_ms = step.elapsed_ms, "model done")
            }
            None => info!(model = %model.name, "model planned as a view"),
        }
        steps.push(step);
    }

    let clock = Instant::now();
    let mut checks = crate::checks::run_table_checks(&ctx, pipeline, &params, staged.run_dir())
        .instrument(info_span!("checks"))
        .await?;
    steps.push(step("checks", None, clock));
    if !options.force && checks.iter().any(|c| c.blocks()) {
        manifest.inputs = inputs;
        manifest.checks = checks;
        manifest.steps = steps;
        return Err(block(staged, manifest));
    }

    let paths = RunPaths {
        run_dir: staged.run_dir(),
        work_dir: staged.work_dir(),
        previous_run: previous_dir.as_deref(),
    };
    let mut segment_stats = Vec::new();
    let mut suppression_stats = Vec::new();
    let mut offer_stats = Vec::new();
    let profile = pipeline
        .segments
        .as_ref()
        .map(|s| s.from.as_str())
        .or(pipeline.offers.as_ref().map(|o| o.from.as_str()));
    if let (Some(key), Some(profile)) = (pipeline.key.as_deref(), profile) {
        crate::suppressions::evaluate(&ctx, pipeline, key, profile, &params, staged.work_dir())
            .await?;
    }
    if let Some(segments) = &pipeline.segments {
        let clock = Instant::now();
        segment_stats =
            crate::segments::run_segments(&ctx, pipeline, segments, &params, paths, &mut outputs)
                .instrument(info_span!("segments"))
                .await?;
        let members: u64 = segment_stats.iter().map(|s| s.size).sum();
        steps.push(step("segments", Some(members), clock));
        for s in &segment_stats {
            info!(segment = %s.name, size = s.size, added = s.added, removed = s.removed, "segment");
        }
    }
    if let Some(offers) = &pipeline.offers {
        let clock = Instant::now();
        offer_stats =
            crate::offers::run_offers(&ctx, pipeline, offers, &params, paths, &mut outputs)
                .instrument(info_span!("offers"))
                .await?;
        let assigned: u64 = offer_stats.iter().map(|s| s.assigned).sum();
        steps.push(step("offers", Some(assigned), clock));
        for s in &offer_stats {
            info!(offer = %s.name, eligible = s.eligible, assigned = s.assigned, capped = s.capped, "offer");
        }
    }
    if profile.is_some() {
        suppression_stats = crate::suppressions::write_suppressed(
            &ctx,
            pipeline,
            &params,
            staged.run_dir(),
            &mut outputs,
        )
        .await?;
    }

    manifest.finished_at = now();
    manifest.inputs = inputs;
    manifest.outputs = outputs;
    manifest.segments = segment_stats;
    manifest.suppressions = suppression_stats;
    manifest.offers = offer_stats;
    manifest.invalid_identifiers = crate::report::InvalidIdentifiers {
        emails: identifiers.invalid_emails(),
        phones: identifiers.invalid_phones(),
    };
    let previous = match previous_run {
        Some(date) => Some(store.read_manifest::<Manifest>(date)?),
        None => None,
    };
    checks.extend(crate::checks::run_breakers(
        pipeline,
        &manifest,
        previous.as_ref(),
    ));
    let blocking = checks.iter().any(|c| c.blocks());
    manifest.checks = checks;
    manifest.steps = steps;
    if blocking {
        if !options.force {
            return Err(block(staged, manifest));
        }
        manifest.forced = true;
        tracing::warn!("publishing despite failed checks (--force)");
    }
    let erased_rows = |m: &Manifest| {
        m.outputs
            .iter()
            .find(|o| o.name == "erased")
            .map_or(0, |o| o.rows)
    };
    let newly_erased = erased_rows(&manifest) > previous.as_ref().map_or(0, erased_rows);
    let run_dir = store.run_dir(options.date);
    let is_latest = staged.publish(&manifest)?;
    info!(run_dir = %run_dir.display(), is_latest, "run published");
    if newly_erased {
        let scrubbed =
            scrub::scrub_earlier_runs(&ctx, pipeline, &store, options.date, &params).await?;
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

/// Stops a run at a failed gate: keeps its report and failing rows aside, publishes nothing.
fn block(staged: StagedRun, mut manifest: Manifest) -> RunError {
    manifest.status = RunStatus::Blocked;
    manifest.finished_at = now();
    let failures: Vec<String> = manifest
        .checks
        .iter()
        .filter(|c| c.blocks())
        .map(|c| c.line())
        .collect();
    let kept = staged.keep_blocked(&manifest).ok();
    RunError::Blocked {
        failures,
        report: Box::new(manifest),
        kept,
    }
}

fn step(name: &str, rows: Option<u64>, clock: Instant) -> Step {
    Step {
        step: name.to_string(),
        rows,
        elapsed_ms: clock.elapsed().as_millis() as u64,
    }
}

/// Runs one model: a view is only planned; a materialized model is streamed to Parquet (in the
/// run folder when published, in scratch space otherwise) and read back from there.
async fn run_model(
    ctx: &SessionContext,
    key: Option<&str>,
    model: &Model,
    params: &Params,
    staged: &StagedRun,
    outputs: &mut Vec<Output>,
) -> Result<Option<u64>, RunError> {
    if !model.materialize {
        engine::register_view(ctx, model, params).await?;
        return Ok(None);
    }
    let what = format!("model {}", model.name);
    let mut df = engine::plan_query(ctx, &what, &model.query, params).await?;
    if let Some(key) = key.filter(|k| df.schema().field_with_unqualified_name(k).is_ok()) {
        // Erased customers are dropped from every keyed table segflow writes. The filter is a
        // join, which does not keep the query's order, so published tables are sorted by key:
        // the same inputs then give the same bytes.
        let scratch = format!("__segflow_unfiltered_{}", model.name);
        ctx.register_table(scratch.as_str(), df.into_view())
            .map_err(|e| EngineError::execution(&what, e))?;
        let order = if model.publish {
            format!(" ORDER BY {key}")
        } else {
            String::new()
        };
        df = engine::plan_sql(
            ctx,
            &format!(
                "SELECT * FROM {scratch} WHERE {}{order}",
                crate::suppressions::not_erased(key)
            ),
            params,
        )
        .await?;
    }
    let relative = format!("models/{}", model.name);
    let base = if model.publish {
        staged.run_dir()
    } else {
        staged.work_dir()
    };
    let dir = base.join(&relative);
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| EngineError::execution(&what, e))?;
    let (files, schema) = write_stream(stream, &dir, base)
        .await
        .map_err(|source| step_error(&what, source))?;
    let rows = files.iter().map(|f| f.rows).sum();
    register_parquet_dir(ctx, &model.name, &dir).await?;
    if model.publish {
        outputs.push(Output {
            name: model.name.clone(),
            kind: OutputKind::Model,
            path: relative,
            rows,
            files,
            schema,
        });
    }
    Ok(Some(rows))
}

fn step_error(what: &str, source: StoreError) -> RunError {
    match source {
        StoreError::Query(err) => RunError::Engine(EngineError::execution(what, err)),
        source => RunError::Step {
            what: what.to_string(),
            source,
        },
    }
}

/// Where one run writes: the staged run folder (published), scratch space, and the folder of
/// the previous published run it compares with.
#[derive(Debug, Clone, Copy)]
pub struct RunPaths<'a> {
    pub run_dir: &'a Path,
    pub work_dir: &'a Path,
    pub previous_run: Option<&'a Path>,
}

/// Files written for one output, before they are named in the manifest.
pub struct Written {
    pub files: Vec<crate::store::WrittenFile>,
    pub schema: Vec<crate::store::ColumnSchema>,
}

impl Written {
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub fn into_output(self, name: &str, kind: OutputKind, path: String) -> Output {
        Output {
            name: name.to_string(),
            kind,
            path,
            rows: self.rows(),
            files: self.files,
            schema: self.schema,
        }
    }
}

/// Runs SQL segflow generated and streams the result into Parquet at `target` (a folder, or a
/// `.parquet` file).
pub async fn write_query(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    target: &Path,
    run_root: &Path,
) -> Result<Written, RunError> {
    let df = engine::plan_sql(ctx, sql, params)
        .await
        .map_err(|e| match e {
            EngineError::Execution { message, .. } => EngineError::Execution {
                what: what.to_string(),
                message,
            },
            other => other,
        })?;
    let clock = Instant::now();
    let stream = df
        .execute_stream()
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    let (files, schema) = write_stream(stream, target, run_root)
        .await
        .map_err(|source| step_error(what, source))?;
    let written = Written { files, schema };
    tracing::debug!(
        what,
        target = %target.strip_prefix(run_root).unwrap_or(target).display(),
        rows = written.rows(),
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "written"
    );
    Ok(written)
}

/// Registers Parquet segflow wrote (a folder of files, or one `.parquet` file) as a table,
/// replacing any table of that name.
pub async fn register_parquet_dir(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
) -> Result<(), EngineError> {
    let location = if dir.is_file() {
        dir.display().to_string()
    } else {
        format!("{}/", dir.display())
    };
    let url = ListingTableUrl::parse(location)
        .map_err(|e| EngineError::execution(format!("reading back {name}"), e))?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let schema = options
        .infer_schema(&ctx.state(), &url)
        .await
        .map_err(|e| EngineError::execution(format!("reading back {name}"), e))?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config)
        .map_err(|e| EngineError::execution(format!("reading back {name}"), e))?;
    ctx.deregister_table(name)
        .map_err(|e| EngineError::execution(format!("reading back {name}"), e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| EngineError::execution(format!("reading back {name}"), e))?;
    Ok(())
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
            let _ = writeln!(
                out,
                "  {}: {}",
                if check.blocks() {
                    "FORCED past"
                } else {
                    "warning"
                },
                check.line()
            );
        }
        let total: u64 = m.steps.iter().map(|s| s.elapsed_ms).sum();
        let _ = writeln!(out, "  run {} took {:.1}s", m.run_id, total as f64 / 1000.0);
        out
    }
}

/// Why a backfill stopped, with what it had published before.
#[derive(Debug, thiserror::Error)]
#[error(
    "backfill stopped at {date} ({published} of {total} dates published, {skipped} already were); rerun the same command to resume from {date}: {source}"
)]
pub struct BackfillError {
    pub date: NaiveDate,
    pub published: usize,
    pub skipped: usize,
    pub total: usize,
    #[source]
    pub source: RunError,
}

/// What a backfill did, date by date.
#[derive(Debug, Default)]
pub struct BackfillReport {
    pub published: Vec<NaiveDate>,
    pub skipped: Vec<NaiveDate>,
    /// Published dates after the range, rerun because their history followed from it.
    pub rebuilt: Vec<NaiveDate>,
}

/// Runs every date from `from` to `to` in order. Dates already published are skipped unless
/// `rerun`; the first failure stops the backfill, leaving earlier dates published, so running
/// the same command again resumes at the failed date.
pub async fn backfill(
    pipeline: &Pipeline,
    from: NaiveDate,
    to: NaiveDate,
    rerun: bool,
    options: &RunOptions,
    mut on_date: impl FnMut(NaiveDate, bool),
) -> Result<BackfillReport, BackfillError> {
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let mut report = BackfillReport::default();
    let fail = |date, report: &BackfillReport, source| BackfillError {
        date,
        published: report.published.len(),
        skipped: report.skipped.len(),
        total: dates.len(),
        source,
    };
    let published = PipelineStore::new(&pipeline.output, &pipeline.name)
        .and_then(|s| s.published_dates())
        .map_err(|e| fail(from, &report, e.into()))?;
    for date in &dates {
        if !rerun && published.contains(date) {
            report.skipped.push(*date);
            on_date(*date, false);
            continue;
        }
        let options = RunOptions {
            date: *date,
            ..options.clone()
        };
        run(pipeline, &options)
            .await
            .map_err(|e| fail(*date, &report, e))?;
        report.published.push(*date);
        on_date(*date, true);
    }
    if let Some(last) = report.published.last().copied() {
        report.rebuilt = rebuild_following(pipeline, last, options)
            .await
            .map_err(|e| fail(last, &report, e))?;
    }
    Ok(report)
}

/// Reruns, in order, every published date after `date` when the pipeline carries history:
/// each run's changes and history are computed against the run before it, so replacing a
/// date invalidates what follows.
pub async fn rebuild_following(
    pipeline: &Pipeline,
    date: NaiveDate,
    options: &RunOptions,
) -> Result<Vec<NaiveDate>, RunError> {
    // Only pipelines that carry state from run to run (memberships, offers, erasures) depend
    // on the run before.
    if pipeline.segments.is_none() && pipeline.offers.is_none() && pipeline.erasure.is_none() {
        return Ok(Vec::new());
    }
    let store = PipelineStore::new(&pipeline.output, &pipeline.name)?;
    let later: Vec<NaiveDate> = store
        .published_dates()?
        .into_iter()
        .filter(|d| *d > date)
        .collect();
    for later_date in &later {
        info!(rebuilding = %later_date, after = %date, "rebuilding a later run");
        run(
            pipeline,
            &RunOptions {
                date: *later_date,
                ..options.clone()
            },
        )
        .await?;
    }
    Ok(later)
}
