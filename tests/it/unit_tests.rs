//! `segflow test`: the SQL unit tests of tests/fixtures/unit, passing, failing with a row diff,
//! and invalid.

use crate::support::{Project, cli_snapshot, python};

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

/// Given rows of a column with a time zone are read as that zone's wall-clock time, and its
/// values are shown with their offset (`12:00:00+01:00`); an expected time without an offset
/// was compared as UTC, so the sample's `last_purchase: "2026-11-10T12:00:00"` failed and the
/// wrong `11:00:00` passed. It is now the column's wall-clock time, as given rows are.
#[test]
fn expected_times_of_a_zoned_column_are_its_wall_clock_times() {
    let p = Project::sample();
    let events = p.path("zoned/year=2026/month=11");
    std::fs::create_dir_all(&events).unwrap();
    let from = p.path("data/sample/events/year=2026/month=11/part-00000.parquet");
    python(&format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         t = pq.read_table({from:?}, partitioning=None)\n\
         i = t.schema.get_field_index('event_time')\n\
         c = t['event_time'].cast(pa.timestamp('us', tz='Europe/Paris'))\n\
         t = t.set_column(i, pa.field('event_time', c.type, False), c)\n\
         pq.write_table(t, {to:?})\n",
        to = events.join("part-00000.parquet"),
    ));
    p.edit(
        "pipelines/daily_segments.yaml",
        "uri: data/sample/events/",
        "uri: zoned/",
    );
    let tests = "pipelines/daily_segments.tests.yaml";
    let expected = "last_purchase: \"2026-11-10T12:00:00\"";
    assert!(p.read(tests).contains(expected));
    let out = p.ok(&["test", "daily_segments"]);
    assert!(out.contains("5 passed, 0 failed"), "{out}");
    p.edit(tests, expected, "last_purchase: \"2026-11-10T11:00:00\"");
    let out = test_output(&p, &["test", "daily_segments"], 1);
    assert!(
        out.contains("+ 1") && out.contains("2026-11-10T12:00:00+01:00"),
        "{out}"
    );
}

/// A number written unquoted for a text column was compared (or given) as YAML retyped it:
/// `+33612345678` matched the text `33612345678`, `007` was given as `7`.
#[test]
fn a_number_unquoted_for_a_text_column_is_refused_at_its_line() {
    let p = Project::fixture("unit");
    let tests = p.read(TESTS);
    let probe = "\n  - name: text_as_written\n    given:\n      customers:\n        - { customer_id: 1, first_name: \"33612345678\", signup_date: 2025-01-01 }\n    expect:\n      model: profile\n      columns: [customer_id, first_name]\n      rows:\n        - { customer_id: 1, first_name: +33612345678 }\n";
    p.write(TESTS, &format!("{tests}{probe}"));
    let line = tests.lines().count() + 10;
    let err = p.fails(&["test", PIPELINE], 2);
    assert!(
        err.contains(&format!("pipelines/unit.tests.yaml:{line}:"))
            && err.contains("expect.rows row 1, column first_name: the column is text and YAML reads 33612345678 unquoted as a number, which it may not keep as written (+33612345678, 007); quote it"),
        "{err}"
    );
    let given = probe
        .replace("first_name: \"33612345678\"", "first_name: +33612345678")
        .replace(
            "first_name: +33612345678 }\n",
            "first_name: \"+33612345678\" }\n",
        );
    p.write(TESTS, &format!("{tests}{given}"));
    let err = p.fails(&["test", PIPELINE], 2);
    assert!(
        err.contains("given.customers row 1, column first_name: the column is text and YAML reads 33612345678 unquoted"),
        "{err}"
    );
    // Quoted, both compare as written.
    let quoted = probe.replace("first_name: +33612345678", "first_name: \"+33612345678\"");
    p.write(TESTS, &format!("{tests}{quoted}"));
    let out = test_output(&p, &["test", PIPELINE], 1);
    assert!(
        out.contains("FAIL") && out.contains("text_as_written"),
        "{out}"
    );
}

/// A profile with two rows for a customer, which a run refuses, gave a test an audience with
/// the customer twice (passing a test written to expect it).
#[test]
fn a_profile_with_a_customer_twice_fails_a_test_as_it_fails_a_run() {
    let p = Project::fixture("unit");
    let tests = p.read(TESTS);
    let probe = "\n  - name: twice\n    given:\n      profile:\n        - { customer_id: 1, first_name: Ada, spend_365d: 700.0, days_since_last_purchase: 90 }\n        - { customer_id: 1, first_name: Ada, spend_365d: 700.0, days_since_last_purchase: 90 }\n    expect:\n      segment: lapsing_big_spenders\n      columns: [customer_id]\n      rows:\n        - { customer_id: 1 }\n        - { customer_id: 1 }\n";
    p.write(TESTS, &format!("{tests}{probe}"));
    let out = test_output(&p, &["test", PIPELINE, "--filter", "twice"], 1);
    assert!(
        out.contains("FAIL")
            && out
                .contains("model profile has more than one row for 1 customer_id values (2 rows)"),
        "{out}"
    );
}
