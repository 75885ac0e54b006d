//! What a run records about itself: `manifest.json` in the run folder (written last) and the
//! `--json` report, which are the same document.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;
use crate::offers::OfferStats;
use crate::segments::{Flow, Overlap, SegmentStats};
use crate::sources::SourceInput;
use crate::store::Output;
use crate::suppressions::SuppressionStats;

/// The manifest's schema version: readers check it before relying on fields. Manifests
/// without one are version 1 (the same fields, timestamps as text).
pub const MANIFEST_VERSION: u32 = 2;

fn version_one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default = "version_one")]
    pub manifest_version: u32,
    pub pipeline: String,
    pub status: RunStatus,
    /// Published although an `error` check failed (`--force`).
    #[serde(default)]
    pub forced: bool,
    pub run_date: NaiveDate,
    pub run_id: String,
    pub segflow_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The published run this one was compared with (the latest before `run_date`).
    pub previous_run: Option<NaiveDate>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub inputs: Vec<SourceInput>,
    pub outputs: Vec<Output>,
    #[serde(default)]
    pub segments: Vec<SegmentStats>,
    /// Customers in both of two segments today.
    #[serde(default)]
    pub segment_overlap: Vec<Overlap>,
    /// How customers moved between segments since the previous run.
    #[serde(default)]
    pub migration: Vec<Flow>,
    #[serde(default)]
    pub suppressions: Vec<SuppressionStats>,
    #[serde(default)]
    pub offers: Vec<OfferStats>,
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Values the identifier functions could not normalize (they became NULL); None when
    /// they ran on a cluster's executors, which do not report what they counted.
    #[serde(default)]
    pub invalid_identifiers: Option<InvalidIdentifiers>,
    pub steps: Vec<Step>,
    /// How each feature table was brought up to date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<crate::features::FeatureMaintenance>,
    /// Set when a later run rewrote this one to remove customers erased since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_applied_by: Option<String>,
}

impl Manifest {
    /// A manifest for a run that is starting: what it will be compared with, no results yet.
    pub(crate) fn start(
        pipeline: &str,
        run_date: NaiveDate,
        run_id: &str,
        previous_run: Option<NaiveDate>,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self {
            manifest_version: MANIFEST_VERSION,
            pipeline: pipeline.to_string(),
            status: RunStatus::Published,
            forced: false,
            run_date,
            run_id: run_id.to_string(),
            segflow_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Utc::now(),
            finished_at: None,
            previous_run,
            parameters,
            inputs: Vec::new(),
            outputs: Vec::new(),
            segments: Vec::new(),
            segment_overlap: Vec::new(),
            migration: Vec::new(),
            suppressions: Vec::new(),
            offers: Vec::new(),
            checks: Vec::new(),
            invalid_identifiers: None,
            steps: Vec::new(),
            features: Vec::new(),
            erasure_applied_by: None,
        }
    }

    /// Rows of the output named `name` (0 when the run has none).
    pub(crate) fn output_rows(&self, name: &str) -> u64 {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .map_or(0, |o| o.rows)
    }

    /// Whether a failed `error` check stops this run.
    pub(crate) fn blocked_by_checks(&self) -> bool {
        self.checks.iter().any(CheckResult::blocks)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_without_a_version_read_as_version_one() {
        let text = r#"{"pipeline":"p","status":"published","run_date":"2026-11-20","run_id":"r",
            "segflow_version":"0.1.0","started_at":"2026-11-20T06:00:00.000Z",
            "finished_at":"2026-11-20T06:01:00.000Z","previous_run":null,"parameters":{},
            "inputs":[],"outputs":[],"steps":[]}"#;
        let manifest: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(manifest.manifest_version, 1);
        assert_eq!(
            manifest.started_at.to_rfc3339(),
            "2026-11-20T06:00:00+00:00"
        );
    }
}
