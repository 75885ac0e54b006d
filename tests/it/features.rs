//! Feature tables kept up to date day by day equal a recomputation from all events: the example
//! pipeline runs on interactions that arrive day by day, some up to 3 days late, through a gap
//! of two days and a rerun of an earlier date (which reruns the dates after it); a second project recomputes every date with
//! `--full-refresh` from the same files at the same moment. Every feature of every customer,
//! and every published table, must be identical.

use crate::support::{Project, python};

const PIPELINE: &str = "pipelines/daily_segments.yaml";
const FEATURES: [&str; 3] = [
    "customer_features",
    "campaign_contacts",
    "satellite_refusals",
];

const EVENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/sample/events/*/*/*.parquet"
);

/// A customer whose only event, on 2026-11-12, counts for no aggregate: a key the totals gain
/// with zeros.
const LATE_CUSTOMER: u32 = 42;

/// Events of the sample arrive 0–3 days after the day they happened (by customer and hour).
/// Writes those that arrive on `day` (or by `day`, for the first load) into `incoming/` as
/// Hive partitions, one file per arrival. [`LATE_CUSTOMER`]'s events are left out.
fn arrive(incoming: &std::path::Path, day: &str, first: bool) {
    let op = if first { "<=" } else { "=" };
    python(&format!(
        r#"
import duckdb, os
con = duckdb.connect()
con.sql("""CREATE TABLE e AS SELECT *, CAST(event_time AS DATE)
    + CAST((customer_id + hour(event_time)) % 4 AS INTEGER) AS arrived
    FROM read_parquet('{EVENTS}', hive_partitioning = false)
    WHERE customer_id <> {LATE_CUSTOMER}""")
for (y, m) in con.sql("SELECT DISTINCT year(event_time), month(event_time) FROM e WHERE arrived {op} DATE '{day}'").fetchall():
    folder = "{incoming}/year=%d/month=%d" % (y, m)
    os.makedirs(folder, exist_ok=True)
    con.sql(f"""COPY (SELECT * EXCLUDE (arrived) FROM e WHERE arrived {op} DATE '{day}'
        AND year(event_time) = {{y}} AND month(event_time) = {{m}} ORDER BY event_time)
        TO '{{folder}}/arrived-{day}.parquet' (FORMAT parquet)""")
"#,
        incoming = incoming.display(),
    ));
}

/// [`LATE_CUSTOMER`]'s unsubscribing on `day`, arriving that day.
fn arrive_unsubscribe(incoming: &std::path::Path, day: &str) {
    let folder = incoming.join("year=2026/month=11");
    python(&format!(
        r#"
import duckdb
duckdb.sql("""COPY (SELECT * REPLACE (CAST({LATE_CUSTOMER} AS BIGINT) AS customer_id,
    'unsubscribe' AS event_type, TIMESTAMP '{day} 09:00:00' AS event_time,
    CAST(NULL AS DOUBLE) AS amount)
    FROM read_parquet('{EVENTS}', hive_partitioning = false) LIMIT 1)
    TO '{folder}/unsubscribed-{day}.parquet' (FORMAT parquet)""")
"#,
        folder = folder.display(),
    ));
}

/// The example project reading its interactions from `incoming`.
fn project(incoming: &std::path::Path) -> Project {
    let p = Project::sample();
    p.edit(
        PIPELINE,
        "uri: data/sample/events/",
        &format!("uri: {}/", incoming.display()),
    );
    p
}

/// For each table of two projects' runs of `date`: its rows, the rows only in `a` and the rows
/// only in `b`.
fn differences(a: &Project, b: &Project, date: &str, tables: &[String]) -> Vec<[u64; 3]> {
    let path = |p: &Project, table: &str| {
        p.path(&format!(
            "out/daily_segments/runs/run_date={date}/{table}/**/*.parquet"
        ))
        .display()
        .to_string()
    };
    let pairs: Vec<(String, String)> = tables.iter().map(|t| (path(a, t), path(b, t))).collect();
    python(&format!(
        r#"
import duckdb
con = duckdb.connect()
q = lambda sql: con.execute(sql).fetchall()[0][0]
minus = lambda x, y: q("SELECT count(*) FROM (SELECT * FROM read_parquet('%s') EXCEPT ALL SELECT * FROM read_parquet('%s'))" % (x, y))
for x, y in {pairs:?}:
    print(q("SELECT count(*) FROM read_parquet('%s')" % x), minus(x, y), minus(y, x))
"#
    ))
    .lines()
    .map(|line| {
        let n: Vec<u64> = line.split_whitespace().map(|v| v.parse().unwrap()).collect();
        [n[0], n[1], n[2]]
    })
    .collect()
}

/// Every feature's state and every published table of `date` are the same in both projects.
fn assert_same(incremental: &Project, full: &Project, date: &str) {
    let mut tables: Vec<String> = FEATURES
        .iter()
        .map(|f| format!("state/features/{f}/totals"))
        .collect();
    tables.extend(
        [
            "models/customer_profile",
            "audiences",
            "offers",
            "decisions",
            "suppressed",
        ]
        .map(String::from),
    );
    let counts = differences(incremental, full, date, &tables);
    for (table, [rows, only_a, only_b]) in tables.iter().zip(counts) {
        assert!(
            rows > 0,
            "{date} {table}: the table is empty, so the comparison proves nothing"
        );
        assert_eq!(
            (only_a, only_b),
            (0, 0),
            "{date} {table}: rows only in the incremental run, only in the full refresh"
        );
    }
}

fn modes(p: &Project, date: &str) -> Vec<String> {
    let manifest = p.json(&format!(
        "out/daily_segments/runs/run_date={date}/manifest.json"
    ));
    manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["mode"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn incremental_features_equal_a_full_recompute_through_late_events_a_gap_and_a_rerun() {
    let data = tempfile::tempdir().unwrap();
    let incoming = data.path().join("events");
    let incremental = project(&incoming);
    let full = project(&incoming);

    // Daily runs; no run on the 13th and 14th, whose events still arrive.
    arrive(&incoming, "2026-11-10", true);
    let days = [
        "2026-11-11",
        "2026-11-12",
        "2026-11-13",
        "2026-11-14",
        "2026-11-15",
    ];
    let run_on = ["2026-11-10", "2026-11-11", "2026-11-12", "2026-11-15"];
    for date in ["2026-11-10"].iter().chain(days.iter()) {
        if *date != "2026-11-10" {
            arrive(&incoming, date, false);
        }
        if *date == "2026-11-12" {
            arrive_unsubscribe(&incoming, date);
        }
        if !run_on.contains(date) {
            continue;
        }
        incremental.ok(&["run", PIPELINE, "--date", date]);
        full.ok(&["run", PIPELINE, "--date", date, "--full-refresh"]);
        let expected = if *date == "2026-11-10" {
            "full"
        } else {
            "incremental"
        };
        assert_eq!(modes(&incremental, date), [expected; 3], "{date}");
        assert_eq!(modes(&full, date), ["full"; 3], "{date}");
        assert_same(&incremental, &full, date);
    }

    // More events of the 13th to the 15th have arrived since; rerunning the 11th reruns the
    // dates after it, each continuing from the one before.
    arrive(&incoming, "2026-11-16", false);
    incremental.ok(&["run", PIPELINE, "--date", "2026-11-11"]);
    let fresh = project(&incoming);
    for date in ["2026-11-11", "2026-11-12", "2026-11-15"] {
        fresh.ok(&["run", PIPELINE, "--date", date, "--full-refresh"]);
        assert_eq!(modes(&incremental, date), ["incremental"; 3], "{date}");
        assert_same(&incremental, &fresh, date);
    }
    // The customer whose only event counts for nothing has a row since the 12th, or the
    // comparison of the totals proved nothing about such keys.
    let late = incremental.duckdb(
        "daily_segments",
        &format!(
            "select count(*) from read_parquet('{{out}}/runs/run_date=2026-11-12/state/features/customer_features/totals/*.parquet') where customer_id = {LATE_CUSTOMER} and purchases_365d = 0"
        ),
    );
    assert_eq!(late, ["[\"1\"]"]);

    // The late events of the 15th did change something, or the rerun proved nothing.
    let table = ["state/features/customer_features/totals".to_string()];
    let [_, only_rerun, only_before] = differences(&incremental, &full, "2026-11-15", &table)[0];
    assert!(
        only_rerun + only_before > 0,
        "late events changed no feature"
    );
}

/// A first run writes a year of days into the state, and keeps of each what a later run may
/// take away from a total: an aggregate while the day is inside its longest window. Older
/// days keep fewer aggregates, and only the keys with events that count for them.
#[test]
fn a_first_runs_state_keeps_of_each_day_what_later_runs_take_away() {
    let p = Project::sample();
    p.ok(&["run", PIPELINE, "--date", "2026-11-19"]);
    let day = |day: &str, select: &str| -> Vec<u64> {
        let sql = format!(
            "select {select} from read_parquet('{{out}}/runs/run_date=2026-11-19/state/features/customer_features/days/day={day}/*.parquet')"
        );
        let row = p.duckdb("daily_segments", &sql).remove(0);
        let values: Vec<String> = serde_json::from_str(&row).unwrap();
        values.iter().map(|v| v.parse().unwrap()).collect()
    };
    let counts = "count(*), count(purchases), count(*) filter (purchases > 0), \
                  count(email_opens), count(*) filter (email_opens > 0), count(visits), \
                  count(*) filter (visits > 0), count(last_purchase), count(last_visit)";
    // Inside every window (the 30 days up to the 19th): every aggregate but `max`.
    let [
        rows,
        purchases,
        bought,
        opens,
        opened,
        visits,
        visited,
        last_purchase,
        last_visit,
    ] = day("2026-11-04", counts)[..]
    else {
        unreachable!()
    };
    assert!(rows > 0 && bought > 0 && opened > 0 && visited > 0);
    assert_eq!((purchases, opens, visits), (rows, rows, rows));
    assert_eq!(
        (last_purchase, last_visit),
        (0, 0),
        "max is never taken away"
    );
    // Inside the 90 and 365 days: not the 30-day visits, nor rows of visits alone.
    let [rows, purchases, bought, opens, opened, visits, ..] = day("2026-09-01", counts)[..] else {
        unreachable!()
    };
    assert!(bought > 0 && opened > 0);
    assert_eq!((purchases, opens, visits), (rows, rows, 0));
    // Older than 90 days: purchases and spend alone, of those who bought.
    let [rows, purchases, bought, opens, _, visits, ..] = day("2026-06-01", counts)[..] else {
        unreachable!()
    };
    assert!(rows > 0);
    assert_eq!((purchases, bought, opens, visits), (rows, rows, 0, 0));
}

#[test]
fn a_changed_definition_is_recomputed_from_all_events() {
    let p = Project::sample();
    p.ok(&["run", PIPELINE, "--date", "2026-11-19"]);
    p.edit(
        PIPELINE,
        "windows: [30, 90, 365]",
        "windows: [30, 90, 180, 365]",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-20"]);
    let manifest = p.json("out/daily_segments/runs/run_date=2026-11-20/manifest.json");
    let features = manifest["features"].as_array().unwrap();
    assert_eq!(features[0]["mode"], "full");
    assert_eq!(
        features[0]["reason"],
        "the feature's definition or parameters changed since the previous run"
    );
    assert_eq!(features[1]["mode"], "incremental");
    // How long each part took, for whoever sizes the runs: a feature with windows computed
    // from all events spends time on its totals and on a year of per-day partials.
    let took = |f: &serde_json::Value, part: &str| f[part].as_u64().unwrap();
    assert!(took(&features[0], "totals_ms") > 0 && took(&features[0], "days_ms") > 0);
    assert!(took(&features[1], "totals_ms") > 0);
}

#[test]
fn erased_customers_leave_the_feature_state_of_every_run() {
    let p = Project::sample();
    let requests = p.path("erasure_requests.csv");
    let committed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/sample/crm/erasure_requests.csv"
    );
    std::fs::copy(committed, &requests).unwrap();
    p.edit(
        PIPELINE,
        "uri: data/sample/crm/erasure_requests.csv",
        "uri: erasure_requests.csv",
    );
    for date in ["2026-11-18", "2026-11-19"] {
        p.ok(&["run", PIPELINE, "--date", date]);
    }
    let state = |date: &str, feature: &str, part: &str| {
        format!("{{out}}/runs/run_date={date}/state/features/{feature}/{part}/**/*.parquet")
    };
    // A customer who bought and was contacted recently.
    let customer = p.duckdb(
        "daily_segments",
        &format!(
            "select t.customer_id from read_parquet('{}') t join read_parquet('{}') c using (customer_id) where t.purchases_30d > 0 order by 1 limit 1",
            state("2026-11-19", "customer_features", "totals"),
            state("2026-11-19", "campaign_contacts", "totals")
        ),
    )[0]
    .trim_matches(['[', ']', '"'])
    .to_string();
    let rows = |date: &str, feature: &str, part: &str| -> u64 {
        let sql = format!(
            "select count(*) from read_parquet('{}') where customer_id = {customer}",
            state(date, feature, part)
        );
        p.duckdb("daily_segments", &sql)[0]
            .trim_matches(['[', ']', '"'])
            .parse()
            .unwrap()
    };
    assert!(rows("2026-11-18", "customer_features", "days") > 0);
    // The customers erased before the first run had events in its window, and have no row in
    // its state.
    let count = |sql: &str| -> u64 {
        p.duckdb("daily_segments", sql)[0]
            .trim_matches(['[', ']', '"'])
            .parse()
            .unwrap()
    };
    let events = p.path("data/sample/events");
    for erased in ["17", "2048"] {
        let had = format!(
            "select count(*) from read_parquet('{}/*/*/*.parquet', hive_partitioning = true) \
             where customer_id = {erased} and event_time >= TIMESTAMP '2025-11-19'",
            events.display()
        );
        assert!(count(&had) > 0, "customer {erased} has events");
        for feature in ["customer_features", "campaign_contacts"] {
            for part in ["totals", "days"] {
                let kept = format!(
                    "select count(*) from read_parquet('{}') where customer_id = {erased}",
                    state("2026-11-18", feature, part)
                );
                assert_eq!(count(&kept), 0, "customer {erased}: {feature} {part}");
            }
        }
    }
    // A customer in the state of a feature without windows, which keeps no per-day partials.
    let refused = p.duckdb(
        "daily_segments",
        &format!(
            "select customer_id from read_parquet('{}') order by 1 limit 1",
            state("2026-11-19", "satellite_refusals", "totals")
        ),
    )[0]
    .trim_matches(['[', ']', '"'])
    .to_string();
    let refusals = |date: &str| {
        let sql = format!(
            "select count(*) from read_parquet('{}') where customer_id = {refused}",
            state(date, "satellite_refusals", "totals")
        );
        count(&sql)
    };
    assert_eq!(refusals("2026-11-19"), 1);
    // Every day's rows, and how many of them are the erased customers'.
    let day_rows = |date: &str| -> Vec<String> {
        let sql = format!(
            "select day, count(*), count(*) filter (where customer_id in ({customer}, {refused})) from read_parquet('{}') group by day order by day",
            state(date, "customer_features", "days")
        );
        p.duckdb("daily_segments", &sql)
    };
    let before = day_rows("2026-11-18");

    let mut text = std::fs::read_to_string(&requests).unwrap();
    text.push_str(&format!("{customer},2026-11-20\n{refused},2026-11-20\n"));
    std::fs::write(&requests, text).unwrap();
    p.ok(&["run", PIPELINE, "--date", "2026-11-20"]);
    assert_eq!(modes(&p, "2026-11-20"), ["incremental"; 3]);
    for date in ["2026-11-18", "2026-11-19", "2026-11-20"] {
        for feature in ["customer_features", "campaign_contacts"] {
            for part in ["totals", "days"] {
                assert_eq!(rows(date, feature, part), 0, "{date} {feature} {part}");
            }
        }
        assert_eq!(refusals(date), 0, "{date} satellite_refusals");
    }
    // Scrubbing a published run's days takes away the customer's rows and nothing else.
    let after = day_rows("2026-11-18");
    assert_eq!(before.len(), after.len());
    for (before, after) in before.iter().zip(&after) {
        let counts = |row: &str| -> [u64; 2] {
            let row: Vec<String> = serde_json::from_str(row).unwrap();
            [row[1].parse().unwrap(), row[2].parse().unwrap()]
        };
        let ([all, theirs], [kept, left]) = (counts(before), counts(after));
        assert_eq!((kept, left), (all - theirs, 0), "{before} → {after}");
    }
    // The next run continues from the scrubbed state.
    p.ok(&["run", PIPELINE, "--date", "2026-11-21"]);
    assert_eq!(modes(&p, "2026-11-21"), ["incremental"; 3]);
}

/// Replaces the example's customer_features aggregates with `aggregates` and validates.
fn invalid(aggregates: &str) -> String {
    let p = Project::sample();
    let text = p.read(PIPELINE);
    let start = text.find("    aggregates:\n      purchases:").unwrap();
    let end = text.find("  campaign_contacts:\n    description").unwrap();
    p.write(
        PIPELINE,
        &format!(
            "{}    aggregates:\n{aggregates}{}",
            &text[..start],
            &text[end..]
        ),
    );
    p.fails(&["validate", PIPELINE], 2)
}

#[test]
fn aggregates_that_cannot_be_kept_up_to_date_are_refused_at_their_line() {
    let err = invalid("      biggest: { max: amount }\n");
    assert!(
        err.contains("pipelines/daily_segments.yaml:")
            && err.contains("features.customer_features.aggregates.biggest: max of amount cannot be kept up to date day by day"),
        "{err}"
    );
    let err = invalid("      spend: { sum: amount }\n");
    assert!(
        err.contains("spend: amount is a double; sums are kept exactly, as decimals")
            && err.contains("e.g. decimals: 2"),
        "{err}"
    );
    let err = invalid("      recent: { count: \"*\", where: \"event_time > $run_date\" }\n");
    assert!(err.contains("remove $run_date"), "{err}");
    let err = invalid(
        "      recent: { count: \"*\", where: \"event_time > now() - INTERVAL '7 days'\" }\n",
    );
    assert!(err.contains("now() changes from run to run"), "{err}");
    let err = invalid("      sample: { count: \"*\", where: \"random() < 0.1\" }\n");
    assert!(err.contains("random() changes from run to run"), "{err}");
    // Quoted, the same function.
    let err = invalid("      sample: { count: \"*\", where: '\"random\"() < 0.1' }\n");
    assert!(err.contains("random() changes from run to run"), "{err}");
    let err = invalid("      last: { max: event_time, windows: [30] }\n");
    assert!(
        err.contains("is over all history and has no windows"),
        "{err}"
    );
    let err = invalid("      both: { count: \"*\", sum: amount }\n");
    assert!(
        err.contains("give exactly one of count, sum, max or min"),
        "{err}"
    );
    // A mistake in a condition is reported at the condition, not in generated SQL.
    let err = invalid("      oops: { count: \"*\", where: \"evnt_type = 'purchase'\" }\n");
    let after_file = err.split("daily_segments.yaml:").nth(1).unwrap();
    let line: usize = after_file.split(':').next().unwrap().parse().unwrap();
    let original = Project::sample().read(PIPELINE);
    // The line after the first `aggregates:`, where `oops` went.
    let expected = original
        .lines()
        .position(|l| l == "    aggregates:")
        .unwrap()
        + 2;
    assert_eq!(line, expected, "{err}");
    assert!(err.contains("evnt_type"), "{err}");
}

/// What `plan --format sql` prints for a feature is what a first run writes: DuckDB running
/// the feature's query on the same events, erased customers left out, gives every key's totals,
/// and running its state query every day's partials.
#[test]
fn the_planned_queries_compute_what_a_first_run_writes() {
    let p = Project::sample();
    let date = "2026-11-20";
    p.ok(&["run", PIPELINE, "--date", date]);
    let plan = p.ok(&["plan", PIPELINE, "--format", "sql"]);
    let planned = |heading: &str| {
        (plan.split(&format!("{heading}\n")).nth(1))
            .unwrap_or_else(|| panic!("the plan prints {heading}"))
            .split(";\n")
            .next()
            .unwrap()
            .replace("$run_date", &format!("DATE '{date}'"))
    };
    let events = p.path("data/sample/events");
    let interactions = format!(
        "interactions as (select * from read_parquet('{}/*/*/*.parquet', hive_partitioning = true))",
        events.display()
    );
    let run = format!("{{out}}/runs/run_date={date}/state");
    let not_erased = format!(
        "sha256(cast(customer_id as varchar)) not in \
         (select key_sha256 from read_parquet('{run}/erased/*.parquet'))"
    );
    for (feature, hidden) in [
        ("customer_features", ""),
        ("campaign_contacts", " exclude (__rows)"),
    ] {
        let query = planned(&format!(
            "-- feature {feature}, computed from all its events"
        ));
        let compared = p.duckdb(
            "daily_segments",
            &format!(
                "with {interactions}, planned as (select * from ({query}) where {not_erased}), \
                 written as (select *{hidden} from \
                 read_parquet('{run}/features/{feature}/totals/*.parquet', hive_partitioning = false)) \
                 select (select count(*) from written), \
                 (select count(*) from (from planned except all from written)), \
                 (select count(*) from (from written except all from planned))"
            ),
        );
        let counts: Vec<u64> = serde_json::from_str::<Vec<String>>(&compared[0])
            .unwrap()
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(counts[0] > 1000, "{feature}: {} keys", counts[0]);
        assert_eq!(
            counts[1..],
            [0, 0],
            "{feature}: rows only DuckDB or only segflow has"
        );
    }
    // A day's partials may hold a key more than once (rows that add up to its day): compare
    // the keys and sums per day.
    let state = planned("-- feature state: customer_features");
    let per_day = "select day, count(distinct customer_id), sum(purchases), sum(email_opens), \
                   sum(visits), count(last_visit) from";
    let planned = p.duckdb(
        "daily_segments",
        &format!(
            "with {interactions}, planned as ({state}) \
             {per_day} planned where {not_erased} group by day order by day"
        ),
    );
    let kept = p.duckdb(
        "daily_segments",
        &format!(
            "{per_day} read_parquet('{run}/features/customer_features/days/*/*.parquet') \
             group by day order by day"
        ),
    );
    assert!(kept.len() > 300, "{} days", kept.len());
    assert_eq!(planned, kept);
}

/// A feature over a 2-day window whose events may arrive 3 days late, with erasure.
const SHORT_WINDOW: &str = "pipeline: t
key: customer_id
sources:
  events: { uri: data/events/, format: parquet, columns: { customer_id: int, event_time: timestamp } }
  erasure_requests: { uri: data/erase.csv, format: csv, columns: { customer_id: int } }
features:
  f:
    from: events
    key: customer_id
    time: event_time
    windows: [2]
    late_days: 3
    aggregates:
      n: { count: \"*\" }
erasure:
  source: erasure_requests
models:
  profile: { sql: sql/profile.sql }
output:
  uri: out/
";

/// A project of [`SHORT_WINDOW`] (or `pipeline`) whose events are the rows of `events`, a
/// DuckDB query of `customer_id, event_time[, amount]`; nobody is erased yet.
fn short_window_project(pipeline: &str, events: &str) -> Project {
    let p = Project::mini();
    p.write("pipelines/t.yaml", pipeline);
    p.write("sql/profile.sql", "select * from f");
    p.write("data/erase.csv", "customer_id\n99\n");
    std::fs::create_dir_all(p.path("data/events")).unwrap();
    python(&format!(
        "import duckdb\nduckdb.sql(\"\"\"COPY ({events}) TO '{}' (FORMAT parquet)\"\"\")",
        p.path("data/events/a.parquet").display()
    ));
    p
}

#[test]
fn days_before_the_window_are_not_kept_and_an_erasure_leaves_no_trace_of_them() {
    // Customer 7's only event is on 01-08, before the window of every run below.
    let p = short_window_project(
        SHORT_WINDOW,
        "SELECT * FROM (VALUES (1, TIMESTAMP '2026-01-10 10:00'), (7, TIMESTAMP '2026-01-08 10:00'), \
         (1, TIMESTAMP '2026-01-11 10:00')) AS e(customer_id, event_time)",
    );
    for date in ["2026-01-10", "2026-01-11"] {
        p.ok(&["run", "pipelines/t.yaml", "--date", date]);
    }
    let state = |date: &str, part: &str, what: &str| {
        p.duckdb(
            "t",
            &format!("select {what} from read_parquet('{{out}}/runs/run_date={date}/state/features/f/{part}/**/*.parquet', hive_partitioning = false) order by all"),
        )
    };
    // The second run reread 01-08 to 01-11 (late events), and keeps the days of its window.
    assert_eq!(
        state("2026-01-11", "days", "distinct day"),
        [r#"["2026-01-10"]"#, r#"["2026-01-11"]"#]
    );
    p.write("data/erase.csv", "customer_id\n99\n7\n");
    p.ok(&["run", "pipelines/t.yaml", "--date", "2026-01-12"]);
    for date in ["2026-01-10", "2026-01-11", "2026-01-12"] {
        for part in ["days", "totals"] {
            let sevens = state(date, part, "count(*) filter (where customer_id = 7)");
            assert_eq!(sevens, [r#"["0"]"#], "{date} {part}");
        }
    }
}

#[test]
fn erasing_a_customer_keeps_the_events_without_a_key_in_every_run() {
    let p = short_window_project(
        SHORT_WINDOW,
        "SELECT * FROM (VALUES (1, TIMESTAMP '2026-01-27 10:00'), (NULL, TIMESTAMP '2026-01-27 10:00'), \
         (5, TIMESTAMP '2026-01-28 10:00'), (NULL, TIMESTAMP '2026-01-28 10:00')) AS e(customer_id, event_time)",
    );
    p.ok(&["run", "pipelines/t.yaml", "--date", "2026-01-28"]);
    p.write("data/erase.csv", "customer_id\n99\n5\n");
    p.ok(&["run", "pipelines/t.yaml", "--date", "2026-01-29"]);
    for date in ["2026-01-28", "2026-01-29"] {
        let totals = p.duckdb(
            "t",
            &format!("select customer_id, n_2d from read_parquet('{{out}}/runs/run_date={date}/state/features/f/totals/*.parquet') order by all"),
        );
        // Customer 5 is gone from the earlier run too; customer 1 has no event left in the
        // window on 01-29.
        let expected = match date {
            "2026-01-28" => vec![r#"["1", "1"]"#, r#"[null, "2"]"#],
            _ => vec![r#"[null, "1"]"#],
        };
        assert_eq!(totals, expected, "{date}");
    }
}

#[test]
fn an_amount_too_large_for_its_decimals_is_a_data_error_that_does_not_print_it() {
    let pipeline = SHORT_WINDOW
        .replace(
            "columns: { customer_id: int, event_time: timestamp }",
            "columns: { customer_id: int, event_time: timestamp, amount: double }",
        )
        .replace(
            "      n: { count: \"*\" }",
            "      n: { count: \"*\" }\n      spend: { sum: amount, decimals: 2 }",
        );
    let p = short_window_project(
        &pipeline,
        "SELECT 1 AS customer_id, TIMESTAMP '2026-01-10 10:00' AS event_time, CAST(12345e33 AS DOUBLE) AS amount",
    );
    // Exit 1, the data's: not a mistake of --date or --param.
    let err = p.fails(&["run", "pipelines/t.yaml", "--date", "2026-01-10"], 1);
    assert!(
        err.contains("feature f") && err.contains("Overflowing on …"),
        "{err}"
    );
    assert!(!err.contains("--param") && !err.contains("1234"), "{err}");
}

#[test]
fn a_feature_whose_source_points_elsewhere_is_recomputed_from_all_its_events() {
    let p = short_window_project(
        SHORT_WINDOW,
        "SELECT * FROM (VALUES (1, TIMESTAMP '2026-01-10 10:00'), (1, TIMESTAMP '2026-01-11 10:00')) AS e(customer_id, event_time)",
    );
    p.edit(
        "pipelines/t.yaml",
        "{ sql: sql/profile.sql }",
        "{ sql: sql/profile.sql, publish: true }",
    );
    p.ok(&["run", "pipelines/t.yaml", "--date", "2026-01-10"]);
    // Another extract with one event on 01-11: the old state's 01-10 must not count.
    std::fs::create_dir_all(p.path("data/v2")).unwrap();
    python(&format!(
        "import duckdb\nduckdb.sql(\"\"\"COPY (SELECT 1 AS customer_id, TIMESTAMP '2026-01-11 10:00' AS event_time) TO '{}' (FORMAT parquet)\"\"\")",
        p.path("data/v2/a.parquet").display()
    ));
    p.edit("pipelines/t.yaml", "uri: data/events/", "uri: data/v2/");
    p.ok(&["run", "pipelines/t.yaml", "--date", "2026-01-11"]);
    let manifest = p.json("out/t/runs/run_date=2026-01-11/manifest.json");
    assert_eq!(manifest["features"][0]["mode"], "full");
    let n = p.duckdb(
        "t",
        "select n_2d from read_parquet('{out}/runs/run_date=2026-01-11/models/profile/*.parquet')",
    );
    assert_eq!(n, ["[\"1\"]"]);
}
