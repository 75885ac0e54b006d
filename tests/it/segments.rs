//! Segments across days: membership, changes, migration, history, backfill and reruns, on the
//! hand-made project in tests/fixtures/segs (expectations worked out by hand from its CSVs).

use crate::support::Project;

const PIPELINE: &str = "pipelines/segs.yaml";

fn backfill(p: &Project, from: &str, to: &str) -> String {
    p.ok(&["backfill", PIPELINE, "--from", from, "--to", to])
}

fn rows(p: &Project, sql: &str) -> Vec<String> {
    p.duckdb("segs", sql)
}

/// The big spenders' spells after 2026-11-01 to 11-05: customer 1 spends over 100 on days 1,
/// 2, 4 and 5 (two spells), customer 2 on day 2.
fn assert_five_days_of_big_spenders(p: &Project) {
    assert_eq!(
        rows(
            p,
            "select customer_id, entered_on, exited_on from read_parquet('{out}/runs/run_date=2026-11-05/state/memberships/*.parquet') where segment = 'big_spenders' order by 1, 2"
        ),
        [
            r#"["1", "2026-11-01", "2026-11-03"]"#,
            r#"["1", "2026-11-04", null]"#,
            r#"["2", "2026-11-02", "2026-11-03"]"#,
        ]
    );
}

#[test]
fn customer_enters_stays_leaves_and_reenters() {
    let p = Project::segs();
    let out = backfill(&p, "2026-11-01", "2026-11-05");
    assert!(out.contains("5 published"), "{out}");

    assert_five_days_of_big_spenders(&p);

    // What changed each day in big_spenders.
    let changes = |date: &str| {
        rows(
            &p,
            &format!(
                "select change, customer_id from read_parquet('{{out}}/runs/run_date={date}/changes/segment=big_spenders/*.parquet') order by 1, 2"
            ),
        )
    };
    assert_eq!(changes("2026-11-01"), [r#"["added", "1"]"#]);
    assert_eq!(changes("2026-11-02"), [r#"["added", "2"]"#]);
    assert_eq!(
        changes("2026-11-03"),
        [r#"["removed", "1"]"#, r#"["removed", "2"]"#]
    );
    assert_eq!(changes("2026-11-04"), [r#"["added", "1"]"#]);
    assert!(changes("2026-11-05").is_empty());

    // On day 3 both big spenders bought nothing: they moved to quiet.
    assert_eq!(
        rows(
            &p,
            "select from_segment, to_segment, customers from read_parquet('{out}/runs/run_date=2026-11-03/migration.parquet') order by 1, 2"
        ),
        [
            r#"["big_spenders", "quiet", "2"]"#,
            r#"["quiet", "quiet", "3"]"#,
            r#"["vip", "vip", "2"]"#,
        ]
    );
    // On the first day everyone comes from no segment.
    assert_eq!(
        rows(
            &p,
            "select from_segment, sum(customers) from read_parquet('{out}/runs/run_date=2026-11-01/migration.parquet') group by 1"
        ),
        [r#"["(none)", "7"]"#]
    );

    let manifest = p.json("out/segs/runs/run_date=2026-11-04/manifest.json");
    let big = &manifest["segments"][0];
    assert_eq!(big["name"], "big_spenders");
    assert_eq!(
        (
            big["size"].as_u64(),
            big["added"].as_u64(),
            big["removed"].as_u64(),
            big["stayed"].as_u64()
        ),
        (Some(1), Some(1), Some(0), Some(0))
    );
    let quiet = &manifest["segments"][1];
    assert_eq!(
        (
            quiet["size"].as_u64(),
            quiet["added"].as_u64(),
            quiet["removed"].as_u64(),
            quiet["stayed"].as_u64()
        ),
        (Some(4), Some(0), Some(1), Some(4))
    );
    assert_eq!(manifest["previous_run"], "2026-11-03");
}

#[test]
fn audiences_carry_group_reasons_and_activation_columns() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-04"]);
    assert_eq!(
        rows(
            &p,
            "select * from read_parquet('{out}/runs/run_date=2026-11-04/audiences/segment=big_spenders/*.parquet', hive_partitioning=false)"
        ),
        [
            r#"["1", "treatment", "spent_over_100_today: spend_today > 100", null, "Ada", "email", "2026-11-04", "big_spenders"]"#
        ]
    );
    assert_eq!(
        rows(
            &p,
            "select customer_id, reasons from read_parquet('{out}/runs/run_date=2026-11-04/audiences/segment=vip/*.parquet')"
        ),
        [
            r#"["5", "Hand-picked VIP accounts"]"#,
            r#"["6", "Hand-picked VIP accounts"]"#
        ]
    );
}

fn published_rows(p: &Project) -> Vec<String> {
    rows(
        p,
        "select * from (\
           select 'audience' as kind, segment, customer_id::varchar as k, test_group as v, run_date from read_parquet('{out}/runs/*/audiences/*/*.parquet', hive_partitioning=true) \
           union all select 'change', segment, customer_id::varchar, change, run_date from read_parquet('{out}/runs/*/changes/*/*.parquet', hive_partitioning=true) \
           union all select 'state', segment, customer_id::varchar, entered_on::varchar || '..' || coalesce(exited_on::varchar, ''), run_date from read_parquet('{out}/runs/*/state/memberships/*.parquet', hive_partitioning=true) \
           union all select 'migration', from_segment, to_segment, customers::varchar, run_date from read_parquet('{out}/runs/*/migration.parquet', hive_partitioning=true)\
         ) order by all",
    )
}

#[test]
fn backfill_equals_single_runs_and_reruns_are_identical() {
    let a = Project::segs();
    backfill(&a, "2026-11-01", "2026-11-04");
    let b = Project::segs();
    for day in ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"] {
        b.ok(&["run", PIPELINE, "--date", day]);
    }
    let expected = published_rows(&a);
    assert!(expected.len() > 40, "{expected:?}");
    assert_eq!(published_rows(&b), expected);

    // Rerunning everything gives the same rows.
    a.ok(&[
        "backfill",
        PIPELINE,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-04",
        "--rerun",
    ]);
    assert_eq!(published_rows(&a), expected);
}

#[test]
fn rerunning_an_old_date_rebuilds_the_runs_after_it() {
    let p = Project::segs();
    backfill(&p, "2026-11-01", "2026-11-05");
    let expected = published_rows(&p);
    let out = p.segflow(&["run", PIPELINE, "--date", "2026-11-02"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rebuilt the later runs 2026-11-03, 2026-11-04, 2026-11-05"),
        "{stderr}"
    );
    assert_eq!(published_rows(&p), expected);

    // Running a date out of order (a gap filled later) gives the history of running in order.
    let q = Project::segs();
    q.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    q.ok(&["run", PIPELINE, "--date", "2026-11-03"]);
    q.ok(&["run", PIPELINE, "--date", "2026-11-02"]);
    let in_order = Project::segs();
    backfill(&in_order, "2026-11-01", "2026-11-03");
    assert_eq!(published_rows(&q), published_rows(&in_order));
}

#[test]
fn a_rebuild_stopped_before_it_could_report_is_finished_by_the_next_run() {
    // Filling the gap of 11-02 must rebuild 11-03; the rerun stops right after publishing 11-02
    // (as a killed process would), before rebuilding anything.
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    p.ok(&["run", PIPELINE, "--date", "2026-11-03"]);
    let stopped = p
        .command(&["run", PIPELINE, "--date", "2026-11-02"])
        .env("SEGFLOW_FAILPOINT", "rebuild")
        .output()
        .unwrap();
    assert_eq!(stopped.status.code(), Some(1));
    assert!(p.path("out/segs/rebuild.json").exists());
    // The next run finishes the rebuild first: history is that of running in order.
    let err =
        String::from_utf8_lossy(&p.segflow(&["run", PIPELINE, "--date", "2026-11-04"]).stderr)
            .into_owned();
    assert!(
        err.contains("first finished the rebuild an earlier command left: rebuilt 2026-11-03 (their changes and history follow from 2026-11-02)"),
        "{err}"
    );
    assert!(!p.path("out/segs/rebuild.json").exists());
    let in_order = Project::segs();
    backfill(&in_order, "2026-11-01", "2026-11-04");
    assert_eq!(published_rows(&p), published_rows(&in_order));
}

/// Makes the profile fail on `date` (a division by zero); returns its SQL file.
fn fail_on(p: &Project, date: &str) -> &'static str {
    let profile = "sql/segs/profile.sql";
    p.edit(
        profile,
        "select\n",
        &format!(
            "select\n    1 / (case when $run_date = date '{date}' then 0 else 1 end) as guard,\n"
        ),
    );
    profile
}

#[test]
fn failed_day_stops_the_backfill_and_the_next_backfill_resumes_there() {
    let p = Project::segs();
    let profile = fail_on(&p, "2026-11-03");
    let stderr = p.fails(
        &[
            "backfill",
            PIPELINE,
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-05",
        ],
        1,
    );
    assert!(
        stderr.contains("backfill stopped at 2026-11-03 (2 of 5 dates published"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("divide by zero"), "{stderr}");
    let published: Vec<_> = std::fs::read_dir(p.path("out/segs/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(published.len(), 2, "{published:?}");
    let day1 = p.read("out/segs/runs/run_date=2026-11-01/manifest.json");

    // Fix the SQL and resume: published dates are not redone.
    p.edit(
        profile,
        "when $run_date = date '2026-11-03' then 0",
        "when false then 0",
    );
    let out = backfill(&p, "2026-11-01", "2026-11-05");
    assert!(out.contains("3 published, 2 already published"), "{out}");
    assert_eq!(
        p.read("out/segs/runs/run_date=2026-11-01/manifest.json"),
        day1
    );
}

#[test]
fn explain_shows_each_condition_with_the_values_behind_it() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-04"]);
    let text = p.ok(&["explain", PIPELINE, "--key", "1", "--date", "2026-11-04"]);
    let text = p.hide_paths(&text);
    let text = text
        .lines()
        .map(|l| {
            if l.contains("published run:") {
                "  published run: [RUN]"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!(text);

    let json = p.explain_json(PIPELINE, "2", "2026-11-04");
    let quiet = &json["segments"][1];
    assert_eq!(quiet["name"], "quiet");
    assert_eq!(quiet["member"], true);
    assert_eq!(quiet["group"], "treatment");
    assert_eq!(quiet["published_member"], true);
    assert_eq!(
        quiet["conditions"][0]["values"][0],
        serde_json::json!(["spend_today", "0.0"])
    );
}

/// Every table of every published run, as sorted rows per file path (pyarrow).
fn published_tables(p: &Project) -> String {
    let script = format!(
        "import json, os, pyarrow.parquet as pq\nroot = {root:?}\nout = {{}}\n\
         for base, _, files in os.walk(root):\n\
         \x20   for f in files:\n\
         \x20       if f.endswith('.parquet'):\n\
         \x20           path = os.path.join(base, f)\n\
         \x20           rows = [json.dumps(r, sort_keys=True, default=str) for r in pq.ParquetFile(path).read().to_pylist()]\n\
         \x20           out[os.path.relpath(path, root)] = sorted(rows)\n\
         print(json.dumps(out, sort_keys=True))",
        root = p.path("out/segs/runs").to_string_lossy()
    );
    crate::support::python(&script)
}

#[test]
fn concurrent_runs_of_different_dates_leave_history_as_a_sequential_run_does() {
    let p = Project::segs();
    backfill(&p, "2026-11-01", "2026-11-03");
    // A rerun of the first date (which rebuilds the two after it) and a run of a new date, at
    // the same time: one waits for the other.
    let start = |date: &str| {
        p.command(&["run", PIPELINE, "--date", date])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (rerun, new_date) = (start("2026-11-01"), start("2026-11-04"));
    for child in [rerun, new_date] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sequential = Project::segs();
    backfill(&sequential, "2026-11-01", "2026-11-04");
    let tables = published_tables(&p);
    assert!(
        tables.contains("run_date=2026-11-04/state/memberships"),
        "{tables}"
    );
    assert_eq!(tables, published_tables(&sequential));
}

#[test]
fn a_segment_taken_out_of_the_pipeline_closes_its_members_spells() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let vip = "select customer_id, entered_on, exited_on from read_parquet('{out}/runs/run_date=2026-11-02/state/memberships/*.parquet') where segment = 'vip' order by 1";
    // vip is renamed: its members leave it and enter the new name.
    p.edit(PIPELINE, "    vip:\n", "    vip_accounts:\n");
    p.ok(&["run", PIPELINE, "--date", "2026-11-02"]);
    assert_eq!(
        rows(&p, vip),
        [
            r#"["5", "2026-11-01", "2026-11-02"]"#,
            r#"["6", "2026-11-01", "2026-11-02"]"#,
        ]
    );
    assert_eq!(
        rows(
            &p,
            "select change, customer_id from read_parquet('{out}/runs/run_date=2026-11-02/changes/segment=vip_accounts/*.parquet') order by 2"
        ),
        [r#"["added", "5"]"#, r#"["added", "6"]"#]
    );
    assert!(
        !p.path("out/segs/runs/run_date=2026-11-02/changes/segment=vip")
            .exists()
    );
    assert_eq!(
        rows(
            &p,
            "select from_segment, to_segment, customers from read_parquet('{out}/runs/run_date=2026-11-02/migration.parquet') where from_segment = 'vip'"
        ),
        [r#"["vip", "vip_accounts", "2"]"#]
    );
    // The day after, the closed spells stay as they are.
    p.ok(&["run", PIPELINE, "--date", "2026-11-03"]);
    assert_eq!(
        rows(&p, &vip.replace("2026-11-02/state", "2026-11-03/state")),
        [
            r#"["5", "2026-11-01", "2026-11-02"]"#,
            r#"["6", "2026-11-01", "2026-11-02"]"#,
        ]
    );
}

#[test]
fn a_sql_segment_keeps_only_customers_of_the_profile() {
    let p = Project::segs();
    // Customer 6, a VIP in the CRM that vip.sql reads, is not in the profile (e.g. signed up
    // after the run date).
    p.edit(
        "sql/segs/profile.sql",
        "group by",
        "where c.customer_id <> 6\ngroup by",
    );
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    let keys = |table: &str| {
        rows(
            &p,
            &format!(
                "select customer_id from read_parquet('{{out}}/runs/run_date=2026-11-01/{table}/*.parquet') order by 1"
            ),
        )
    };
    assert_eq!(keys("audiences/segment=vip"), [r#"["5"]"#]);
    assert_eq!(keys("changes/segment=vip"), [r#"["5"]"#]);
    assert_eq!(
        rows(
            &p,
            "select customer_id from read_parquet('{out}/runs/run_date=2026-11-01/state/memberships/*.parquet') where segment = 'vip'"
        ),
        [r#"["5"]"#]
    );
    let manifest = p.json("out/segs/runs/run_date=2026-11-01/manifest.json");
    assert_eq!(manifest["segments"][2]["name"], "vip");
    assert_eq!(manifest["segments"][2]["size"], 1);
}

#[test]
fn explain_of_a_date_published_before_a_segment_and_offers_were_added() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    p.edit(
        PIPELINE,
        "    vip:\n",
        "    named_a:\n      description: First name starts with A\n      \
         conditions: { a: \"first_name LIKE 'A%'\" }\n    vip:\n",
    );
    p.edit(
        PIPELINE,
        "output:\n",
        "offers:\n  list:\n    welcome:\n      description: Everyone\n      \
         eligible: { anyone: spend_today >= 0 }\n      channels: [email]\n\
         output:\n",
    );
    let json = p.explain_json(PIPELINE, "1", "2026-11-01");
    let named_a = &json["segments"][2];
    assert_eq!(named_a["name"], "named_a");
    assert_eq!(named_a["member"], true);
    // The published run has no such audience, nor decisions: nothing to compare with.
    assert_eq!(named_a["published_member"], serde_json::Value::Null);
    assert_eq!(json["segments"][0]["published_member"], true);
    assert_eq!(json["offers"][0]["name"], "welcome");
    assert_eq!(
        json["offers"][0]["published_status"],
        serde_json::Value::Null
    );
    let text = p.ok(&["explain", PIPELINE, "--key", "1", "--date", "2026-11-01"]);
    assert!(
        text.contains("segment named_a — MEMBER, group treatment, not in the pipeline when the run was published")
            && text.contains("(not in the pipeline when the run was published)"),
        "{text}"
    );
}

#[test]
fn a_rerun_whose_later_date_is_blocked_says_what_was_published_and_how_to_finish() {
    let p = Project::segs();
    let text = p
        .read(PIPELINE)
        .replace("spend_today > 100", "spend_today > $big");
    p.write(
        PIPELINE,
        &format!(
            "params:\n  big: 100\n{text}checks:\n  - {{ audience: big_spenders, max_removed_percent: 40 }}\n"
        ),
    );
    backfill(&p, "2026-11-01", "2026-11-02");
    // A late purchase makes customer 3 a big spender on 11-01; rebuilt, 11-02 would remove
    // half of big_spenders, which the breaker blocks.
    let purchases = p.read("data/purchases.csv");
    p.write(
        "data/purchases.csv",
        &format!("{purchases}3,2026-11-01,500\n"),
    );
    // `--force` is for the date asked for, not for the dates rebuilt after it; its `--param`
    // is for them too, so the command to finish gives it.
    let err = p.fails(
        &[
            "run",
            PIPELINE,
            "--date",
            "2026-11-01",
            "--force",
            "--param",
            "big=100",
        ],
        3,
    );
    assert!(
        err.contains(
            "2026-11-01 was published, but rebuilding the runs after it stopped at 2026-11-02"
        ) && err.contains(&format!(
            "segflow backfill {PIPELINE} --from 2026-11-02 --to 2026-11-02 --rerun --param big=100` (with --force to publish despite failed checks)"
        )) && err.contains("blocked: nothing was published for 2026-11-02"),
        "{err}"
    );
    // --json prints the blocked date's report, as for a run blocked itself.
    let out = p.segflow(&["run", PIPELINE, "--date", "2026-11-01", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&report["run_date"], &report["status"]),
        (
            &serde_json::json!("2026-11-02"),
            &serde_json::json!("blocked")
        )
    );
}

/// A backfill filling a gap before a published date, stopped at a date it could not run:
/// the dates it had published left the later run following from the run before the gap,
/// and nothing rebuilt it, so the next day's changes and history built on the stale run.
#[test]
fn a_backfill_stopped_in_a_gap_leaves_the_later_runs_to_the_next_run_to_rebuild() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-01"]);
    p.ok(&["run", PIPELINE, "--date", "2026-11-05"]);
    let profile = fail_on(&p, "2026-11-03");
    let err = p.fails(
        &[
            "backfill",
            PIPELINE,
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-04",
        ],
        1,
    );
    assert!(
        err.contains("backfill stopped at 2026-11-03 (1 of 3 dates published")
            && err.contains("the runs published after 2026-11-03 do not follow from the dates this backfill published yet: the pipeline's next run or backfill rebuilds them first"),
        "{err}"
    );
    assert!(p.path("out/segs/rebuild.json").exists());
    // The next day's run rebuilds 11-05 from 11-02 first.
    p.edit(
        profile,
        "when $run_date = date '2026-11-03' then 0",
        "when false then 0",
    );
    let out = p.segflow(&["run", PIPELINE, "--date", "2026-11-06"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && err.contains("first finished the rebuild an earlier command left: rebuilt 2026-11-05 (their changes and history follow from 2026-11-02)"),
        "{err}"
    );
    assert!(!p.path("out/segs/rebuild.json").exists());
    let manifest = p.json("out/segs/runs/run_date=2026-11-05/manifest.json");
    assert_eq!(manifest["previous_run"], "2026-11-02");
    let in_order = Project::segs();
    for day in ["2026-11-01", "2026-11-02", "2026-11-05", "2026-11-06"] {
        in_order.ok(&["run", PIPELINE, "--date", day]);
    }
    assert_eq!(published_rows(&p), published_rows(&in_order));
}

#[test]
fn a_backfill_over_a_published_date_rebuilds_it_from_the_dates_before() {
    let p = Project::segs();
    p.ok(&["run", PIPELINE, "--date", "2026-11-04"]);
    backfill(&p, "2026-11-01", "2026-11-05");
    let manifest = p.json("out/segs/runs/run_date=2026-11-04/manifest.json");
    assert_eq!(manifest["previous_run"], "2026-11-03");
    // The same history as a backfill of the five days alone.
    assert_five_days_of_big_spenders(&p);
}

#[test]
fn a_project_whose_folder_name_a_url_would_misread_runs_day_after_day() {
    // `#` starts a URL's fragment and `%` an escape: the folder is a folder all the same.
    let p = Project::fixture_in("segs", "team#2 %41-");
    backfill(&p, "2026-11-01", "2026-11-05");
    assert_five_days_of_big_spenders(&p);
}
