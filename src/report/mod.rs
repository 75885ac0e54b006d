//! What a run records about itself: `manifest.json` in the run folder (written last) and the
//! `--json` report, which are the same document.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;
use crate::engine::SourceInput;
use crate::offers::OfferStats;
use crate::segments::SegmentStats;
use crate::store::{ColumnSchema, WrittenFile};
use crate::suppressions::SuppressionStats;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub pipeline: String,
    pub status: RunStatus,
    /// Published although an `error` check failed (`--force`).
    #[serde(default)]
    pub forced: bool,
    pub run_date: NaiveDate,
    pub run_id: String,
    pub segflow_version: String,
    pub started_at: String,
    pub finished_at: String,
    /// The published run this one was compared with (the latest before `run_date`).
    pub previous_run: Option<NaiveDate>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub inputs: Vec<SourceInput>,
    pub outputs: Vec<Output>,
    #[serde(default)]
    pub segments: Vec<SegmentStats>,
    #[serde(default)]
    pub suppressions: Vec<SuppressionStats>,
    #[serde(default)]
    pub offers: Vec<OfferStats>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Values the identifier functions could not normalize (they became NULL).
    #[serde(default)]
    pub invalid_identifiers: InvalidIdentifiers,
    pub steps: Vec<Step>,
    /// Set when a later run rewrote this one to remove customers erased since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_applied_by: Option<String>,
}

/// One published table of the run: a folder of Parquet files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub kind: OutputKind,
    /// The folder (or file) relative to the run folder.
    pub path: String,
    pub rows: u64,
    pub files: Vec<WrittenFile>,
    pub schema: Vec<ColumnSchema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Model,
    Audience,
    Changes,
    Migration,
    Suppressed,
    Offers,
    Decisions,
    State,
}

/// How long one step of the run took and how many rows it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub rows: Option<u64>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InvalidIdentifiers {
    pub emails: u64,
    pub phones: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Published,
    /// Stopped by a quality gate or circuit breaker: nothing was published.
    Blocked,
}
