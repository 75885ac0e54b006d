//! The command line: argument types and one function per command. Results go to stdout;
//! progress and timings go to stderr through tracing.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::{self, EngineOptions};
use crate::error::Error;
use crate::generate::{self, GenerateOptions};
use crate::pipeline::Pipeline;
use crate::pipeline::render::{PlanFormat, render};
use crate::run::{self, RunOptions};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline for one date and publish its outputs atomically.
    Run {
        /// The pipeline file, or its name under pipelines/ (e.g. daily_segments).
        pipeline: String,
        /// The run date, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Override a declared parameter: --param name=value (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Memory DataFusion may use before spilling to disk, e.g. 4GiB.
        #[arg(long)]
        memory_limit: Option<String>,
        /// Print the run's manifest as JSON on stdout (also when blocked).
        #[arg(long)]
        json: bool,
        /// Publish even if an `error` check or circuit breaker fails; recorded in the manifest.
        #[arg(long)]
        force: bool,
    },
    /// Run every date from --from to --to in order, skipping dates already published.
    Backfill {
        pipeline: String,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        /// Run dates that are already published again.
        #[arg(long)]
        rerun: bool,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        memory_limit: Option<String>,
        /// Publish even if an `error` check or circuit breaker fails.
        #[arg(long)]
        force: bool,
    },
    /// Why a customer is or is not in each segment on a date.
    Explain {
        pipeline: String,
        /// The customer's key.
        #[arg(long)]
        key: String,
        /// The date to explain (default: today, UTC).
        #[arg(long)]
        date: Option<NaiveDate>,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Print JSON for tools instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the YAML, the SQL, the DAG and every model's plan against the sources' schemas,
    /// without reading data rows.
    Validate { pipeline: String },
    /// Run the pipeline's SQL unit tests (pipelines/<name>.tests.yaml, tests/<name>/*.yaml):
    /// given rows in, expected rows out, in memory.
    Test {
        pipeline: String,
        /// Only run tests whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show the DAG and what a run would do.
    Plan {
        pipeline: String,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
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

/// `daily_segments` → `pipelines/daily_segments.yaml` when no such file exists.
pub fn pipeline_path(arg: &str) -> PathBuf {
    let path = Path::new(arg);
    if path.exists() || arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        return path.to_owned();
    }
    Path::new("pipelines").join(format!("{arg}.yaml"))
}

fn engine_options(memory_limit: Option<&str>) -> Result<EngineOptions, Error> {
    Ok(EngineOptions {
        memory_limit: memory_limit
            .map(engine::parse_size)
            .transpose()
            .map_err(crate::run::RunError::from)?,
    })
}

pub async fn execute(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run {
            pipeline,
            date,
            params,
            memory_limit,
            json,
            force,
        } => {
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            let options = RunOptions {
                date: date.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                params,
                engine: engine_options(memory_limit.as_deref())?,
                force,
            };
            let report = match run::run(&pipeline, &options).await {
                Ok(report) => report,
                Err(err) => {
                    if let (true, run::RunError::Blocked { report, .. }) = (json, &err) {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(report).expect("report serializes")
                        );
                    }
                    return Err(err.into());
                }
            };
            let rebuilt = run::rebuild_following(&pipeline, options.date, &options).await?;
            if !rebuilt.is_empty() {
                let dates: Vec<String> = rebuilt.iter().map(ToString::to_string).collect();
                eprintln!(
                    "segflow: rebuilt the later runs {} (their changes and history follow from {})",
                    dates.join(", "),
                    options.date
                );
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.manifest).expect("manifest serializes")
                );
            } else {
                print!("{}", report.summary());
            }
        }
        Command::Backfill {
            pipeline,
            from,
            to,
            rerun,
            params,
            memory_limit,
            force,
        } => {
            if to < from {
                return Err(Error::Usage(format!("--to {to} is before --from {from}")));
            }
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            let options = RunOptions {
                date: from,
                params,
                engine: engine_options(memory_limit.as_deref())?,
                force,
            };
            let days = (to - from).num_days() as u64 + 1;
            let bar = indicatif::ProgressBar::new(days).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} dates, {elapsed} ({msg})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("backfill {}", pipeline.name));
            let report = run::backfill(&pipeline, from, to, rerun, &options, |date, ran| {
                bar.set_message(format!(
                    "{date} {}",
                    if ran {
                        "published"
                    } else {
                        "already published"
                    }
                ));
                bar.inc(1);
            })
            .await;
            bar.finish_and_clear();
            let report = report?;
            println!(
                "backfilled {} from {from} to {to}: {} published, {} already published{}",
                pipeline.name,
                report.published.len(),
                report.skipped.len(),
                if report.rebuilt.is_empty() {
                    String::new()
                } else {
                    format!(", {} later runs rebuilt", report.rebuilt.len())
                }
            );
        }
        Command::Explain {
            pipeline,
            key,
            date,
            params,
            json,
        } => {
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            let date = date.unwrap_or_else(|| chrono::Utc::now().date_naive());
            let explanation = crate::explain::explain(&pipeline, &key, date, &params).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&explanation).expect("serializes")
                );
            } else {
                print!("{}", explanation.to_text());
            }
        }
        Command::Validate { pipeline } => {
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            run::validate(&pipeline).await?;
            // Test files are part of the pipeline: check them too, when there are any.
            let tests = if crate::unit_tests::test_files(&pipeline).is_empty() {
                0
            } else {
                crate::unit_tests::check_tests(&pipeline).await?
            };
            println!(
                "{}: ok ({} sources, {} models, {} segments, {} suppressions, {} offers, {} checks, {} SQL tests)",
                pipeline.file.display(),
                pipeline.sources.len(),
                pipeline.models.len(),
                pipeline.segments.as_ref().map_or(0, |s| s.list.len()),
                pipeline.suppressions.len(),
                pipeline.offers.as_ref().map_or(0, |o| o.list.len()),
                pipeline.checks.len(),
                tests
            );
        }
        Command::Test { pipeline, filter } => {
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            let report = crate::unit_tests::run_tests(&pipeline, filter.as_deref()).await?;
            print!("{}", report.to_text());
            if report.failed() > 0 {
                return Err(Error::TestsFailed(report.failed()));
            }
        }
        Command::Plan { pipeline, format } => {
            let pipeline = Pipeline::load(&pipeline_path(&pipeline))?;
            print!("{}", render(&pipeline, format));
        }
        Command::Generate {
            customers,
            days,
            seed,
            start,
            out,
        } => {
            let summary = generate::generate(&GenerateOptions {
                customers,
                days,
                seed,
                start,
                out: out.clone(),
            })?;
            println!(
                "wrote {} customers, {} address changes, {} holdings and {} interactions to {}",
                summary.customers,
                summary.address_changes,
                summary.holdings,
                summary.interactions,
                out.display()
            );
        }
    }
    Ok(())
}
