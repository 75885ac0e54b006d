//! `segflow test`: the SQL unit tests of tests/fixtures/unit, passing, failing with a row diff,
//! and invalid.

use crate::support::{Project, cli_snapshot};

const PIPELINE: &str = "pipelines/unit.yaml";
const TESTS: &str = "pipelines/unit.tests.yaml";

/// Runs `segflow test` expecting exit `code`; returns stdout.
fn test_output(p: &Project, args: &[&str], code: i32) -> String {
    let out = p.segflow(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "segflow {args:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.hide_paths(&stdout)
}

#[test]
fn all_tests_pass() {
    let p = Project::fixture("unit");
    cli_snapshot!(p, &["test", PIPELINE]);
    // Tests run in memory: nothing is published.
    assert!(!p.path("out").exists());
}

#[test]
fn a_failing_expectation_exits_1_with_a_row_diff() {
    let p = Project::fixture("unit");
    p.edit(
        TESTS,
        "{ customer_id: 2, spend_365d: 20.5, last_purchase_on: 2026-11-20 }",
        "{ customer_id: 2, spend_365d: 119.5, last_purchase_on: 2026-11-21 }",
    );
    cli_snapshot!(p, &["test", PIPELINE]);
}

#[test]
fn a_sql_change_that_breaks_a_model_fails_its_tests() {
    let p = Project::fixture("unit");
    // Spend no longer stops at the run date.
    p.edit(
        "sql/unit/spend.sql",
        "WHERE purchased_at < $run_date + INTERVAL '1 day'\n  AND",
        "WHERE",
    );
    let out = test_output(&p, &["test", PIPELINE], 1);
    assert!(
        out.starts_with(
            "FAIL pipelines/unit.tests.yaml:5 spend_counts_the_year_up_to_the_run_date\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "  - 2           | 20.5       | 2026-11-20\n  + 2           | 119.5      | 2026-11-21\n"
        ),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "7 passed, 1 failed"), "{out}");
}

#[test]
fn an_invalid_test_file_exits_2_naming_the_line() {
    let p = Project::fixture("unit");
    p.edit(
        TESTS,
        "{ customer_id: 1, first_name: Ada, signup_date: 2025-01-01 }",
        "{ customer_id: 1, first_nme: Ada, signup_date: 2025-01-01 }",
    );
    p.edit(TESTS, "model: spend", "model: spending");
    cli_snapshot!(p, &["test", PIPELINE]);
}

#[test]
fn malformed_yaml_in_a_test_folder_exits_2() {
    let p = Project::fixture("unit");
    p.write(
        "tests/unit/broken.yaml",
        "tests:\n  - name: x\n    expect: { model: spend, rows: [ }\n",
    );
    let err = p.fails(&["test", PIPELINE], 2);
    assert!(err.contains("tests/unit/broken.yaml:3:"), "{err}");
    assert!(err.contains("malformed YAML"), "{err}");
}

/// A misspelt `--filter` ran nothing and passed; a test file in a subfolder of the tests' folder
/// was skipped. Now the first is an error naming the tests, and the second runs.
#[test]
fn a_filter_matching_no_test_fails_and_subfolders_are_read() {
    let p = Project::fixture("unit");
    let err = p.fails(&["test", PIPELINE, "--filter", "no_such_test"], 2);
    assert!(
        err.contains("no test's name contains \"no_such_test\"; the pipeline's tests: "),
        "{err}"
    );
    p.write(
        "tests/unit/nested/broken.yaml",
        "tests:\n  - name: x\n    expect: { model: spend, rows: [ }\n",
    );
    let err = p.fails(&["test", PIPELINE], 2);
    assert!(err.contains("tests/unit/nested/broken.yaml:3:"), "{err}");
}
