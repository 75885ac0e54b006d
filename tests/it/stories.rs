//! Feedback flows back: the two stories of tests/fixtures/stories across run dates.
//!
//! Sam (1) wants satellite TV; on 2026-11-02 a technician finds it impossible at his house,
//! and on 2026-11-09 he moves. Ivy (2) already has internet. Eve (3) withdrew email consent.
//! Zed (4) asks to be forgotten. Max (5) has an invalid email and phone.

use crate::support::Project;

const PIPELINE: &str = "pipelines/stories.yaml";

fn run(p: &Project, date: &str) {
    p.ok(&["run", PIPELINE, "--date", date]);
}

fn audience(p: &Project, date: &str, segment: &str) -> Vec<String> {
    p.duckdb(
        "stories",
        &format!("select customer_id from read_parquet('{{out}}/runs/run_date={date}/audiences/segment={segment}/*.parquet') order by 1"),
    )
    .into_iter()
    .map(|row| row.trim_matches(['[', ']', '"']).to_string())
    .collect()
}

#[test]
fn not_serviceable_suppresses_satellite_until_the_customer_moves() {
    let p = Project::fixture("stories");
    for date in ["2026-11-01", "2026-11-02", "2026-11-08", "2026-11-09"] {
        run(&p, date);
    }
    // Day 1: no feedback yet.
    assert!(audience(&p, "2026-11-01", "satellite_tv_prospects").contains(&"1".to_string()));
    // Day 2: the technician's finding holds Sam back from satellite, nowhere else.
    for date in ["2026-11-02", "2026-11-08"] {
        assert!(
            !audience(&p, date, "satellite_tv_prospects").contains(&"1".to_string()),
            "{date}"
        );
        assert!(
            audience(&p, date, "email_newsletter").contains(&"1".to_string()),
            "{date}"
        );
    }
    let suppressed = p.duckdb(
        "stories",
        "select held_back_from, suppression, detail from read_parquet('{out}/runs/run_date=2026-11-02/suppressed/*.parquet') where customer_id = 1",
    );
    assert_eq!(
        suppressed,
        [
            r#"["segment satellite_tv_prospects", "not_serviceable_here", "technician visit on 2026-11-02 at address 100: not_serviceable"]"#
        ]
    );
    // Day 9: Sam lives at a new address; nobody lifted anything, he is eligible again.
    assert!(audience(&p, "2026-11-09", "satellite_tv_prospects").contains(&"1".to_string()));
    let manifest = p.json("out/stories/runs/run_date=2026-11-02/manifest.json");
    let rule = &manifest["suppressions"][0];
    assert_eq!(
        (
            rule["name"].as_str(),
            rule["matched"].as_u64(),
            rule["held_back"].as_u64()
        ),
        (Some("not_serviceable_here"), Some(1), Some(1))
    );
    let rule = &p.json("out/stories/runs/run_date=2026-11-09/manifest.json")["suppressions"][0];
    assert_eq!(rule["matched"], 0);
}

#[test]
fn customers_are_never_sold_what_they_hold_nor_emailed_without_consent() {
    let p = Project::fixture("stories");
    for date in ["2026-11-01", "2026-11-02", "2026-11-09"] {
        run(&p, date);
        let internet = audience(&p, date, "internet_acquisition");
        assert!(
            !internet.contains(&"2".to_string()) && !internet.contains(&"5".to_string()),
            "{date}: {internet:?}"
        );
        assert!(internet.contains(&"1".to_string()), "{date}: {internet:?}");
        // Every audience activated by email: newsletter and satellite prospects.
        for segment in ["email_newsletter", "satellite_tv_prospects"] {
            assert!(
                !audience(&p, date, segment).contains(&"3".to_string()),
                "{date} {segment}"
            );
        }
    }
    // A segment with several channels keeps Eve, reachable by post only.
    let channels = p.duckdb(
        "stories",
        "select customer_id, channels from read_parquet('{out}/runs/run_date=2026-11-09/audiences/segment=winter_promo/*.parquet') where customer_id in (1, 3) order by 1",
    );
    assert_eq!(channels, [r#"["1", "email,mail"]"#, r#"["3", "mail"]"#]);
    // Eve still gets the mail audience she consented to.
    assert!(audience(&p, "2026-11-09", "internet_acquisition").contains(&"3".to_string()));
}

#[test]
fn erased_customer_disappears_from_every_published_file_and_stays_gone() {
    let p = Project::fixture("stories");
    // Rules of conditions read the profile, which a run writes without erased customers; a SQL
    // rule may read a source, which still holds them.
    p.write(
        "sql/stories/crm_everyone.sql",
        "select customer_id from customers",
    );
    p.edit(
        PIPELINE,
        "    winter_promo:",
        "    crm_everyone:\n      description: Everyone in the CRM\n      channels: [mail]\n      sql: sql/stories/crm_everyone.sql\n    winter_promo:",
    );
    run(&p, "2026-11-01");
    let everything = |date: &str| {
        p.duckdb(
            "stories",
            &format!("select count(*) from read_parquet('{{out}}/runs/run_date={date}/**/*.parquet', union_by_name = true) where customer_id = 4"),
        )
    };
    assert_ne!(everything("2026-11-01"), [r#"["0"]"#]);

    p.write("data/erasure_requests.csv", "customer_id\n4\n");
    run(&p, "2026-11-02");
    assert_eq!(
        everything("2026-11-02"),
        [r#"["0"]"#],
        "audiences, changes, history: no trace"
    );
    let erased = p.duckdb("stories", "select key_sha256 from read_parquet('{out}/runs/run_date=2026-11-02/state/erased/*.parquet')");
    // SHA-256 of "4": the id itself is not kept.
    assert_eq!(
        erased,
        [r#"["4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a"]"#]
    );

    // Runs published before the request are rewritten without the customer too.
    assert_eq!(
        everything("2026-11-01"),
        [r#"["0"]"#],
        "the earlier run still holds the customer"
    );
    assert_eq!(
        p.json("out/stories/runs/run_date=2026-11-01/manifest.json")["erasure_applied_by"],
        "run of 2026-11-02"
    );
    let kept = p.duckdb("stories", "select count(*) from read_parquet('{out}/runs/run_date=2026-11-01/audiences/segment=email_newsletter/*.parquet')");
    assert_eq!(kept, [r#"["3"]"#], "everyone else stays");
    // Its page shows the counts of the rewrite.
    let page = p.read("out/stories/runs/run_date=2026-11-01/report.html");
    assert!(
        page.contains(r#"data-output="audiences/segment=email_newsletter" data-rows="3""#),
        "{page}"
    );

    // The request list is emptied later (or the CRM still holds the customer): still gone.
    p.write("data/erasure_requests.csv", "customer_id\n");
    run(&p, "2026-11-03");
    assert_eq!(everything("2026-11-03"), [r#"["0"]"#]);

    // Rerunning the first date, from before the request, rebuilds the runs after it: the
    // customer stays gone from every one of them.
    run(&p, "2026-11-01");
    for date in ["2026-11-01", "2026-11-02", "2026-11-03"] {
        assert_eq!(everything(date), [r#"["0"]"#], "{date}");
    }
}

/// An erasure rewrites the runs holding the customer with other counts: their pages are what
/// `segflow report` would write now. Every run after the customer's first keeps their spells in
/// its membership history, so each page whose chart shows a rewritten run is rewritten too.
#[test]
fn pages_after_an_erasure_show_the_rewritten_counts() {
    let p = Project::fixture("stories");
    run(&p, "2026-11-01");
    // Customer 4 leaves the CRM: 11-02 still holds them (removed from audiences), 11-03 not.
    for file in ["data/customers.csv", "data/address_changes.csv"] {
        let text = p.read(file);
        let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("4,")).collect();
        p.write(file, &format!("{}\n", kept.join("\n")));
    }
    run(&p, "2026-11-02");
    run(&p, "2026-11-03");
    let page = |date: &str| p.read(&format!("out/stories/runs/run_date={date}/report.html"));
    let before = page("2026-11-03");
    p.write("data/erasure_requests.csv", "customer_id\n4\n");
    run(&p, "2026-11-04");
    assert_ne!(page("2026-11-03"), before, "its chart shows 11-01's sizes");
    assert_eq!(
        p.json("out/stories/runs/run_date=2026-11-03/manifest.json")["erasure_applied_by"],
        "run of 2026-11-04"
    );
    for date in ["2026-11-01", "2026-11-02", "2026-11-03"] {
        let written = page(date);
        p.ok(&["report", PIPELINE, "--date", date]);
        assert_eq!(page(date), written, "{date}");
    }
}

#[test]
fn activation_identifiers_are_normalized_hashed_and_bad_values_counted() {
    let p = Project::fixture("stories");
    run(&p, "2026-11-01");
    let rows = p.duckdb(
        "stories",
        "select customer_id, email_sha256, phone_e164 from read_parquet('{out}/runs/run_date=2026-11-01/audiences/segment=email_newsletter/*.parquet') where customer_id in (1, 5) order by 1",
    );
    assert_eq!(
        rows,
        [
            // sha256("sam@example.com")
            r#"["1", "cd25a6171969f2a3c6e35c7667e3908ef1bd2424241db04411a0eec454ca6c16", "+447700900001"]"#,
            r#"["5", null, null]"#,
        ]
    );
    let manifest = p.json("out/stories/runs/run_date=2026-11-01/manifest.json");
    assert_eq!(
        manifest["invalid_identifiers"],
        serde_json::json!({"emails": 1, "phones": 1})
    );
}

#[test]
fn explain_names_the_suppression_and_the_data_row_behind_it() {
    let p = Project::fixture("stories");
    let text = p.ok(&["explain", PIPELINE, "--key", "1", "--date", "2026-11-03"]);
    insta::assert_snapshot!(text);
    let json = p.explain_json(PIPELINE, "1", "2026-11-09");
    assert_eq!(
        json["suppressions"],
        serde_json::json!([]),
        "the move lifted it"
    );
    assert_eq!(json["segments"][0]["member"], true);
}
