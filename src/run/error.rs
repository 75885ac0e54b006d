//! Why a run failed, and the exit code each reason maps to.

use crate::checks::ChecksError;
use crate::engine::{EngineError, PlanError};
use crate::features::FeatureError;
use crate::models::ModelError;
use crate::offers::OffersError;
use crate::report::Manifest;
use crate::segments::SegmentsError;
use crate::sources::SourceError;
use crate::sql::ParamError;
use crate::store::StoreError;
use crate::suppressions::SuppressionsError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Suppressions(#[from] SuppressionsError),
    #[error(transparent)]
    Segments(#[from] SegmentsError),
    #[error(transparent)]
    Offers(#[from] OffersError),
    #[error(transparent)]
    Checks(#[from] ChecksError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectsError),
    #[error(
        "blocked: nothing was published for {}; what was published before stays as it was{}\n{}",
        .report.run_date,
        .kept.as_ref().map(|p| format!(" (report and failing rows: {p})")).unwrap_or_default(),
        .failures.join("\n")
    )]
    Blocked {
        failures: Vec<String>,
        report: Box<Manifest>,
        kept: Option<String>,
    },
    /// Date or number arithmetic in the SQL left the supported range, most often because of
    /// a `--date` or a `--param` far from what the SQL expects.
    #[error(
        "{step} overflowed computing dates or numbers with --date {date}{overrides}; dates in SQL must stay between 1900-01-01 and 2199-12-31 (check --date and --param)"
    )]
    Overflow {
        step: String,
        date: chrono::NaiveDate,
        /// ` and --param name=value…` for every override.
        overrides: String,
        #[source]
        source: Box<RunError>,
    },
    #[error(
        "the run for {date} took longer than --timeout {} and was stopped during {step}; nothing was published ({})",
        humanize(*.limit),
        timeout_advice(step)
    )]
    Timeout {
        date: chrono::NaiveDate,
        limit: std::time::Duration,
        step: String,
    },
    /// A date asked for has no run, published or blocked.
    #[error(
        "no run is published or blocked for {date} (published: {published}; blocked: {blocked})"
    )]
    NoRun {
        date: chrono::NaiveDate,
        published: String,
        blocked: String,
    },
    /// The key renamed or retyped since the run a run follows.
    #[error(
        "the pipeline keys customers by {now}, but the run of {date} it follows keyed them by {was}: changes and history follow each customer from run to run by key and cannot carry over to another; keep the key's name and type (cast it in the profile's SQL), or publish to a new output.uri to start a new history there"
    )]
    KeyChanged {
        date: chrono::NaiveDate,
        was: String,
        now: String,
    },
    /// `segflow report` without a date where no run is published.
    #[error("{root}: no run is published yet{}", if .blocked.is_empty() { String::new() } else { format!(" (blocked: {}; give --date to rebuild a blocked run's page)", .blocked) })]
    NothingPublished { root: String, blocked: String },
    /// `explain --key` given text where the profile's key is a whole number.
    #[error("--key {given}: {key} is a whole number in {profile}; give one like --key 42")]
    NotAKey {
        given: String,
        key: String,
        profile: String,
    },
    /// A rerun was published, but a later date it invalidated could not be rebuilt.
    #[error(
        "{rerun} was published, but rebuilding the runs after it stopped at {stopped}: the published runs from {stopped} on do not follow from it yet, so fix what stopped it and run `segflow backfill {pipeline} --from {stopped} --to {last} --rerun{params}`{}",
        if matches!(**.source, RunError::Blocked { .. }) { " (with --force to publish despite failed checks)" } else { "" }
    )]
    RebuildStopped {
        rerun: chrono::NaiveDate,
        stopped: chrono::NaiveDate,
        last: chrono::NaiveDate,
        pipeline: String,
        /// ` --param name=value` for each of the rerun's, which the later dates take too.
        params: String,
        source: Box<RunError>,
    },
}

/// What to look at when a run ran out of time in `step`.
fn timeout_advice(step: &str) -> &'static str {
    if step.contains("lock") {
        "another run of the pipeline held its lock all that time: see which with the lock file, or raise --timeout"
    } else {
        "look for a join without a condition or a recursive query that never ends, or raise --timeout"
    }
}

fn humanize(limit: std::time::Duration) -> String {
    let secs = limit.as_secs();
    match secs {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl RunError {
    /// 2 when the pipeline or the arguments must change, 3 when a gate blocked the run, 1 for
    /// failures while running.
    pub fn exit_code(&self) -> u8 {
        let invalid = match self {
            RunError::Blocked { .. } => return 3,
            RunError::RebuildStopped { source, .. } => return source.exit_code(),
            RunError::Params(_) | RunError::Plan(_) | RunError::Objects(_) => true,
            RunError::Source(e) => !matches!(e, SourceError::Unreadable { .. }),
            RunError::Model(e) => matches!(e, ModelError::Plan(_)),
            RunError::Feature(e) => matches!(e, FeatureError::Plan(_)),
            RunError::Suppressions(e) => matches!(e, SuppressionsError::Plan(_)),
            RunError::Segments(e) => matches!(e, SegmentsError::Plan(_)),
            RunError::Offers(e) => matches!(e, OffersError::Plan(_)),
            RunError::Checks(e) => matches!(e, ChecksError::Plan(_)),
            RunError::Store(_) => false,
            RunError::Engine(e) => matches!(e, EngineError::Setting { .. }),
            RunError::Timeout { .. } => false,
            RunError::NoRun { .. }
            | RunError::NothingPublished { .. }
            | RunError::NotAKey { .. }
            | RunError::KeyChanged { .. } => true,
            RunError::Overflow { .. } => true,
        };
        if invalid { 2 } else { 1 }
    }
}
