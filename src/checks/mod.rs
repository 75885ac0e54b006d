//! Quality gates and circuit breakers: nothing bad gets published.
//!
//! Source and model checks run after the models, before any audience is computed; circuit
//! breakers run once audiences and offers are known, against the previous published run. A
//! failed `error` check blocks the run (exit code 3) unless `--force`; a failed `warn` check is
//! recorded. Every result goes into the manifest, and up to [`SAMPLE_ROWS`] failing rows of a
//! row check are written to `checks/<name>/` for inspection.

mod breakers;
mod compile;
mod sql;
mod step;

pub(crate) use breakers::{Sizes, run_breakers};
pub(crate) use compile::{Check, CheckKind, Checkable, Target, compile};
pub use step::{CheckResult, Status};
pub(crate) use step::{ChecksError, plan, run_table_checks};

/// Failing rows kept per check.
pub(crate) const SAMPLE_ROWS: usize = 100;
