//! Zero-segment decisioning on the hand-made customers of tests/fixtures/offers.
//!
//! fiber_upgrade scores spend/10 with capacity 2; loyalty_reward (priority 20) is for spend
//! over 500 by email only; mobile_plan (priority 5) is for everyone; landline_bundle scores 5
//! with priority 3. Two offers per customer at most. Customer 6 complained (suppressed from
//! everything), customer 7 withdrew email consent.

use crate::support::Project;

const PIPELINE: &str = "pipelines/offers.yaml";

fn decided(p: &Project, date: &str) -> Vec<String> {
    p.duckdb(
        "offers",
        &format!(
            "select customer_id, string_agg(distinct rank || ':' || offer, ' ' order by rank || ':' || offer) \
             from read_parquet('{{out}}/runs/run_date={date}/offers/*.parquet') group by 1 order by 1"
        ),
    )
}

/// `explain --json` for one customer on 2026-11-01.
fn explain_json(p: &Project, key: &str) -> serde_json::Value {
    let out = p.ok(&[
        "explain",
        PIPELINE,
        "--key",
        key,
        "--date",
        "2026-11-01",
        "--json",
    ]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn each_customer_gets_their_best_offers_within_capacity() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    assert_eq!(
        decided(&p, "2026-11-01"),
        [
            // Ranked by score, cut to max_per_customer = 2.
            r#"["1", "1:fiber_upgrade 2:loyalty_reward"]"#,
            r#"["2", "1:fiber_upgrade 2:loyalty_reward"]"#,
            // Fibre's capacity of 2 goes to the customers it scores highest for (90, 80);
            // customer 3 (70) gets the next best offers instead.
            r#"["3", "1:loyalty_reward 2:mobile_plan"]"#,
            // Equal scores: priority breaks the tie (mobile 5 before bundle 3).
            r#"["4", "1:mobile_plan 2:landline_bundle"]"#,
            r#"["5", "1:mobile_plan 2:landline_bundle"]"#,
            // Customer 6 complained: nothing. Customer 7: loyalty is email-only and email
            // consent is withdrawn, so only mobile via sms remains.
            r#"["7", "1:mobile_plan"]"#,
        ]
    );
    let statuses = p.duckdb(
        "offers",
        "select customer_id, offer, status from read_parquet('{out}/runs/run_date=2026-11-01/decisions/*.parquet') \
         where status in ('capacity', 'suppressed') order by 1, 2",
    );
    assert_eq!(
        statuses,
        [
            r#"["3", "fiber_upgrade", "capacity"]"#,
            r#"["4", "fiber_upgrade", "capacity"]"#,
            r#"["6", "fiber_upgrade", "suppressed"]"#,
            r#"["6", "loyalty_reward", "suppressed"]"#,
            r#"["6", "mobile_plan", "suppressed"]"#,
            r#"["7", "loyalty_reward", "suppressed"]"#,
        ]
    );
    let manifest = p.json("out/offers/runs/run_date=2026-11-01/manifest.json");
    assert_eq!(
        manifest["offers"][0],
        serde_json::json!({"name": "fiber_upgrade", "description": "Upgrade to fibre where it is available",
            "eligible": 5, "suppressed": 1, "capped": 2, "outranked": 0, "assigned": 2})
    );
}

#[test]
fn every_channel_reads_the_same_ranked_list() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    // For every customer and offer, each channel carries the same rank and score.
    let disagreements = p.duckdb(
        "offers",
        "select customer_id, offer from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') \
         group by 1, 2 having count(distinct rank) > 1 or count(distinct score) > 1",
    );
    assert!(disagreements.is_empty(), "{disagreements:?}");
    let email = p.duckdb(
        "offers",
        "select customer_id, rank, offer from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') \
         where channel = 'sms' and customer_id = 7",
    );
    assert_eq!(email, [r#"["7", "1", "mobile_plan"]"#]);
    // A suppressed offer is never assigned on any channel.
    let suppressed = p.duckdb(
        "offers",
        "select count(*) from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') \
         where customer_id = 6 or (customer_id = 7 and channel = 'email')",
    );
    assert_eq!(suppressed, [r#"["0"]"#]);
}

#[test]
fn decisions_are_deterministic_and_changes_are_tracked() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let file = "out/offers/runs/run_date=2026-11-01/offers/part-00000.parquet";
    let first = std::fs::read(p.path(file)).unwrap();
    // Without a previous run every offer is new: once per (customer, rank), not per channel.
    let new = p.duckdb(
        "offers",
        "select customer_id, rank, change, offer, typeof(previous_offer), previous_offer is null \
         from read_parquet('{out}/runs/run_date=2026-11-01/offer_changes/*.parquet') order by 1, 2",
    );
    let assigned = p.duckdb(
        "offers",
        "select distinct customer_id, rank, 'new', offer, 'VARCHAR', true \
         from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') order by 1, 2",
    );
    assert!(!new.is_empty());
    assert_eq!(new, assigned);
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    assert_eq!(std::fs::read(p.path(file)).unwrap(), first);

    // Next day customer 3 has spent more and overtakes customer 2 for fibre's capacity.
    p.edit("data/customers.csv", "3,700,", "3,950,");
    p.ok(&["run", PIPELINE, "--date", "2026-11-02"]);
    assert_eq!(
        decided(&p, "2026-11-02")[1],
        r#"["2", "1:loyalty_reward 2:mobile_plan"]"#
    );
    let changes = p.duckdb(
        "offers",
        "select customer_id, rank, change, offer, previous_offer from read_parquet('{out}/runs/run_date=2026-11-02/offer_changes/*.parquet') order by 1, 2",
    );
    assert_eq!(
        changes,
        [
            r#"["2", "1", "swapped", "loyalty_reward", "fiber_upgrade"]"#,
            r#"["2", "2", "swapped", "mobile_plan", "loyalty_reward"]"#,
            r#"["3", "1", "swapped", "fiber_upgrade", "loyalty_reward"]"#,
            r#"["3", "2", "swapped", "loyalty_reward", "mobile_plan"]"#,
        ]
    );
}

#[test]
fn explain_shows_eligibility_score_suppression_and_capacity() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let text = p.ok(&["explain", PIPELINE, "--key", "3", "--date", "2026-11-01"]);
    assert!(
        text.contains("offer fiber_upgrade — eligible, score 70.0 (published: lost to capacity"),
        "{text}"
    );
    assert!(
        text.contains("offer loyalty_reward — eligible, score 20.0 (published: assigned, rank 1)"),
        "{text}"
    );
    let json = explain_json(&p, "7");
    let loyalty = &json["offers"][1];
    assert_eq!(loyalty["name"], "loyalty_reward");
    assert_eq!(loyalty["eligible"], true);
    assert_eq!(
        loyalty["held_back_by"],
        serde_json::json!(["email_consent_withdrawn (on email)"])
    );
    assert_eq!(loyalty["published_status"], "suppressed");
    assert_eq!(
        json["offers"][0]["conditions"][0]["values"],
        serde_json::json!([["fiber_available", "false"]])
    );
}

#[test]
fn suppressed_names_an_offer_held_back_whole_once_and_a_channel_held_back_by_its_channel() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let held = p.duckdb(
        "offers",
        "select customer_id, held_back_from, suppression \
         from read_parquet('{out}/runs/run_date=2026-11-01/suppressed/*.parquet') \
         where held_back_from like 'offer %' order by 1, 2",
    );
    assert_eq!(
        held,
        [
            // A rule scoped to everything: one row per offer, whatever its channels.
            r#"["6", "offer fiber_upgrade", "complained_recently"]"#,
            r#"["6", "offer loyalty_reward", "complained_recently"]"#,
            r#"["6", "offer mobile_plan", "complained_recently"]"#,
            // A rule scoped to e-mail: the e-mail channel of each offer (customer 7 has no
            // fibre where they live).
            r#"["7", "offer loyalty_reward via email", "email_consent_withdrawn"]"#,
            r#"["7", "offer mobile_plan via email", "email_consent_withdrawn"]"#,
        ]
    );
    let manifest = p.json("out/offers/runs/run_date=2026-11-01/manifest.json");
    let held_back: Vec<_> = (manifest["suppressions"].as_array().unwrap().iter())
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["held_back"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        held_back,
        [("complained_recently", 3), ("email_consent_withdrawn", 2)]
    );
    let json = explain_json(&p, "6");
    let mobile = &json["offers"][2];
    assert_eq!(mobile["name"], "mobile_plan");
    assert_eq!(
        mobile["held_back_by"],
        serde_json::json!(["complained_recently"])
    );
}
