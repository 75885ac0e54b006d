//! `segflow test`: SQL unit tests. Given a few rows for some sources (or models), a model,
//! segment, suppression or the offers must produce exactly the expected rows.
//!
//! Tests live beside the pipeline in `pipelines/<pipeline file stem>.tests.yaml` and/or in
//! `tests/<pipeline name>/*.yaml` under the project root:
//!
//! ```yaml
//! run_date: 2026-11-20                # default for every test below (required somewhere)
//! params: { quiet_days: 60 }          # optional overrides for every test
//! given:                              # optional rows for every test
//!   customers:
//!     - { customer_id: 1, first_name: Ada, signup_date: 2025-01-01 }
//! tests:
//!   - name: lapsed_big_spender_is_in_segment
//!     run_date: 2026-11-20            # overrides the file's
//!     params: { big_spend: 100 }      # typed like --param
//!     given:                          # replaces a table given at the top of the file
//!       purchases:
//!         - { customer_id: 1, purchased_at: "2026-10-01T10:00:00", amount: 700.0 }
//!     expect:
//!       segment: lapsing_big_spenders # exactly one of model | segment | suppression | offers
//!       columns: [customer_id, group] # optional; default: the keys of the first row
//!       rows:                         # in any order; [] expects no rows
//!         - { customer_id: 1, group: treatment }
//! ```
//!
//! Each test runs in memory in a fresh session: every source is an in-memory table with the
//! schema of its real files, holding the given rows (no rows when not given; columns not given
//! are NULL); a model given rows is replaced by them; the models the expectation needs run as
//! views in DAG order; segments, suppressions and offers run exactly as in `segflow run`
//! (erasure, suppressions, groups) into a scratch folder that is removed afterwards.

mod compare;
mod execute;
mod prepare;
mod rows;
mod spec;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::engine::EngineError;
use crate::location::{Diagnostic, Location};
use crate::pipeline::Pipeline;
use crate::sources::SourceError;

/// What became of one test.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    pub name: String,
    /// What the test checks, as its file says.
    pub description: Option<String>,
    /// The test's `- name:` item in its file.
    pub at: Location,
    /// Why it failed: the row diff, or the error that stopped the test's SQL. `None` passed.
    pub failure: Option<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Every test that ran, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestReport {
    pub outcomes: Vec<TestOutcome>,
    /// Tests not run because their name does not contain the filter.
    pub filtered_out: usize,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// 0 when every test passed, 1 when any failed.
    pub fn exit_code(&self) -> i32 {
        if self.failed() == 0 { 0 } else { 1 }
    }

    /// One line per test, then each failure's diff, then `N passed, M failed`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let place = |o: &TestOutcome| format!("{}:{}", o.at.file.display(), o.at.line);
        for outcome in &self.outcomes {
            let status = if outcome.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "{status} {} {}", place(outcome), outcome.name);
        }
        for outcome in &self.outcomes {
            if let Some(failure) = &outcome.failure {
                let _ = writeln!(out, "\n--- FAIL {} {}", place(outcome), outcome.name);
                if let Some(description) = &outcome.description {
                    let _ = writeln!(out, "{}", description.trim());
                }
                let _ = writeln!(out, "{failure}");
            }
        }
        if !self.outcomes.is_empty() {
            out.push('\n');
        }
        if self.filtered_out > 0 {
            let _ = writeln!(
                out,
                "{} test{} filtered out",
                self.filtered_out,
                if self.filtered_out == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(out, "{} passed, {} failed", self.passed(), self.failed());
        out
    }
}

/// Test files that cannot be run as written (exit 2), or sources that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UnitTestError {
    #[error(transparent)]
    Read(#[from] crate::spec::TextError),
    /// Every problem found in the test files, each at its file, line and column.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    #[error(
        "no tests for pipeline {pipeline}: write them in {} or in {}/*.yaml",
        .beside.display(),
        .folder.display()
    )]
    NoTests {
        pipeline: String,
        beside: PathBuf,
        folder: PathBuf,
    },
    /// `--filter` matched no test: a misspelt filter would otherwise pass with nothing run.
    #[error("no test's name contains {filter:?}; the pipeline's tests: {}", .names.join(", "))]
    NoneMatch { filter: String, names: Vec<String> },
    /// The sources' real files give the tables their schemas; they could not be read.
    #[error("tests take each source's schema from its files")]
    Source(#[from] SourceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Objects(#[from] crate::objects::ObjectsError),
}

impl UnitTestError {
    /// 2 when a test file or the pipeline must change; 1 when a source could not be read.
    pub fn exit_code(&self) -> u8 {
        match self {
            UnitTestError::Source(SourceError::Missing { .. }) => 2,
            UnitTestError::Source(_) | UnitTestError::Engine(_) => 1,
            _ => 2,
        }
    }
}

/// `pipelines/<stem>.tests.yaml`, beside the pipeline file.
pub fn beside_file(pipeline: &Pipeline) -> PathBuf {
    let stem = pipeline.file.file_stem().map_or_else(
        || pipeline.name.clone(),
        |s| s.to_string_lossy().into_owned(),
    );
    pipeline.file.with_file_name(format!("{stem}.tests.yaml"))
}

/// `tests/<pipeline name>/` under the project root.
pub fn tests_folder(pipeline: &Pipeline) -> PathBuf {
    let relative = Path::new("tests").join(&pipeline.name);
    if pipeline.root == Path::new(".") {
        relative
    } else {
        pipeline.root.join(relative)
    }
}

/// The pipeline's test files: the one beside it first, then the folder's `*.yaml` / `*.yml`,
/// its subfolders' included, in path order.
pub fn test_files(pipeline: &Pipeline) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let beside = beside_file(pipeline);
    if beside.is_file() {
        files.push(beside);
    }
    let mut found = Vec::new();
    yaml_files(&tests_folder(pipeline), &mut found);
    found.sort();
    files.extend(found);
    files
}

/// The `*.yaml` / `*.yml` files under `folder`, at any depth.
fn yaml_files(folder: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path.is_file() && path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

/// Reads and checks every test file of the pipeline without running a test (for `validate`);
/// returns how many tests there are.
pub async fn check_tests(pipeline: &Pipeline) -> Result<usize, UnitTestError> {
    Ok(load(pipeline).await?.1.len())
}

/// Runs the pipeline's tests whose name contains `filter` (all when `None`).
///
/// Every test file is read and checked first (tables, columns, values, parameters, targets);
/// any problem stops before a test runs, with every problem listed.
pub async fn run_tests(
    pipeline: &Pipeline,
    filter: Option<&str>,
) -> Result<TestReport, UnitTestError> {
    let (tables, tests) = load(pipeline).await?;
    let total = tests.len();
    let names: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
    let selected: Vec<prepare::PreparedTest> = tests
        .into_iter()
        .filter(|t| filter.is_none_or(|f| t.name.contains(f)))
        .collect();
    let filtered_out = total - selected.len();
    if let Some(filter) = filter.filter(|_| selected.is_empty()) {
        return Err(UnitTestError::NoneMatch {
            filter: filter.to_string(),
            names,
        });
    }
    let parallel = std::thread::available_parallelism().map_or(4, |n| n.get().clamp(1, 8));
    let outcomes = futures::stream::iter(&selected)
        .map(|test| async {
            TestOutcome {
                name: test.name.clone(),
                description: test.description.clone(),
                at: test.at.clone(),
                failure: execute::run_test(pipeline, &tables, test).await,
            }
        })
        .buffered(parallel)
        .collect()
        .await;
    Ok(TestReport {
        outcomes,
        filtered_out,
    })
}

/// The pipeline's tables and its tests, checked.
async fn load(
    pipeline: &Pipeline,
) -> Result<(prepare::Tables, Vec<prepare::PreparedTest>), UnitTestError> {
    let files = test_files(pipeline);
    if files.is_empty() {
        return Err(UnitTestError::NoTests {
            pipeline: pipeline.name.clone(),
            beside: beside_file(pipeline),
            folder: tests_folder(pipeline),
        });
    }
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let text = crate::spec::read_text(&path)?;
        match spec::parse(&path, &text) {
            Ok(file) => parsed.push((path, text, file)),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(UnitTestError::Invalid(problems));
    }

    let tables = prepare::Tables::discover(pipeline).await?;
    let mut names = prepare::Names::default();
    let mut tests = Vec::new();
    for (path, text, file) in &parsed {
        tests.extend(prepare::prepare_file(
            pipeline,
            &tables,
            path,
            text,
            file,
            &mut names,
            &mut problems,
        ));
    }
    if !problems.is_empty() {
        return Err(UnitTestError::Invalid(problems));
    }

    Ok((tables, tests))
}

#[cfg(test)]
mod tests;
