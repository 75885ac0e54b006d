//! The command line: argument types, checked as they are parsed, and one function per
//! command. Results go to stdout; progress and timings go to stderr through tracing.

mod progress;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::{self, ClusterError, ExecutorOptions, SchedulerOptions};
use crate::engine::{Engine, EngineOptions};
use crate::generate::{self, GenerateError, GenerateOptions};
use crate::pipeline::{CompileError, Pipeline, PlanFormat, render};
use crate::run::{self, BackfillError, RunError, RunOptions};
use crate::sql::parse_param;
use crate::unit_tests::UnitTestError;

#[derive(Debug, Parser)]
#[command(
    name = "segflow",
    version,
    about = "Runs YAML-declared SQL pipelines over Arrow and publishes daily audiences as Parquet"
)]
pub struct Cli {
    /// Log format on stderr: human-readable text, or one JSON object per line for orchestrators.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Only print warnings and errors on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether runs draw a live progress display: on a terminal, with text logs, without `-q`.
    pub fn shows_progress(&self) -> bool {
        !self.quiet && self.log_format == LogFormat::Text && std::io::stderr().is_terminal()
    }

    /// Whether this process is a scheduler or an executor of a cluster, whose own logs (jobs,
    /// executors joining and leaving) are what its operator reads; a run logs its steps, and
    /// only the cluster client's warnings.
    pub fn is_cluster_process(&self) -> bool {
        matches!(
            self.command,
            Command::Scheduler { .. } | Command::Executor { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why a command failed; its exit code tells schedulers what happened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Backfill(Box<BackfillError>),
    #[error("--to {to} is before --from {from}")]
    BackwardRange { from: NaiveDate, to: NaiveDate },
    #[error("--param {name} is given twice ({first}, then {second}); give it once")]
    ParamTwice {
        name: String,
        first: String,
        second: String,
    },
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    UnitTest(#[from] UnitTestError),
    #[error("{0} SQL unit test(s) failed")]
    TestsFailed(usize),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Standard output could not take the command's result (a full disk under `> file`).
    #[error(
        "{}writing to standard output: {source}",
        .published.map(|date| format!("{date} was published, but ")).unwrap_or_default()
    )]
    Output {
        /// The date a run published before it said so.
        published: Option<NaiveDate>,
        source: std::io::Error,
    },
}

impl From<RunError> for Error {
    fn from(err: RunError) -> Self {
        Error::Run(Box::new(err))
    }
}

impl From<BackfillError> for Error {
    fn from(err: BackfillError) -> Self {
        Error::Backfill(Box::new(err))
    }
}

impl Error {
    /// 0 published; 1 runtime failure; 2 invalid pipeline or arguments; 3 blocked by a gate.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Compile(_) | Error::BackwardRange { .. } | Error::ParamTwice { .. } => 2,
            Error::Run(err) => err.exit_code(),
            Error::Backfill(err) => err.source.exit_code(),
            Error::Generate(err) if err.is_argument() => 2,
            Error::Generate(_)
            | Error::TestsFailed(_)
            | Error::Cluster(_)
            | Error::Output { .. } => 1,
            Error::UnitTest(err) => err.exit_code(),
        }
    }
}

/// Where queries run.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Run queries in this process (local), or on the Ballista cluster whose scheduler is at
    /// ballista://HOST:PORT.
    #[arg(
        long,
        value_name = "ENGINE",
        env = "SEGFLOW_ENGINE",
        default_value = "local"
    )]
    engine: Engine,
}

/// How a run reads its parameters and uses the machine.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Override a declared parameter: --param name=value (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Memory DataFusion may use before spilling to disk, e.g. 4GiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<usize>,
    /// Publish even if an `error` check or circuit breaker fails; recorded in the manifest.
    #[arg(long)]
    force: bool,
    /// Compute feature tables from all their events instead of continuing from the previous
    /// run's state (the first date only, for a backfill).
    #[arg(long)]
    full_refresh: bool,
    /// How long one request to an object store, with its retries, may take before the run
    /// fails (e.g. 30s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "SEGFLOW_STORE_TIMEOUT", default_value = "30s")]
    store_timeout: std::time::Duration,
    /// Stop a run that takes longer, e.g. 90s, 30m or 2h; nothing is published.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "SEGFLOW_TIMEOUT")]
    timeout: Option<std::time::Duration>,
}

impl RunArgs {
    fn options(self, date: NaiveDate) -> Result<RunOptions, Error> {
        given_once(&self.params)?;
        Ok(RunOptions {
            date,
            params: self.params,
            engine: EngineOptions {
                engine: self.engine.engine,
                memory_limit: self.memory_limit,
                store_timeout: self.store_timeout,
            },
            force: self.force,
            full_refresh: self.full_refresh,
            timeout: self.timeout,
            progress: run::Progress::default(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline for one date and publish its outputs atomically.
    Run {
        /// The pipeline file, or its name under pipelines/ (e.g. daily_segments).
        pipeline: String,
        /// The run date, YYYY-MM-DD (default: today, UTC).
        #[arg(long, value_parser = parse_date)]
        date: Option<NaiveDate>,
        #[command(flatten)]
        args: RunArgs,
        /// Print the run's manifest as JSON on stdout (also when blocked).
        #[arg(long)]
        json: bool,
    },
    /// Run every date from --from to --to in order, skipping dates already published.
    Backfill {
        pipeline: String,
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Run dates that are already published again.
        #[arg(long)]
        rerun: bool,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Why customers are or are not in each segment and offer on a date.
    Explain {
        pipeline: String,
        /// The customer's key (repeatable: --key 1 --key 2).
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// The date to explain (default: today, UTC).
        #[arg(long, value_parser = parse_date)]
        date: Option<NaiveDate>,
        /// Override a parameter (repeatable); the published run's parameters apply otherwise.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Print JSON for tools instead of text: an object for one key, an array for several.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Check the YAML, the SQL, the DAG and every model's plan against the sources' schemas,
    /// without reading data rows.
    Validate { pipeline: String },
    /// Run the pipeline's SQL unit tests (pipelines/<name>.tests.yaml, tests/<name>/**/*.yaml):
    /// given rows in, expected rows out, in memory.
    Test {
        pipeline: String,
        /// Only run tests whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// (Re)build the page of a run (default: the newest) and the pipeline's index.html.
    Report {
        pipeline: String,
        #[arg(long, value_parser = parse_date)]
        date: Option<NaiveDate>,
        /// Open the page in a browser (on this machine, for a local output).
        #[arg(long)]
        open: bool,
    },
    /// Show the DAG and what a run would do.
    Plan {
        pipeline: String,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Start a Ballista scheduler with segflow's SQL functions: the address runs name in
    /// --engine ballista://HOST:PORT. Runs until stopped.
    Scheduler {
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind_host: String,
        #[arg(long, short, default_value_t = crate::engine::BALLISTA_PORT)]
        port: u16,
        /// The host name executors and runs reach this scheduler by.
        #[arg(long, default_value = "localhost")]
        external_host: String,
        /// An executor silent for this long is taken as gone and its tasks run elsewhere.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
        executor_timeout: std::time::Duration,
    },
    /// Start a Ballista executor with segflow's SQL functions and join the scheduler at
    /// --scheduler. Runs until stopped.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        /// The address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind_host: String,
        /// The host name others reach this executor by (default: the address the scheduler
        /// sees it connect from).
        #[arg(long)]
        external_host: Option<String>,
        /// The Arrow Flight port results are fetched from.
        #[arg(long, short, default_value_t = 50051)]
        port: u16,
        /// The port the scheduler hands tasks to.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Where shuffle files and spills go (default: a folder in the system's temporary
        /// folder, named after the port).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks run at once (default: the machine's cores).
        #[arg(long, default_value_t = 0)]
        concurrent_tasks: usize,
        /// Memory the executor's tasks may hold together before they spill, e.g. 4GiB
        /// (default: 70% of the machine's or container's memory, as Ballista sizes it).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        memory_limit: Option<usize>,
        /// How often the executor tells the scheduler it is alive.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
        heartbeat: std::time::Duration,
    },
    /// Write realistic, deterministic synthetic CRM, address, holdings and interaction data.
    Generate {
        #[arg(long, default_value_t = 3000)]
        customers: u64,
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// First day of interactions.
        #[arg(long, default_value = "2025-12-01")]
        start: NaiveDate,
        /// Output folder.
        out: PathBuf,
    },
}

/// Parses a run date: YYYY-MM-DD, in the range segflow's date arithmetic supports.
pub fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let trimmed = text.trim();
    let date = crate::sql::iso_date(trimmed).ok_or_else(|| {
        // Shaped like a date, but not one of the calendar's (2026-11-31, 2026-02-29).
        let shaped = trimmed.len() == 10
            && NaiveDate::parse_from_str(&format!("{}-01", &trimmed[..7]), "%Y-%m-%d").is_ok()
            && trimmed[8..].bytes().all(|b| b.is_ascii_digit())
            && trimmed.as_bytes()[7] == b'-';
        match shaped {
            true => format!("{trimmed} is not a day of the calendar: its month has fewer days"),
            false => format!("expected a date like 2026-11-20, not {text:?}"),
        }
    })?;
    crate::sql::supported_date(date).map_err(|range| format!("expected {range}"))
}

/// Parses durations like `90s`, `30m`, `2h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("expected a duration like 90s, 30m or 2h, not {text:?}");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => return Err(invalid()),
    };
    match number.checked_mul(scale) {
        Some(0) | None => Err(invalid()),
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
    }
}

/// Parses sizes like `4GiB`, `512MB`, `2g` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let invalid = || format!("expected a size like 512MiB, 4GiB or 2000000000, not {text:?}");
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(invalid()),
    };
    match (number * scale) as usize {
        0 => Err(format!(
            "{text:?} leaves no memory; give a size like 512MiB or 4GiB"
        )),
        bytes => Ok(bytes),
    }
}

/// `daily_segments` → `pipelines/daily_segments.yaml` when no such file exists (a folder of
/// that name, its data say, does not count).
pub fn pipeline_path(arg: &str) -> PathBuf {
    let path = Path::new(arg);
    if path.is_file() || arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        return path.to_owned();
    }
    Path::new("pipelines").join(format!("{arg}.yaml"))
}

fn load(arg: &str) -> Result<Pipeline, Error> {
    Ok(Pipeline::load(&pipeline_path(arg))?)
}

fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Each `--param` once: a second value would silently win over the first.
fn given_once(params: &[(String, String)]) -> Result<(), Error> {
    for (i, (name, second)) in params.iter().enumerate() {
        if let Some((_, first)) = params[..i].iter().find(|(n, _)| n == name) {
            return Err(Error::ParamTwice {
                name: name.clone(),
                first: first.clone(),
                second: second.clone(),
            });
        }
    }
    Ok(())
}

/// Runs the command the arguments name.
pub async fn execute(cli: Cli) -> Result<(), Error> {
    let show = cli.shows_progress();
    let json_logs = cli.log_format == LogFormat::Json;
    match cli.command {
        Command::Run {
            pipeline,
            date,
            args,
            json,
        } => {
            let options = args.options(date.unwrap_or_else(today))?;
            run_command(&pipeline, options, json, (show, json_logs)).await
        }
        Command::Backfill {
            pipeline,
            from,
            to,
            rerun,
            args,
        } => {
            let options = args.options(from)?;
            backfill_command(&pipeline, (from, to), rerun, options, (show, json_logs)).await
        }
        Command::Explain {
            pipeline,
            keys,
            date,
            params,
            json,
            engine,
        } => {
            let date = date.unwrap_or_else(today);
            given_once(&params)?;
            explain_command(&pipeline, &keys, date, &params, engine.engine, json).await
        }
        Command::Validate { pipeline } => validate_command(&pipeline).await,
        Command::Test { pipeline, filter } => test_command(&pipeline, filter.as_deref()).await,
        Command::Report {
            pipeline,
            date,
            open,
        } => report_command(&pipeline, date, open).await,
        Command::Plan { pipeline, format } => out(&render(&load(&pipeline)?, format)),
        Command::Scheduler {
            bind_host,
            port,
            external_host,
            executor_timeout,
        } => Ok(cluster::scheduler(SchedulerOptions {
            bind_host,
            port,
            external_host,
            executor_timeout,
        })
        .await?),
        Command::Executor {
            scheduler,
            bind_host,
            external_host,
            port,
            grpc_port,
            work_dir,
            concurrent_tasks,
            memory_limit,
            heartbeat,
        } => Ok(cluster::executor(ExecutorOptions {
            scheduler,
            bind_host,
            external_host,
            flight_port: port,
            grpc_port,
            work_dir: work_dir
                .unwrap_or_else(|| std::env::temp_dir().join(format!("segflow-executor-{port}"))),
            concurrent_tasks,
            memory_limit,
            heartbeat,
        })
        .await?),
        Command::Generate {
            customers,
            days,
            seed,
            start,
            out,
        } => generate_command(GenerateOptions {
            customers,
            days,
            seed,
            start,
            out,
        }),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).expect("reports serialize");
    out(&format!("{text}\n"))
}

/// Writes a command's result to standard output. A reader that stopped reading (`segflow plan
/// | head`) is no failure of the command, whose work stands; a write that fails otherwise is.
fn out(text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(source) if source.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output {
            published: None,
            source,
        }),
        _ => Ok(()),
    }
}

/// A line for the person running segflow, on standard error: nowhere to say it otherwise
/// when that fails, and the command's work stands.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Says which dates a rebuild left pending by an earlier command rebuilt first.
fn say_finished(finished: Option<&run::Finished>, json_logs: bool) {
    let Some(finished) = finished.filter(|f| !f.rebuilt.is_empty()) else {
        return;
    };
    let dates: Vec<String> = finished.rebuilt.iter().map(ToString::to_string).collect();
    let line = format!(
        "first finished the rebuild an earlier command left: rebuilt {} (their changes and history follow from {})",
        dates.join(", "),
        finished.after
    );
    match json_logs {
        true => tracing::info!(rebuilt = %dates.join(", "), "{line}"),
        false => note(&format!("segflow: {line}")),
    }
}

/// `run`; `(show, json_logs)`: whether to show progress, whether logs are JSON lines.
async fn run_command(
    pipeline: &str,
    options: RunOptions,
    json: bool,
    (show, json_logs): (bool, bool),
) -> Result<(), Error> {
    let pipeline = load(pipeline)?;
    let prefix = format!("{} {}", pipeline.name(), options.date);
    let display = progress::Display::run(show, options.progress.clone(), prefix);
    let report = run::run(&pipeline, &options).await;
    display.finish();
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            // Blocked, or a later date it rebuilt was: that date's report.
            let blocked = match &err {
                RunError::RebuildStopped { source, .. } => source.as_ref(),
                err => err,
            };
            if let (true, RunError::Blocked { report, .. }) = (json, blocked) {
                print_json(report)?;
            }
            return Err(err.into());
        }
    };
    say_finished(report.finished.as_ref(), json_logs);
    if !report.rebuilt.is_empty() {
        let dates: Vec<String> = report.rebuilt.iter().map(ToString::to_string).collect();
        // Later dates are rebuilt with the same `--param` values: say so, they change them.
        let names: Vec<String> = options
            .params
            .iter()
            .map(|(n, _)| format!("--param {n}"))
            .collect();
        let with = match names.is_empty() {
            true => String::new(),
            false => format!("; with the same {}", names.join(", ")),
        };
        let rebuilt = format!(
            "rebuilt the later runs {} (their changes and history follow from {}{with})",
            dates.join(", "),
            options.date
        );
        // Logs read as JSON lines carry it as one of them.
        if json_logs {
            tracing::info!(rebuilt = %dates.join(", "), "{rebuilt}");
        } else {
            note(&format!("segflow: {rebuilt}"));
        }
    }
    let said = match json {
        true => print_json(&report.manifest),
        false => out(&report.summary()),
    };
    said.map_err(|err| match err {
        Error::Output { source, .. } => Error::Output {
            published: Some(options.date),
            source,
        },
        err => err,
    })
}

/// `backfill` of the dates `(from, to)`; `(show, json_logs)` as for `run`.
async fn backfill_command(
    pipeline: &str,
    (from, to): (NaiveDate, NaiveDate),
    rerun: bool,
    options: RunOptions,
    (show, json_logs): (bool, bool),
) -> Result<(), Error> {
    if to < from {
        return Err(Error::BackwardRange { from, to });
    }
    let pipeline = load(pipeline)?;
    let days = (to - from).num_days() as u64 + 1;
    let prefix = format!("backfill {}", pipeline.name());
    let display = progress::Display::backfill(show, options.progress.clone(), prefix, days);
    let report = run::backfill(&pipeline, from, to, rerun, &options, |date, ran| {
        display.date_done(date, ran);
    })
    .await;
    display.finish();
    let report = report?;
    say_finished(report.finished.as_ref(), json_logs);
    let rebuilt = if report.rebuilt.is_empty() {
        String::new()
    } else {
        format!(", {} later runs rebuilt", report.rebuilt.len())
    };
    out(&format!(
        "backfilled {} from {from} to {to}: {} published, {} already published{rebuilt}\n",
        pipeline.name(),
        report.published.len(),
        report.skipped.len(),
    ))
}

async fn explain_command(
    pipeline: &str,
    keys: &[String],
    date: NaiveDate,
    params: &[(String, String)],
    engine: Engine,
    json: bool,
) -> Result<(), Error> {
    let pipeline = load(pipeline)?;
    let explanations = crate::explain::explain(&pipeline, keys, date, params, engine).await?;
    match (json, explanations.as_slice()) {
        (true, [one]) => print_json(one),
        (true, many) => print_json(&many),
        (false, all) => {
            let texts: Vec<String> = all.iter().map(|e| e.to_text()).collect();
            out(&texts.join("\n"))
        }
    }
}

async fn validate_command(pipeline: &str) -> Result<(), Error> {
    let pipeline = load(pipeline)?;
    run::validate(&pipeline).await?;
    // Test files are part of the pipeline: check them too, when there are any.
    let tests = if crate::unit_tests::test_files(&pipeline).is_empty() {
        0
    } else {
        crate::unit_tests::check_tests(&pipeline).await?
    };
    out(&format!(
        "{}: ok ({}, {tests} SQL tests)\n",
        pipeline.file().display(),
        pipeline.summary()
    ))
}

async fn test_command(pipeline: &str, filter: Option<&str>) -> Result<(), Error> {
    let pipeline = load(pipeline)?;
    let report = crate::unit_tests::run_tests(&pipeline, filter).await?;
    out(&report.to_text())?;
    match report.exit_code() {
        0 => Ok(()),
        _ => Err(Error::TestsFailed(report.failed())),
    }
}

async fn report_command(pipeline: &str, date: Option<NaiveDate>, open: bool) -> Result<(), Error> {
    let pipeline = load(pipeline)?;
    let page = run::rebuild_report(&pipeline, date).await?;
    out(&format!("{page}\n"))?;
    if open {
        let opened = std::process::Command::new("xdg-open")
            .arg(&page)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !opened {
            note(&format!(
                "segflow: no browser to open {page} here; open it yourself"
            ));
        }
    }
    Ok(())
}

fn generate_command(options: GenerateOptions) -> Result<(), Error> {
    let summary = generate::generate(&options)?;
    out(&format!(
        "wrote {} customers, {} address changes, {} holdings and {} interactions to {}\n",
        summary.customers,
        summary.address_changes,
        summary.holdings,
        summary.interactions,
        options.out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("0.1b").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
