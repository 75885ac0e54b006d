//! Quality gates and circuit breakers on tests/fixtures/gates: a broken upstream is stopped
//! with exit 3 before it reaches activation tools, and yesterday's run stays published.

use crate::support::Project;

const PIPELINE: &str = "pipelines/gates.yaml";

/// Publishes 2026-11-01 and returns its manifest text, which must not change when later runs
/// are blocked.
fn publish_day_one(p: &Project) -> String {
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    p.read("out/gates/latest.json")
}

fn assert_blocked(p: &Project, latest: &str, date: &str) -> String {
    let err = p.fails(&["run", PIPELINE, "--date", date], 3);
    assert_eq!(p.read("out/gates/latest.json"), latest, "latest.json moved");
    assert!(
        !p.path(&format!("out/gates/runs/run_date={date}")).exists(),
        "{date} was published"
    );
    assert!(err.contains("blocked: nothing was published for"), "{err}");
    err
}

#[test]
fn empty_upstream_file_blocks_the_run() {
    let p = Project::fixture("gates");
    let latest = publish_day_one(&p);
    p.write("data/purchases.csv", "customer_id,day,amount\n");
    let err = assert_blocked(&p, &latest, "2026-11-02");
    assert!(err.contains("check purchases_row_count (source purchases, row_count): 0 rows, expected at least 1 rows"), "{err}");
    let report = p.json("out/gates/blocked/run_date=2026-11-02/report.json");
    assert_eq!(report["status"], "blocked");
}

#[test]
fn contract_change_blocks_the_run() {
    let p = Project::fixture("gates");
    let latest = publish_day_one(&p);
    p.write(
        "data/purchases.csv",
        "customer_id,day,amount\n1,2026-11-02,lots\n",
    );
    let err = assert_blocked(&p, &latest, "2026-11-02");
    assert!(
        err.contains("data/purchases.csv, line 2: column amount: the contract says double, the line holds something else"),
        "{err}"
    );
}

#[test]
fn duplicate_customer_ids_block_and_are_sampled() {
    let p = Project::fixture("gates");
    let latest = publish_day_one(&p);
    p.edit(
        "data/customers.csv",
        "6,Flo,mail,true\n",
        "6,Flo,mail,true\n6,Flora,mail,true\n",
    );
    let err = assert_blocked(&p, &latest, "2026-11-02");
    insta::assert_snapshot!(
        err.lines()
            .filter(|l| l.starts_with("check"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let sample = p.duckdb(
        "gates",
        "select customer_id, first_name from read_parquet('{out}/blocked/run_date=2026-11-02/checks/customers_primary_key/*.parquet') order by 2",
    );
    assert_eq!(sample, [r#"["6", "Flo"]"#, r#"["6", "Flora"]"#]);

    // --force passes the gates, not a profile with two rows for a customer: audiences and
    // offers would hold them twice.
    let err = p.fails(&["run", PIPELINE, "--date", "2026-11-02", "--force"], 1);
    assert!(
        err.contains("profile has more than one row for 1 customer_id values (2 rows)"),
        "{err}"
    );
    assert_eq!(p.read("out/gates/latest.json"), latest);
}

#[test]
fn force_publishes_a_blocked_run_and_says_so() {
    let p = Project::fixture("gates");
    let latest = publish_day_one(&p);
    p.write("data/purchases.csv", "customer_id,day,amount\n");
    assert_blocked(&p, &latest, "2026-11-02");
    p.ok(&["run", PIPELINE, "--date", "2026-11-02", "--force"]);
    let manifest = p.json("out/gates/runs/run_date=2026-11-02/manifest.json");
    assert_eq!(manifest["forced"], true);
    let failed: Vec<&str> = manifest["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // The freshness check fails too, as a warning.
    assert_eq!(failed, ["purchases_row_count", "purchases_freshness"]);
    assert_eq!(p.json("out/gates/latest.json")["run_date"], "2026-11-02");
}

#[test]
fn warnings_publish_and_are_recorded() {
    let p = Project::fixture("gates");
    p.edit("data/customers.csv", "4,Di,push,false", "4,Di,fax,false");
    let out = p.ok(&["run", PIPELINE, "--date", "2026-11-10"]);
    assert!(
        out.contains("warning: check profile_accepted_values"),
        "{out}"
    );
    assert!(out.contains("warning: check purchases_freshness"), "{out}");
    let manifest = p.json("out/gates/runs/run_date=2026-11-10/manifest.json");
    assert_eq!(manifest["forced"], false);
    let check = manifest["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "profile_accepted_values")
        .unwrap();
    assert_eq!(
        (
            check["status"].as_str(),
            check["failing"].as_u64(),
            check["total"].as_u64()
        ),
        (Some("failed"), Some(1), Some(6))
    );
    assert_eq!(check["sample"], "checks/profile_accepted_values");
    assert!(
        p.path(
            "out/gates/runs/run_date=2026-11-10/checks/profile_accepted_values/part-00000.parquet"
        )
        .is_file()
    );
    // The index tells warnings from failures, as the run's page does.
    let checks = manifest["checks"].as_array().unwrap().len();
    let index = p.read("out/gates/index.html");
    assert!(
        index.contains(&format!("<td>0 of {checks} failed, 2 warnings</td>")),
        "{index}"
    );
}

#[test]
fn circuit_breaker_stops_an_audience_that_shrinks_too_much() {
    let p = Project::fixture("gates");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let latest = p.read("out/gates/latest.json");
    // Everybody buys something on 2026-11-02: the quiet audience would lose 4 of 4.
    let mut purchases = p.read("data/purchases.csv");
    for id in [2, 4, 5, 6] {
        purchases += &format!("{id},2026-11-02,1\n");
    }
    p.write("data/purchases.csv", &purchases);
    let err = assert_blocked(&p, &latest, "2026-11-02");
    assert!(err.contains("check quiet_circuit_breaker (audience quiet, circuit_breaker): 4 of 4 customers removed since the previous run (100.0%, limit 50%)"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&p.read("out/gates/blocked/run_date=2026-11-02/report.json")).unwrap();
    assert_eq!(report["segments"][1]["removed"], 4);

    // The --json report on stdout says the same.
    let out = p.segflow(&["run", PIPELINE, "--date", "2026-11-02", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "blocked");
}

#[test]
fn percentage_thresholds_tolerate_a_share_of_failing_rows() {
    let p = Project::fixture("gates");
    p.edit("data/customers.csv", "4,Di,push,false", "4,Di,fax,false");
    // One customer of six (16.7%) has an unknown channel.
    p.edit(
        PIPELINE,
        "accepted_values: { column: preferred_channel, values: [email, sms, push, mail] }, severity: warn",
        "accepted_values: { column: preferred_channel, values: [email, sms, push, mail] }, max_failed_percent: 20",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-10"]);
    p.edit(PIPELINE, "max_failed_percent: 20", "max_failed_percent: 10");
    let err = p.fails(&["run", PIPELINE, "--date", "2026-11-11"], 3);
    assert!(
        err.contains("1 of 6 rows fail (16.67%), allowed: at most 10% of rows failing"),
        "{err}"
    );
}

#[test]
fn a_blocked_run_reports_the_identifiers_it_could_not_normalize() {
    let p = Project::sample();
    p.edit(
        "pipelines/daily_segments.yaml",
        "values: [email, sms, push, mail]",
        "values: [email]",
    );
    p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 3);
    let report = p.json("out/daily_segments/blocked/run_date=2026-11-20/report.json");
    let invalid = &report["invalid_identifiers"];
    assert!(invalid["emails"].as_u64().unwrap() > 0, "{invalid}");
    assert!(invalid["phones"].as_u64().unwrap() > 0, "{invalid}");
}
