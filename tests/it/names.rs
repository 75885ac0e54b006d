//! Names from the pipeline reach generated SQL quoted, so they keep their case and may be SQL
//! keywords; names that need a key say so at their line.

use crate::support::Project;

const PIPELINE: &str = "pipelines/mini.yaml";

#[test]
fn checks_on_columns_in_capitals_or_named_like_keywords_run() {
    let p = Project::mini();
    p.edit(
        "sql/mini/profile.sql",
        "    a.email,",
        "    a.email,\n    a.email AS \"T\",\n    a.customer_id AS \"Order\",\n    a.customer_id AS n,",
    );
    p.edit(
        PIPELINE,
        "output:",
        "checks:\n  - { model: profile, not_null: [T] }\n  - { model: profile, unique: [Order] }\n  - { model: profile, unique: [n], name: profile_n_unique }\noutput:",
    );
    p.ok(&["validate", PIPELINE]);
    p.ok(&["run", PIPELINE, "--date", "2026-11-20"]);
    let manifest = p.json("out/mini/runs/run_date=2026-11-20/manifest.json");
    let checks = manifest["checks"].as_array().unwrap();
    // `n` was also the name of the count the duplicate checks group by: ambiguous, exit 1.
    for name in ["profile_not_null", "profile_unique", "profile_n_unique"] {
        let check = checks.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(check["status"], "passed", "{check}");
        assert!(check["total"].as_u64().unwrap() > 0, "{check}");
    }
}

#[test]
fn erasure_without_a_key_is_an_error_at_its_line() {
    let p = Project::mini();
    p.edit(PIPELINE, "key: customer_id\n", "");
    p.edit(
        PIPELINE,
        "output:",
        "erasure:\n  source: customers\noutput:",
    );
    let err = p.fails(&["validate", PIPELINE], 2);
    assert!(
        err.contains("pipelines/mini.yaml:21:1: erasure: name the pipeline's key"),
        "{err}"
    );
}

/// A table named like one of Mermaid's keywords (`click`, `end`) broke the chart's syntax, and
/// a SQL file ending in a line comment commented out the `;` of `plan --format sql`, which then
/// ran as one statement with the next.
#[test]
fn plans_stay_valid_for_keyword_names_and_trailing_comments() {
    let p = Project::mini();
    p.write(
        "sql/mini/click.sql",
        "select customer_id from active\n-- the end\n",
    );
    p.edit(
        PIPELINE,
        "  profile:",
        "  click:\n    sql: sql/mini/click.sql\n  profile:",
    );
    let mermaid = p.ok(&["plan", PIPELINE, "--format", "mermaid"]);
    assert!(
        mermaid.contains("  n_click[\"click\"]\n") && mermaid.contains("  n_active --> n_click\n"),
        "{mermaid}"
    );
    let sql = p.ok(&["plan", PIPELINE, "--format", "sql"]);
    assert!(sql.contains("-- the end\n;\n"), "{sql}");
    let statements = crate::support::python(&format!(
        "import duckdb\nprint(len(duckdb.connect().extract_statements({:?})))",
        sql.replace("$min_spend", "10")
            .replace("$run_date", "DATE '2026-11-20'")
    ));
    assert_eq!(statements.trim(), "4", "{sql}");
}

/// A name too long was refused as if it held a character names may not.
#[test]
fn a_name_refused_says_which_rule_it_breaks() {
    let p = Project::mini();
    let long = format!("p{}", "x".repeat(63));
    p.edit(PIPELINE, "  profile:\n", &format!("  {long}:\n"));
    let err = p.fails(&["validate", PIPELINE], 2);
    assert!(
        err.contains(&format!("models.{long}: names are at most 63 characters long (they become SQL tables and folder names)")),
        "{err}"
    );
    p.edit(PIPELINE, &format!("  {long}:\n"), "  Profile:\n");
    let err = p.fails(&["validate", PIPELINE], 2);
    assert!(
        err.contains("models.Profile: names may use lower-case letters, digits and _ and start with a letter or _"),
        "{err}"
    );
}
