//! Broken pipelines: each fails with exit 2 and one message that names the file, the line and
//! what to do. The messages are pinned as snapshots.

use crate::support::{Project, cli_snapshot};

const PIPELINE: &str = "pipelines/mini.yaml";

fn validate_error(project: &Project) -> String {
    project.fails(&["validate", PIPELINE], 2)
}

#[test]
fn bad_yaml_names_the_line() {
    let p = Project::mini();
    p.edit(PIPELINE, "    format: ndjson", "\tformat: ndjson");
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn unknown_field_lists_the_allowed_ones() {
    let p = Project::mini();
    p.edit(PIPELINE, "    format: ndjson", "    fromat: ndjson");
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn sql_syntax_error_names_the_sql_file_and_line() {
    let p = Project::mini();
    p.edit(
        "sql/mini/spend.sql",
        "group by customer_id",
        "group customer_id",
    );
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn unknown_table_lists_the_pipeline_tables() {
    let p = Project::mini();
    p.edit(
        "sql/mini/profile.sql",
        "left join spend s",
        "left join spending s",
    );
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn unknown_column_points_into_the_sql() {
    let p = Project::mini();
    p.edit(
        "sql/mini/profile.sql",
        "coalesce(s.orders, 0)",
        "coalesce(s.order_count, 0)",
    );
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn unknown_parameter_lists_the_declared_ones() {
    let p = Project::mini();
    p.edit("sql/mini/profile.sql", "$min_spend", "$minimum_spend");
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn model_cycle_is_named() {
    let p = Project::mini();
    p.edit(
        "sql/mini/active.sql",
        "from customers",
        "from customers join profile using (customer_id)",
    );
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn missing_source_names_the_path() {
    let p = Project::mini();
    std::fs::remove_file(p.path("data/customers.csv")).unwrap();
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn contract_mismatch_lists_every_difference() {
    let p = Project::mini();
    p.edit(
        PIPELINE,
        "columns: { customer_id: int, email: string, signup_date: date }",
        "columns: { customer_id: int, email: int, signup_date: date, segment: string }",
    );
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn missing_sql_file_points_at_the_model() {
    let p = Project::mini();
    std::fs::remove_file(p.path("sql/mini/spend.sql")).unwrap();
    cli_snapshot!(p, &["validate", PIPELINE]);
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let p = Project::mini();
    p.edit(
        "sql/mini/spend.sql",
        "group by customer_id",
        "group customer_id",
    );
    p.edit("sql/mini/profile.sql", "$min_spend", "$minimum_spend");
    let err = validate_error(&p);
    assert!(err.contains("spend.sql:4:"), "{err}");
    assert!(err.contains("unknown parameter $minimum_spend"), "{err}");
}

#[test]
fn bad_param_override_is_an_argument_error() {
    let p = Project::mini();
    let args = [
        "run",
        PIPELINE,
        "--date",
        "2026-11-20",
        "--param",
        "min_spend=lots",
    ];
    cli_snapshot!(p, &args);
}

#[test]
fn value_that_breaks_the_contract_is_invalid_in_validate_and_blocks_a_run() {
    let p = Project::mini();
    p.edit(
        "data/customers.csv",
        "2,bob@example.com,2026-02-10",
        "2,bob@example.com,last tuesday",
    );
    let located = "data/customers.csv, line 3: column signup_date: the contract says date, the line holds something else";
    let err = p.fails(&["validate", PIPELINE], 2);
    assert!(err.contains(located), "{err}");
    let err = p.fails(&["run", PIPELINE, "--date", "2026-11-20"], 3);
    assert!(err.contains(located) && !err.contains("tuesday"), "{err}");
}

#[test]
fn value_that_breaks_the_contract_past_the_sample_blocks_the_run_naming_its_line() {
    let p = Project::mini();
    // Schema inference samples the first lines; a bad date further down is found while reading.
    let mut csv = String::from("customer_id,email,signup_date,country\n");
    for id in 1..=1500 {
        csv += &format!("{id},c{id}@example.com,2026-01-01,GB\n");
    }
    csv += "1501,late@example.com,last tuesday,GB\n";
    p.write("data/customers.csv", &csv);
    let err = p.fails(&["run", PIPELINE, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 1502: column signup_date: the contract says date"),
        "{err}"
    );
    // The value is a customer's data: errors never print it.
    assert!(!err.contains("last tuesday"), "{err}");
    assert!(
        !p.path("out/mini/runs").exists(),
        "nothing may be published"
    );
}

#[test]
fn a_regular_expression_built_from_row_values_is_not_printed() {
    let p = Project::fixture("segs");
    p.edit(
        "pipelines/segs.yaml",
        "nothing_today: { sql: spend_today = 0, reason: Bought nothing today }",
        "nothing_today: { sql: \"spend_today = 0 AND regexp_like(preferred_channel, first_name || '(')\", reason: x }",
    );
    let err = p.fails(&["run", "pipelines/segs.yaml", "--date", "2026-11-01"], 1);
    assert!(
        err.contains("segment quiet, condition nothing_today"),
        "{err}"
    );
    assert!(err.contains("regex parse error"), "{err}");
    // The pattern is a customer's first name: errors never print it.
    for name in ["Ada", "Bob"] {
        assert!(!err.contains(name), "{err}");
    }
}

/// A function naming the number it failed on, in a message of its own: `chr` of a key plus a
/// constant said `invalid Unicode scalar value: 1114112`, the key given away by subtraction.
#[test]
fn a_number_computed_from_row_values_is_not_printed() {
    let p = Project::fixture("segs");
    p.edit(
        "pipelines/segs.yaml",
        "nothing_today: { sql: spend_today = 0, reason: Bought nothing today }",
        "nothing_today: { sql: \"spend_today = 0 AND chr(customer_id + 1114110) <> 'x'\", reason: x }",
    );
    let err = p.fails(&["run", "pipelines/segs.yaml", "--date", "2026-11-01"], 1);
    assert!(
        err.contains("segment quiet, condition nothing_today")
            && err.contains("invalid Unicode scalar value: …"),
        "{err}"
    );
    assert!(!err.contains("11141"), "{err}");
}

#[test]
fn condition_on_an_unknown_column_points_at_the_condition() {
    let p = Project::fixture("segs");
    p.edit(
        "pipelines/segs.yaml",
        "spend_today > 100",
        "spend_todya > 100",
    );
    cli_snapshot!(p, &["validate", "pipelines/segs.yaml"]);
}

#[test]
fn condition_that_is_not_true_or_false_is_rejected() {
    let p = Project::fixture("segs");
    p.edit(
        "pipelines/segs.yaml",
        "spent_over_100_today: spend_today > 100",
        "spent_over_100_today: spend_today",
    );
    cli_snapshot!(p, &["validate", "pipelines/segs.yaml"]);
}

#[test]
fn freshness_on_a_column_that_is_not_a_date_is_rejected() {
    let p = Project::fixture("gates");
    p.edit(
        "pipelines/gates.yaml",
        "freshness: { column: day,",
        "freshness: { column: amount,",
    );
    cli_snapshot!(p, &["validate", "pipelines/gates.yaml"]);
}

/// A reader that stops reading (`segflow plan | head`, a scheduler gone) made segflow panic
/// with exit 101, also after a run had published its date.
#[test]
fn a_closed_standard_output_is_no_failure_of_the_command() {
    let p = Project::mini();
    for args in [
        vec!["plan", PIPELINE],
        vec!["run", PIPELINE, "--date", "2026-11-20", "--json"],
    ] {
        let mut child = p
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its only reader gone before it writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(
        p.path("out/mini/runs/run_date=2026-11-20/manifest.json")
            .exists()
    );
}

/// A date shaped right that the calendar lacks was told to look like a date.
#[test]
fn a_date_the_calendar_lacks_is_named_so() {
    let p = Project::mini();
    for date in ["2026-11-31", "2026-02-29"] {
        let err = p.fails(&["run", PIPELINE, "--date", date], 2);
        assert!(
            err.contains(&format!(
                "{date} is not a day of the calendar: its month has fewer days"
            )),
            "{err}"
        );
    }
    let err = p.fails(&["run", PIPELINE, "--date", "2026-13-01"], 2);
    assert!(err.contains("expected a date like 2026-11-20"), "{err}");
}

/// A `--param` given twice ran with the second value, saying nothing.
#[test]
fn a_param_given_twice_is_refused() {
    let p = Project::mini();
    for command in ["run", "explain"] {
        let mut args = vec![command, PIPELINE, "--date", "2026-11-20"];
        if command == "explain" {
            args.extend(["--key", "1"]);
        }
        args.extend(["--param", "min_spend=10", "--param", "min_spend=20"]);
        let err = p.fails(&args, 2);
        assert!(
            err.contains("--param min_spend is given twice (10, then 20); give it once"),
            "{err}"
        );
    }
    assert!(!p.path("out/mini/runs").exists());
}
