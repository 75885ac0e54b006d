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

/// Events of the sample arrive 0–3 days after the day they happened (by customer and hour).
/// Writes those that arrive on `day` (or by `day`, for the first load) into `incoming/` as
/// Hive partitions, one file per arrival.
fn arrive(incoming: &std::path::Path, day: &str, first: bool) {
    let events = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/sample/events/*/*/*.parquet"
    );
    let op = if first { "<=" } else { "=" };
    python(&format!(
        r#"
import duckdb, os
con = duckdb.connect()
con.sql("""CREATE TABLE e AS SELECT *, CAST(event_time AS DATE)
    + CAST((customer_id + hour(event_time)) % 4 AS INTEGER) AS arrived
    FROM read_parquet('{events}', hive_partitioning = false)""")
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
    // The late events of the 15th did change something, or the rerun proved nothing.
    let table = ["state/features/customer_features/totals".to_string()];
    let [_, only_rerun, only_before] = differences(&incremental, &full, "2026-11-15", &table)[0];
    assert!(
        only_rerun + only_before > 0,
        "late events changed no feature"
    );
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
}
