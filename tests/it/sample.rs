//! The example pipeline on the committed sample data, through the commands the README shows.

use insta::assert_snapshot;

use crate::support::Project;

#[test]
fn sample_pipeline_validates() {
    let p = Project::sample();
    let out = p.ok(&["validate", "daily_segments"]);
    assert!(out.contains("pipelines/daily_segments.yaml: ok"), "{out}");
}

#[test]
fn sample_pipeline_plan_as_text_dot_and_mermaid() {
    let p = Project::sample();
    assert_snapshot!("plan_text", p.ok(&["plan", "daily_segments"]));
    let dot = p.ok(&["plan", "daily_segments", "--format", "dot"]);
    assert!(dot.starts_with("digraph \"daily_segments\""), "{dot}");
    assert!(dot.contains("\"customer_features\" -> \"customer_profile\";"), "{dot}");
    let mermaid = p.ok(&["plan", "daily_segments", "--format", "mermaid"]);
    assert!(mermaid.contains("current_address --> customer_profile"), "{mermaid}");
}

#[test]
fn sample_pipeline_runs_and_publishes_every_customer() {
    let p = Project::sample();
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let manifest = p.json("out/daily_segments/runs/run_date=2026-11-20/manifest.json");
    let profile = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "customer_profile")
        .unwrap();
    // Every customer who had signed up by the run date has one profile row.
    let customers = std::fs::read_to_string(p.path("data/sample/crm/customers.csv")).unwrap();
    let signed_up = customers
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(5).is_some_and(|d| d <= "2026-11-20"))
        .count() as u64;
    assert!(signed_up > 1000);
    assert_eq!(profile["rows"].as_u64().unwrap(), signed_up);
}
