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
    p.explain_json(PIPELINE, key, "2026-11-01")
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
            "eligible": 5, "suppressed": 1, "capped": 2, "outranked": 0, "assigned": 2, "capacity": 2})
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
fn a_customer_without_a_score_ranks_after_every_score() {
    let p = Project::fixture("offers");
    // Customer 8's spend is unknown: eligible for fibre, whose score (spend / 10) is NULL.
    let customers = p.read("data/customers.csv");
    p.write(
        "data/customers.csv",
        &format!("{customers}8,,true,false,true,false\n"),
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let fibre = p.duckdb(
        "offers",
        "select customer_id, status, rank from read_parquet('{out}/runs/run_date=2026-11-01/decisions/*.parquet') \
         where offer = 'fiber_upgrade' order by 1",
    );
    assert_eq!(
        fibre,
        [
            // The capacity of 2 goes to the highest scores, 90 and 80, not to the unknown one.
            r#"["1", "assigned", "1"]"#,
            r#"["2", "assigned", "1"]"#,
            r#"["3", "capacity", null]"#,
            r#"["4", "capacity", null]"#,
            r#"["6", "suppressed", null]"#,
            r#"["8", "capacity", null]"#,
        ]
    );
    let json = explain_json(&p, "8");
    let fibre = &json["offers"][0];
    assert_eq!(fibre["name"], "fiber_upgrade");
    assert_eq!(fibre["eligible"], true);
    assert_eq!(fibre["score"], serde_json::Value::Null);
    assert_eq!(fibre["published_status"], "capacity");

    // NaN is no score either: sorted as the largest number (or, with its sign bit set as
    // 0.0 / 0.0 leaves it, the smallest), it took the capacity.
    p.edit(PIPELINE, "max_per_customer: 2", "max_per_customer: 3");
    p.write(
        "data/customers.csv",
        &format!("{customers}8,0,true,false,true,false\n"),
    );
    p.edit(
        PIPELINE,
        "score: spend / 10",
        "score: \"CASE WHEN spend = 0 THEN CAST('NaN' AS DOUBLE) ELSE spend / 10 END\"",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-02"]);
    let fibre = p.duckdb(
        "offers",
        "select customer_id, status, score from read_parquet('{out}/runs/run_date=2026-11-02/decisions/*.parquet') \
         where offer = 'fiber_upgrade' and customer_id in (1, 2, 8) order by 1",
    );
    assert_eq!(
        fibre,
        [
            r#"["1", "assigned", "90.0"]"#,
            r#"["2", "assigned", "80.0"]"#,
            r#"["8", "capacity", null]"#,
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

/// A key given twice (`3`, `003`) was explained twice, its second copy's offers all "not
/// eligible" beside their published rank; an offer added since the run was published was "not
/// eligible" there.
#[test]
fn explain_takes_a_key_once_and_an_offer_added_since_as_new() {
    let p = Project::fixture("offers");
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let args = ["explain", PIPELINE, "--date", "2026-11-01", "--json"];
    let out = p.ok(&[&args[..], &["--key", "3", "--key", "003"]].concat());
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["key"], "3", "one key, one object: {out}");
    let offers = json["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 4, "{out}");
    assert_eq!(offers[0]["eligible"], true, "{out}");
    p.edit(
        PIPELINE,
        "output:",
        "    tv_bundle:\n      description: TV for everyone\n      eligible: { anyone: \"true\" }\n      score: \"1.0\"\n      channels: [mail]\noutput:",
    );
    let json = explain_json(&p, "3");
    let added = &json["offers"][4];
    assert_eq!(added["name"], "tv_bundle");
    assert_eq!(added["eligible"], true);
    assert_eq!(added["published_status"], serde_json::Value::Null);
    let text = p.ok(&["explain", PIPELINE, "--key", "3", "--date", "2026-11-01"]);
    assert!(
        text.contains(
            "offer tv_bundle — eligible, score 1.0 (not in the pipeline when the run was published)"
        ),
        "{text}"
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

#[test]
fn consent_holds_offers_back_when_segments_read_another_profile() {
    let p = Project::fixture("offers");
    // Segments read a profile of the big spenders only; offers keep the whole profile.
    p.write(
        "sql/offers/big.sql",
        "select * from profile where spend > 650\n",
    );
    p.edit(
        PIPELINE,
        "  profile: { sql: sql/offers/profile.sql }\n",
        "  profile: { sql: sql/offers/profile.sql }\n  big: { sql: sql/offers/big.sql }\n",
    );
    p.edit(
        PIPELINE,
        "offers:\n",
        "segments:\n  from: big\n  list:\n    big_spenders:\n      description: Spent over 650\n      \
         channels: [email]\n      conditions: { big: spend > 650 }\n\
         offers:\n",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    // Customer 7 (spend 600, email consent withdrawn) is in the offers' profile only: the
    // rule still holds its offers back on email.
    assert_eq!(
        p.duckdb(
            "offers",
            "select customer_id, offer, channel from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') \
             where customer_id = 7 order by 2, 3",
        ),
        [r#"["7", "mobile_plan", "sms"]"#]
    );
    // A customer the rule matches in both profiles is held back once per segment or offer.
    let held = p.duckdb(
        "offers",
        "select customer_id, held_back_from, count(*) \
         from read_parquet('{out}/runs/run_date=2026-11-01/suppressed/*.parquet') \
         where customer_id = 6 group by 1, 2 order by 2",
    );
    assert_eq!(
        held,
        [
            r#"["6", "offer fiber_upgrade", "1"]"#,
            r#"["6", "offer loyalty_reward", "1"]"#,
            r#"["6", "offer mobile_plan", "1"]"#,
            r#"["6", "segment big_spenders", "1"]"#,
        ]
    );
}

#[test]
fn capacity_ties_do_not_go_to_a_holdout_salted_with_the_offers_name() {
    // loyalty_reward has no score: every customer ties on its priority, and capacity goes by
    // the tie-break. Salted like the holdout, the tie-break's lowest buckets would be the
    // control group, and control would take most of the capacity.
    let p = Project::sample();
    p.edit(
        "pipelines/daily_segments.yaml",
        "      capacity: 150\n      channels: [email, mail]",
        "      capacity: 30\n      holdout: { percent: 10, salt: loyalty_reward }\n      channels: [email, mail]",
    );
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let groups = p.duckdb(
        "daily_segments",
        "select test_group, count(distinct customer_id) from read_parquet('{out}/runs/run_date=2026-11-20/offers/*.parquet') \
         where offer = 'loyalty_reward' group by 1 order by 1",
    );
    let count = |group: &str| -> u64 {
        (groups.iter())
            .find(|g| g.contains(&format!("\"{group}\"")))
            .map_or(0, |g| g.rsplit('"').nth(1).unwrap().parse().unwrap())
    };
    let (control, treatment) = (count("control"), count("treatment"));
    assert!(
        control + treatment + count("global_control") == 30,
        "{groups:?}"
    );
    // About a tenth of the 30 is control; salted alike, 19 were.
    assert!(control <= 8 && treatment >= 20, "{groups:?}");
}

#[test]
fn an_offer_breaker_counts_customers_replaced_not_only_the_net_change() {
    let p = Project::fixture("offers");
    p.edit(
        PIPELINE,
        "output:",
        "checks:\n  - { offer: fiber_upgrade, max_removed_percent: 50 }\noutput:",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    // Customers 1 and 2 took fibre: 3 and 4 fill the capacity of 2 in their place.
    p.edit("data/customers.csv", "1,900,true,false", "1,900,true,true");
    p.edit("data/customers.csv", "2,800,true,false", "2,800,true,true");
    let err = p.fails(&["run", PIPELINE, "--date", "2026-11-02"], 3);
    assert!(
        err.contains("2 of 2 customers removed since the previous run (100.0%, limit 50%)"),
        "{err}"
    );
}

/// A scope naming offers and channels holds back those offers on those channels only: `{
/// offers: [mobile_plan], channels: [sms] }` is "mobile_plan via sms". It held back the whole
/// offer and SMS on every other offer.
#[test]
fn a_scope_of_offers_and_channels_holds_back_those_offers_on_those_channels() {
    let p = Project::fixture("offers");
    p.edit(
        PIPELINE,
        "offers:\n  from: profile",
        "  no_mobile_texts:\n    reason: Mobile plans are not offered by text\n    conditions: { anyone: spend >= 0 }\n    scope: { offers: [mobile_plan], channels: [sms] }\noffers:\n  from: profile",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let channels = p.duckdb(
        "offers",
        "select offer, string_agg(distinct channel, ' ' order by channel) \
         from read_parquet('{out}/runs/run_date=2026-11-01/offers/*.parquet') group by 1 order by 1",
    );
    assert!(
        channels.contains(&r#"["mobile_plan", "email"]"#.to_string()),
        "{channels:?}"
    );
    assert!(
        channels.contains(&r#"["fiber_upgrade", "email sms"]"#.to_string()),
        "{channels:?}"
    );
    let held = p.duckdb(
        "offers",
        "select distinct held_back_from from read_parquet('{out}/runs/run_date=2026-11-01/suppressed/*.parquet') \
         where suppression = 'no_mobile_texts' order by 1",
    );
    assert_eq!(held, [r#"["offer mobile_plan via sms"]"#]);
    let manifest = p.json("out/offers/runs/run_date=2026-11-01/manifest.json");
    let rule = (manifest["suppressions"].as_array().unwrap().iter())
        .find(|s| s["name"] == "no_mobile_texts")
        .unwrap();
    assert_eq!(rule["scope"], "offers mobile_plan, on channels sms");
}
