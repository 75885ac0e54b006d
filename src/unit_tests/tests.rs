//! The runner on the fixture project under tests/fixtures/unit, through the library API.

use std::path::Path;

use super::*;

/// A copy of tests/fixtures/unit in a temporary folder.
struct Fixture {
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unit"),
            dir.path(),
        );
        Self { dir }
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn edit(&self, relative: &str, from: &str, to: &str) {
        let path = self.dir.path().join(relative);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{relative} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    fn pipeline(&self) -> Pipeline {
        Pipeline::load(&self.dir.path().join("pipelines/unit.yaml")).unwrap()
    }

    async fn run(&self, filter: Option<&str>) -> Result<TestReport, UnitTestError> {
        run_tests(&self.pipeline(), filter).await
    }

    /// `text` with the fixture's folder left out of paths.
    fn hide(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.dir.path().display()), "")
    }
}

const TESTS: &str = "pipelines/unit.tests.yaml";

#[tokio::test]
async fn the_fixture_tests_pass() {
    let fixture = Fixture::new();
    let report = fixture.run(None).await.unwrap();
    let text = fixture.hide(&report.to_text());
    assert_eq!(report.failed(), 0, "{text}");
    assert_eq!(
        text,
        "\
ok   pipelines/unit.tests.yaml:5 spend_counts_the_year_up_to_the_run_date
ok   pipelines/unit.tests.yaml:18 profile_counts_days_since_the_last_purchase
ok   pipelines/unit.tests.yaml:33 lapsed_big_spender_is_in_segment
ok   pipelines/unit.tests.yaml:49 a_higher_threshold_empties_the_segment
ok   pipelines/unit.tests.yaml:60 opted_out_customers_are_suppressed_from_the_run_date_on
ok   pipelines/unit.tests.yaml:74 opted_out_big_spenders_leave_the_audience
ok   tests/unit/offers.yaml:10 quiet_customers_get_the_welcome_back_offer
ok   tests/unit/offers.yaml:23 recent_buyers_get_no_offer

8 passed, 0 failed
"
    );
    assert_eq!(report.exit_code(), 0);
    assert_eq!(check_tests(&fixture.pipeline()).await.unwrap(), 8);
}

#[tokio::test]
async fn a_wrong_expectation_fails_with_a_row_diff() {
    let fixture = Fixture::new();
    fixture.edit(
        TESTS,
        "{ customer_id: 2, spend_365d: 20.5, last_purchase_on: 2026-11-20 }",
        "{ customer_id: 2, spend_365d: 119.5, last_purchase_on: 2026-11-21 }",
    );
    let report = fixture.run(None).await.unwrap();
    assert_eq!((report.passed(), report.failed()), (7, 1));
    assert_eq!(report.exit_code(), 1);
    let failed = &report.outcomes[0];
    assert_eq!(failed.at.line, 5);
    assert_eq!(
        failed.failure.as_deref().unwrap(),
        "\
model spend: 1 expected row missing (-), 1 unexpected row (+); expected 2 rows, got 2
    customer_id | spend_365d | last_purchase_on
    1           | 700.0      | 2026-10-01
  - 2           | 119.5      | 2026-11-21
  + 2           | 20.5       | 2026-11-20"
    );
    let text = fixture.hide(&report.to_text());
    assert!(
        text.starts_with(
            "FAIL pipelines/unit.tests.yaml:5 spend_counts_the_year_up_to_the_run_date\nok   "
        ),
        "{text}"
    );
    assert!(text.contains("\n--- FAIL pipelines/unit.tests.yaml:5 spend_counts_the_year_up_to_the_run_date\nmodel spend: "), "{text}");
    assert!(text.ends_with("\n\n7 passed, 1 failed\n"), "{text}");
}

#[tokio::test]
async fn a_broken_model_fails_the_tests_that_need_it() {
    let fixture = Fixture::new();
    fixture.edit(
        "sql/unit/spend.sql",
        "SUM(amount) AS spend_365d",
        "SUM(amount_eur) AS spend_365d",
    );
    let report = fixture.run(None).await.unwrap();
    assert_eq!(report.failed(), 8);
    let failure = report.outcomes[0].failure.as_deref().unwrap();
    assert!(
        failure.starts_with("model spend could not run: "),
        "{failure}"
    );
    assert!(failure.contains("sql/unit/spend.sql:4:"), "{failure}");
    assert!(failure.contains("amount_eur"), "{failure}");
    // Rows given for a model are read in its schema, which a broken model does not have.
    let failure = report.outcomes[1].failure.as_deref().unwrap();
    assert!(
        failure.starts_with("model spend cannot be planned, so its given rows cannot be read: "),
        "{failure}"
    );
}

#[tokio::test]
async fn a_changed_condition_shows_who_entered_the_segment() {
    let fixture = Fixture::new();
    fixture.edit("pipelines/unit.yaml", "days_since_last_purchase > $quiet_days, reason: Bought nothing for 60 days }\nsuppressions", "days_since_last_purchase > 10, reason: Bought nothing for 60 days }\nsuppressions");
    let report = fixture.run(Some("segment")).await.unwrap();
    assert_eq!(report.filtered_out, 6);
    assert_eq!((report.passed(), report.failed()), (1, 1));
    assert_eq!(
        report.outcomes[0].failure.as_deref().unwrap(),
        "\
segment lapsing_big_spenders: 1 unexpected row (+); expected 1 row, got 2
    customer_id | test_group | reasons                                                     | first_name
    1           | treatment  | Spent over 500 in the last year; Bought nothing for 60 days | Ada
  + 2           | treatment  | Spent over 500 in the last year; Bought nothing for 60 days | Bob"
    );
    assert!(
        report
            .to_text()
            .ends_with("\n6 tests filtered out\n1 passed, 1 failed\n")
    );
}

#[tokio::test]
async fn invalid_test_files_are_reported_at_their_lines_before_anything_runs() {
    let fixture = Fixture::new();
    fixture.edit(
        TESTS,
        "{ customer_id: 1, first_name: Ada, signup_date: 2025-01-01 }\n        - { customer_id: 2, first_name: Bob, signup_date: 2025-06-01 }",
        "{ customer_id: 1, first_nme: Ada, signup_date: 2025-01-01 }\n        - { customer_id: 2, first_name: Bob, signup_date: 2025-06-01 }",
    );
    fixture.edit(TESTS, "model: spend", "model: spending");
    fixture.edit(
        TESTS,
        "      opt_outs:\n        - { customer_id: 1",
        "      opt_out:\n        - { customer_id: 1",
    );
    fixture.edit(
        TESTS,
        "params: { big_spend: 1000 }",
        "params: { big_spend: lots, quiet: 3 }",
    );
    fixture.edit(
        TESTS,
        "columns: [customer_id, detail]",
        "columns: [customer_id, details]",
    );
    let err = fixture.run(None).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert_eq!(
        fixture.hide(&err.to_string()),
        "\
pipelines/unit.tests.yaml:13:7: expect.model: no model named \"spending\"; the pipeline has: spend, profile
pipelines/unit.tests.yaml:21:29: given.customers row 1: source customers has no column \"first_nme\"; its columns are: customer_id, first_name, signup_date
pipelines/unit.tests.yaml:50:15: params.big_spend: lots is not a number, the parameter's declared type
pipelines/unit.tests.yaml:50:32: params.quiet: no such parameter; parameters: $run_date, $big_spend, $quiet_days
pipelines/unit.tests.yaml:65:7: given.opt_out: no source or model named \"opt_out\"; the pipeline's tables are: customers, purchases, opt_outs, spend, profile
pipelines/unit.tests.yaml:70:7: expect: suppression opted_out has no column \"details\"; its columns are: customer_id, suppression, reason, detail, offer
pipelines/unit.tests.yaml:72:29: expect.rows row 1: \"detail\" is not in expect.columns; add it there or remove it from the row"
    );
}

#[tokio::test]
async fn values_that_do_not_fit_their_column_are_located() {
    let fixture = Fixture::new();
    fixture.edit(
        TESTS,
        "signup_date: 2025-06-01 }",
        "signup_date: 2025-06-31 }",
    );
    let err = fixture.run(None).await.unwrap_err();
    assert_eq!(
        fixture.hide(&err.to_string()),
        "pipelines/unit.tests.yaml:22:46: given.customers row 2, column signup_date: \"2025-06-31\" is not a date like 2026-11-20"
    );
}

#[tokio::test]
async fn tests_need_a_run_date_and_unique_names() {
    let fixture = Fixture::new();
    fixture.write(
        "tests/unit/more.yaml",
        "\
tests:
  - name: spend_counts_the_year_up_to_the_run_date
    run_date: 2026-11-20
    expect: { model: spend, rows: [] }
  - name: no_date
    expect: { model: spend, rows: [] }
  - name: rows_with_other_keys
    run_date: 2026-11-31
    expect:
      segment: lapsing_big_spenders
      rows:
        - { customer_id: 1 }
        - { customer_id: 2, group: control }
",
    );
    let err = fixture.run(None).await.unwrap_err();
    assert_eq!(
        fixture.hide(&err.to_string()),
        "\
tests/unit/more.yaml:2:5: name: a test named \"spend_counts_the_year_up_to_the_run_date\" already exists at pipelines/unit.tests.yaml:5:3; give each test its own name
tests/unit/more.yaml:5:3: test no_date: no run_date; give the date the test runs for (e.g. run_date: 2026-11-20) on the test or at the top of the file, so it gives the same result every day
tests/unit/more.yaml:8:5: run_date: \"2026-11-31\" is not a date; write it like 2026-11-20
tests/unit/more.yaml:13:29: expect.rows row 2: \"group\" is not a key of the first row, whose keys are the compared columns; list every compared column in expect.columns"
    );
}

#[tokio::test]
async fn malformed_yaml_is_located() {
    let fixture = Fixture::new();
    fixture.write(
        "tests/unit/bad.yaml",
        "tests:\n  - name: x\n    expect: { model: spend, rows: [] }\n    gvien: {}\n",
    );
    let err = fixture.run(None).await.unwrap_err();
    let text = fixture.hide(&err.to_string());
    assert!(
        text.starts_with("tests/unit/bad.yaml:4:5: tests[0]: unknown field \"gvien\""),
        "{text}"
    );
    assert_eq!(err.exit_code(), 2);
}

#[tokio::test]
async fn a_pipeline_without_tests_says_where_to_write_them() {
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.dir.path().join(TESTS)).unwrap();
    std::fs::remove_dir_all(fixture.dir.path().join("tests/unit")).unwrap();
    let err = fixture.run(None).await.unwrap_err();
    assert_eq!(
        fixture.hide(&err.to_string()),
        "no tests for pipeline unit: write them in pipelines/unit.tests.yaml or in tests/unit/*.yaml"
    );
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn the_report_lists_tests_then_diffs_then_counts() {
    let report = TestReport {
        outcomes: vec![
            TestOutcome {
                name: "a".into(),
                description: None,
                at: Location::new("t.yaml", 3, 3),
                failure: None,
            },
            TestOutcome {
                name: "b".into(),
                description: Some("Customers who bought lately are not in m".into()),
                at: Location::new("t.yaml", 9, 3),
                failure: Some("model m: 1 expected row missing (-)\n    x\n  - 1".into()),
            },
        ],
        filtered_out: 0,
    };
    assert_eq!(
        report.to_text(),
        "\
ok   t.yaml:3 a
FAIL t.yaml:9 b

--- FAIL t.yaml:9 b
Customers who bought lately are not in m
model m: 1 expected row missing (-)
    x
  - 1

1 passed, 1 failed
"
    );
    assert_eq!(TestReport::default().to_text(), "0 passed, 0 failed\n");
}
