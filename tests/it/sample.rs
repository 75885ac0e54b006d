//! The example pipeline on the committed sample data, through the commands the README shows.

use insta::assert_snapshot;

use crate::support::{Project, python};

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
    assert!(
        dot.contains("\"customer_features\" -> \"customer_profile\";"),
        "{dot}"
    );
    let mermaid = p.ok(&["plan", "daily_segments", "--format", "mermaid"]);
    assert!(
        mermaid.contains("n_current_address --> n_customer_profile")
            && mermaid.contains("n_customer_profile[\"customer_profile\"]"),
        "{mermaid}"
    );
}

/// Backfills three days of the sample and checks, with Python's hashlib, that every audience
/// row's group follows the documented bucket formula, and that no customer's group changes.
#[test]
fn sample_control_groups_follow_the_documented_formula_and_stay_put() {
    let p = Project::sample();
    p.ok(&[
        "backfill",
        "daily_segments",
        "--from",
        "2026-11-20",
        "--to",
        "2026-11-22",
    ]);
    let out = p.path("out/daily_segments/runs");
    let script = format!(
        r#"
import duckdb, hashlib, json
def bucket(salt, key):
    return int.from_bytes(hashlib.sha256(f"{{salt}}:{{key}}".encode()).digest()[:8], "big") % 10000
rows = duckdb.sql("select customer_id, segment, test_group, run_date from read_parquet('{out}/*/audiences/*/*.parquet', hive_partitioning=true)").fetchall()
assert len(rows) > 3000, len(rows)
groups = {{}}
for key, segment, group, day in rows:
    if bucket("daily-2026", key) < 500:
        expected = "global_control"
    elif segment == "lapsing_high_value" and bucket("lapsing-2026", key) < 1000:
        expected = "control"
    elif segment == "champions":
        expected = "early_access" if bucket("champions-ab-2026", key) < 5000 else "double_points"
    else:
        expected = "treatment"
    assert group == expected, (key, segment, group, expected)
    groups.setdefault((key, segment), set()).add(group)
assert all(len(g) == 1 for g in groups.values())
members = {{k for k, _, _, _ in rows}}
share = sum(1 for k in members if bucket("daily-2026", k) < 500) / len(members)
print(json.dumps({{"members": len(members), "global_control_share": share}}))
"#,
        out = out.display()
    );
    let result: serde_json::Value = serde_json::from_str(python(&script).trim()).unwrap();
    let share = result["global_control_share"].as_f64().unwrap();
    assert!((share - 0.05).abs() < 0.02, "global control share {share}");
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
    // Every customer who had signed up by the run date has one profile row, erased ones aside.
    let customers = std::fs::read_to_string(p.path("data/sample/crm/customers.csv")).unwrap();
    let erased = ["17", "2048"];
    let signed_up = customers
        .lines()
        .skip(1)
        .filter(|l| !erased.contains(&l.split(',').next().unwrap()))
        .filter(|l| l.split(',').nth(5).is_some_and(|d| d <= "2026-11-20"))
        .count() as u64;
    assert!(signed_up > 1000);
    assert_eq!(profile["rows"].as_u64().unwrap(), signed_up);
    assert!(
        manifest["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["size"].as_u64().unwrap() > 0)
    );
    assert!(
        manifest["offers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["assigned"].as_u64().unwrap() > 0)
    );
    // The manifest's counts are those of the published tables, read by DuckDB.
    let run = "{out}/runs/run_date=2026-11-20";
    let rows = |sql: &str| -> Vec<serde_json::Value> {
        p.duckdb("daily_segments", sql)
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let decided = rows(&format!(
        "SELECT offer, COUNT(DISTINCT customer_id), COUNT(*) FILTER (status = 'suppressed'), \
           COUNT(*) FILTER (status = 'capacity'), COUNT(*) FILTER (status = 'outranked'), \
           COUNT(*) FILTER (status = 'assigned') \
         FROM read_parquet('{run}/decisions/*.parquet') GROUP BY 1 ORDER BY 1"
    ));
    let mut counted: Vec<serde_json::Value> = manifest["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let fields = ["eligible", "suppressed", "capped", "outranked", "assigned"];
            let mut row = vec![o["name"].clone()];
            row.extend(fields.map(|f| o[f].to_string().into()));
            row.into()
        })
        .collect();
    counted.sort_by_key(|row| row[0].to_string());
    assert_eq!(counted, decided, "offer counts");
    let held = rows(&format!(
        "SELECT suppression, COUNT(*) FROM read_parquet('{run}/suppressed/*.parquet') \
         GROUP BY 1 ORDER BY 1"
    ));
    let mut counted: Vec<serde_json::Value> = manifest["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["held_back"].as_u64().unwrap() > 0)
        .map(|s| vec![s["name"].clone(), s["held_back"].to_string().into()].into())
        .collect();
    counted.sort_by_key(|row| row[0].to_string());
    assert!(held.len() > 3);
    assert_eq!(counted, held, "rows held back per rule");
}

#[test]
fn sample_pipeline_sql_unit_tests_pass() {
    let p = Project::sample();
    let out = p.ok(&["test", "daily_segments"]);
    assert!(out.trim_end().ends_with("5 passed, 0 failed"), "{out}");
}

/// `explain` computes its verdicts with the run's own SQL: for every customer of the sample,
/// membership, group, suppressions and offer eligibility equal what the run published.
#[test]
fn explain_agrees_with_the_published_run_for_every_customer() {
    use std::collections::BTreeSet;
    let p = Project::sample();
    let date = "2026-11-20";
    p.ok(&["run", "daily_segments", "--date", date]);
    let csv = std::fs::read_to_string(p.path("data/sample/crm/customers.csv")).unwrap();
    let keys: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 3000);
    let mut args = vec!["explain", "daily_segments", "--date", date, "--json"];
    for key in &keys {
        args.extend(["--key", key]);
    }
    let explained: Vec<serde_json::Value> = serde_json::from_str(&p.ok(&args)).unwrap();
    assert_eq!(explained.len(), keys.len());

    let (mut members, mut held, mut eligible) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut details = BTreeSet::new();
    for e in &explained {
        let key = e["key"].as_str().unwrap().to_string();
        for s in e["suppressions"].as_array().unwrap() {
            let detail = s["detail"].as_str().unwrap_or_default().to_string();
            details.insert(vec![
                key.clone(),
                s["name"].as_str().unwrap().to_string(),
                detail,
            ]);
        }
        for s in e["segments"].as_array().unwrap() {
            let name = s["name"].as_str().unwrap().to_string();
            if s["member"] == true {
                let group = s["group"].as_str().unwrap().to_string();
                members.insert(vec![key.clone(), name.clone(), group]);
            }
            for rule in s["held_back_by"].as_array().unwrap() {
                let rule = rule.as_str().unwrap().split(' ').next().unwrap();
                held.insert(vec![key.clone(), name.clone(), rule.to_string()]);
            }
        }
        for o in e["offers"].as_array().unwrap() {
            if o["eligible"] == true {
                eligible.insert(vec![key.clone(), o["name"].as_str().unwrap().to_string()]);
            }
        }
    }
    let rows = |sql: &str| -> BTreeSet<Vec<String>> {
        p.duckdb("daily_segments", sql)
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let run = format!("{{out}}/runs/run_date={date}");
    let published_members = rows(&format!(
        "SELECT customer_id, segment, test_group FROM read_parquet('{run}/audiences/*/*.parquet', hive_partitioning = true)"
    ));
    assert!(published_members.len() > 1000);
    assert_eq!(members, published_members, "audiences");
    let published_held = rows(&format!(
        "SELECT DISTINCT customer_id, split_part(held_back_from, ' ', 2), suppression \
         FROM read_parquet('{run}/suppressed/*.parquet') WHERE held_back_from LIKE 'segment %'"
    ));
    assert!(!published_held.is_empty());
    assert_eq!(held, published_held, "segment suppressions");
    let published_eligible = rows(&format!(
        "SELECT customer_id, offer FROM read_parquet('{run}/decisions/*.parquet')"
    ));
    assert_eq!(eligible, published_eligible, "offer eligibility");
    // Every match behind what was held back, with its detail: a SQL rule returning several
    // offers of one customer was explained by one of them.
    let published_details = rows(&format!(
        "SELECT DISTINCT customer_id, suppression, coalesce(detail, '') \
         FROM read_parquet('{run}/suppressed/*.parquet')"
    ));
    let unexplained: Vec<_> = published_details.difference(&details).take(3).collect();
    assert!(unexplained.is_empty(), "{unexplained:?}");
    // Sorted by key, what was held back, then the rule, each text byte by byte (as DuckDB
    // compares them): segflow sorts by the texts' places in name order, not the texts.
    let order = p.duckdb(
        "daily_segments",
        &format!(
            "WITH t AS (SELECT filename AS f, file_row_number AS i, customer_id AS k, held_back_from AS h, \
               suppression AS s FROM read_parquet('{run}/suppressed/*.parquet', filename = true, file_row_number = true)) \
             SELECT count(*) FILTER (WHERE (b.k, b.h, b.s) <= (a.k, a.h, a.s)), count(*) > 1000 \
             FROM t a JOIN t b ON b.f = a.f AND b.i = a.i + 1"
        ),
    );
    assert_eq!(order, [r#"["0", "True"]"#], "suppressed/ in order");
}
