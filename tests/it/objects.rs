//! The sample pipeline with its sources and its output on a real S3-compatible server: the same
//! rows as on a local disk, history across days, reruns, backfills and erasure, runs killed at
//! random moments, concurrent runs, and the errors of a store that cannot be used.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::s3::S3;
use crate::support::Project;

const PIPELINE: &str = "daily_segments";

/// The sample project reading `s3://data/sample/…` and publishing to `s3://out/`.
pub fn on_s3(s3: &S3) -> Project {
    let p = Project::sample();
    s3.create_bucket("data");
    s3.create_bucket("out");
    s3.upload(&p.path("data/sample"), "data", "sample");
    let file = "pipelines/daily_segments.yaml";
    let text = p
        .read(file)
        .replace("uri: data/sample/", "uri: s3://data/sample/");
    p.write(file, &text.replace("uri: out/", "uri: s3://out/"));
    p
}

fn segflow(p: &Project, s3: &S3, args: &[&str]) -> Command {
    let mut command = p.command(args);
    s3.configure(&mut command);
    command
}

fn ok(p: &Project, s3: &S3, args: &[&str]) -> String {
    let out = segflow(p, s3, args).output().unwrap();
    assert!(
        out.status.success(),
        "segflow {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(p: &Project, s3: &S3, args: &[&str], code: i32) -> String {
    let out = segflow(p, s3, args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "segflow {args:?}:\n{stderr}");
    stderr
}

/// Every table of the run published for `date` (or the latest), read by pyarrow through the
/// pointers a reader follows, as sorted JSON rows by table path.
const READ_RUN: &str = r#"
def read_json(path):
    with open_input(path) as f:
        return json.loads(f.read())
date = DATE
if date is None:
    run = read_json(ROOT + '/latest.json')['path']
else:
    run = POINTER(date)
manifest = read_json(ROOT + '/' + run + '/manifest.json')
tables = {}
for output in manifest['outputs']:
    rows = []
    for f in output['files']:
        with open_input(ROOT + '/' + run + '/' + f['path']) as handle:
            rows += [json.dumps(r, sort_keys=True, default=str) for r in pq.ParquetFile(handle).read().to_pylist()]
    tables[output['path']] = sorted(rows)
print(json.dumps({'run_date': manifest['run_date'], 'tables': tables}, sort_keys=True))
"#;

pub fn read_s3_run(s3: &S3, date: Option<&str>) -> serde_json::Value {
    let script = format!(
        "ROOT = 'out/daily_segments'\nDATE = {date}\n\
         open_input = fs.open_input_file\n\
         def POINTER(d):\n    return read_json(ROOT + '/runs/run_date=' + d + '/published.json')['path']\n{READ_RUN}",
        date = date.map_or("None".into(), |d| format!("'{d}'")),
    );
    serde_json::from_str(&s3.python(&script)).unwrap()
}

pub fn read_local_run(p: &Project, date: &str) -> serde_json::Value {
    let script = format!(
        "import json, pyarrow.parquet as pq\nROOT = {root:?}\nDATE = '{date}'\n\
         open_input = lambda path: open(path, 'rb')\n\
         def POINTER(d):\n    return 'runs/run_date=' + d\n{READ_RUN}",
        root = p.path("out/daily_segments").to_string_lossy(),
    );
    serde_json::from_str(&crate::support::python(&script)).unwrap()
}

#[test]
fn the_sample_on_s3_publishes_the_same_rows_as_on_a_local_disk() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    let out = ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    assert!(
        out.contains("s3://out/daily_segments/runs/run_date=2026-11-20/run="),
        "{out}"
    );
    let local = Project::sample();
    local.ok(&["run", PIPELINE, "--date", "2026-11-20"]);
    let remote = read_s3_run(&s3, None);
    let expected = read_local_run(&local, "2026-11-20");
    assert!(
        remote["tables"]["audiences/segment=champions"]
            .as_array()
            .unwrap()
            .len()
            > 10
    );
    assert_eq!(remote, expected);
    // A rerun replaces the date; the replaced run stays readable (output.keep_replaced: 1),
    // older attempts are deleted.
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    let attempts = s3.python(
        "r = s3.list_objects_v2(Bucket='out', Prefix='daily_segments/runs/run_date=2026-11-20/', Delimiter='/')\n\
         print(len(r.get('CommonPrefixes', [])))",
    );
    assert_eq!(attempts.trim(), "2");
    // A run a circuit breaker stops publishes nothing and keeps its report on the store.
    let latest = s3.python("print(s3.get_object(Bucket='out', Key='daily_segments/latest.json')['Body'].read().decode())");
    let args = [
        "run",
        PIPELINE,
        "--date",
        "2026-11-21",
        "--param",
        "high_value_threshold=100000.0",
    ];
    let err = fails(&p, &s3, &args, 3);
    assert!(
        err.contains("s3://out/daily_segments/blocked/run_date=2026-11-21"),
        "{err}"
    );
    let report = s3.python("print(s3.get_object(Bucket='out', Key='daily_segments/blocked/run_date=2026-11-21/report.json')['Body'].read().decode())");
    assert!(report.contains("\"status\": \"blocked\""), "{report}");
    let after = s3.python("print(s3.get_object(Bucket='out', Key='daily_segments/latest.json')['Body'].read().decode())");
    assert_eq!(after, latest);
    // validate and explain read the sources and the published run on the store too.
    ok(&p, &s3, &["validate", PIPELINE]);
    let explained = ok(
        &p,
        &s3,
        &["explain", PIPELINE, "--key", "42", "--date", "2026-11-20"],
    );
    assert!(explained.contains("published run: "), "{explained}");
}

#[test]
fn history_reruns_backfill_and_erasure_work_on_s3() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-19"]);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    // Rerunning the first date rebuilds the second, whose history follows from it.
    let out = segflow(&p, &s3, &["run", PIPELINE, "--date", "2026-11-19"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuilt the later runs 2026-11-20"));
    let out = ok(
        &p,
        &s3,
        &[
            "backfill",
            PIPELINE,
            "--from",
            "2026-11-20",
            "--to",
            "2026-11-22",
        ],
    );
    assert!(out.contains("2 published, 1 already published"), "{out}");
    let day2 = read_s3_run(&s3, Some("2026-11-20"));
    assert!(
        day2["tables"]["state/memberships"]
            .as_array()
            .unwrap()
            .len()
            > 100
    );

    // Erasure: a customer asks to be forgotten; every published run is rewritten without them.
    let erased = "7";
    let profile = day2["tables"]["models/customer_profile"]
        .as_array()
        .unwrap();
    assert!(
        profile
            .iter()
            .any(|r| r.as_str().unwrap().contains("\"customer_id\": 7,"))
    );
    // The date they ask on was run before: its rerun replaces a run that holds them.
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-23"]);
    request_erasure(&p, &s3, erased);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-23"]);
    for date in [
        "2026-11-19",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
        "2026-11-23",
    ] {
        let holding = tables_holding(&read_s3_run(&s3, Some(date)), 7);
        assert!(
            holding.is_empty(),
            "{date}: {holding:?} still hold customer 7"
        );
    }
    // Nor does any other object: the attempts the rewrites replaced (the rerun of 2026-11-19
    // kept the one it replaced readable) held the customer, and are gone, as is the run of
    // 2026-11-23 its rerun replaced.
    assert_eq!(objects_holding(&s3, erased), "0 []");
}

/// The tables of a run read by [`read_s3_run`] that have a row of customer `key`.
fn tables_holding(run: &serde_json::Value, key: i64) -> Vec<String> {
    let tables = run["tables"].as_object().unwrap();
    (tables.iter())
        .filter(|(_, rows)| {
            rows.as_array().unwrap().iter().any(|row| {
                let row: serde_json::Value = serde_json::from_str(row.as_str().unwrap()).unwrap();
                row["customer_id"] == key
            })
        })
        .map(|(table, _)| table.clone())
        .collect()
}

/// Adds `key` to the erasure requests on the store.
fn request_erasure(p: &Project, s3: &S3, key: &str) {
    let csv = p.read("data/sample/crm/erasure_requests.csv");
    let dir = tempfile::tempdir().unwrap();
    let requests = format!("{csv}{key},2026-11-23\n");
    std::fs::write(dir.path().join("erasure_requests.csv"), requests).unwrap();
    s3.upload(dir.path(), "data", "sample/crm");
}

/// How many Parquet objects of the output bucket have a row of customer `key`, and the first
/// three of them.
fn objects_holding(s3: &S3, key: &str) -> String {
    let found = s3.python(&format!(
        "found = []\n\
         for page in s3.get_paginator('list_objects_v2').paginate(Bucket='out'):\n\
         \x20   for o in page.get('Contents', []):\n\
         \x20       k = o['Key']\n\
         \x20       if not k.endswith('.parquet'): continue\n\
         \x20       t = pq.read_table('out/' + k, filesystem=fs)\n\
         \x20       if 'customer_id' in t.column_names and {key} in t.column('customer_id').to_pylist(): found.append(k)\n\
         print(len(found), json.dumps(found[:3]))",
    ));
    found.trim().to_string()
}

#[test]
fn an_erased_customer_leaves_the_runs_a_rerun_replaced_on_s3() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-19"]);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    // Customer 7 leaves the data (the CRM deletes them, the event log is purged); a rerun of the
    // first date rebuilds the next without them and keeps the runs it replaced readable.
    let dir = tempfile::tempdir().unwrap();
    crate::support::python(&format!(
        "import os, pyarrow.compute as pc, pyarrow.parquet as pq\n\
         src, dst = {src:?}, {dst:?}\n\
         for base, _, files in os.walk(src, followlinks=True):\n\
         \x20   for f in files:\n\
         \x20       path = os.path.join(base, f)\n\
         \x20       out = os.path.join(dst, os.path.relpath(path, src))\n\
         \x20       os.makedirs(os.path.dirname(out), exist_ok=True)\n\
         \x20       if f.endswith('.parquet'):\n\
         \x20           t = pq.read_table(path)\n\
         \x20           pq.write_table(t.filter(pc.not_equal(t['customer_id'], 7)), out)\n\
         \x20       else:\n\
         \x20           lines = open(path, encoding='utf-8').read().splitlines(keepends=True)\n\
         \x20           open(out, 'w', encoding='utf-8').writelines(l for i, l in enumerate(lines) if i == 0 or l.split(',')[0] != '7')\n",
        src = p.path("data/sample").to_string_lossy(),
        dst = dir.path().to_string_lossy(),
    ));
    s3.upload(dir.path(), "data", "sample");
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-19"]);
    for date in ["2026-11-19", "2026-11-20"] {
        let holding = tables_holding(&read_s3_run(&s3, Some(date)), 7);
        assert!(
            holding.is_empty(),
            "{date}: {holding:?} still hold customer 7"
        );
    }
    let replaced = objects_holding(&s3, "7");
    assert!(
        !replaced.starts_with("0 "),
        "the replaced runs hold customer 7: {replaced}"
    );
    // Then they ask to be forgotten: no published run holds them, the replaced ones do.
    request_erasure(&p, &s3, "7");
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-21"]);
    assert_eq!(objects_holding(&s3, "7"), "0 []");
}

#[test]
fn runs_killed_at_random_moments_leave_the_published_run_readable_and_unchanged() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    let before = read_s3_run(&s3, None);
    let started = Instant::now();
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    let duration = started.elapsed();
    for kill in 0..10u32 {
        let mut child = segflow(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"])
            .spawn()
            .unwrap();
        // Spread the kills over the whole run, publishing included.
        let fraction = (u64::from(kill) * 7919 % 100) as f64 / 100.0;
        std::thread::sleep(duration.mul_f64(0.1 + fraction * 1.1));
        let _ = child.kill();
        child.wait().unwrap();
        let now = read_s3_run(&s3, None);
        // Either the run was killed before it published, or it published whole: the same rows.
        assert_eq!(now["tables"], before["tables"], "after kill {kill}");
    }
    // The next run takes the dead runs' lock over, removes the scratch tables and spill
    // folders they left on this machine, and publishes.
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    assert_eq!(read_s3_run(&s3, None)["tables"], before["tables"]);
    assert_eq!(p.temporary_files(), Vec::<String>::new());
}

/// A step failing after the date's pointer moved (`latest.json` refused, say) said nothing of
/// the publish, as if nothing had been published; it now says the date was published and what
/// is left, and a rerun finishes it.
#[test]
fn a_failure_after_the_date_is_published_says_so_and_a_rerun_finishes() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-19"]);
    let latest = || {
        let text = s3.python(
            "print(s3.get_object(Bucket='out', Key='daily_segments/latest.json')['Body'].read().decode())",
        );
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["run_date"].clone()
    };
    let out = segflow(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"])
        .env("SEGFLOW_FAILPOINT", "after-publish")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("2026-11-20 was published (")
            && stderr.contains("runs/run_date=2026-11-20/published.json points at the new run), but updating latest.json failed")
            && stderr.contains("run the date again to finish"),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing was published"), "{stderr}");
    assert_eq!(latest(), "2026-11-19");
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    assert_eq!(latest(), "2026-11-20");
}

#[test]
fn of_two_concurrent_runs_of_one_date_exactly_one_publishes() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    let start = || {
        segflow(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let results = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let codes: Vec<Option<i32>> = results.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(1)),
        "{codes:?}"
    );
    let refused = results.iter().find(|o| o.status.code() == Some(1)).unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("is in progress"), "{stderr}");
}

#[test]
fn a_store_that_cannot_be_used_fails_in_one_line_and_publishes_nothing() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    // No such bucket for the output.
    let file = "pipelines/daily_segments.yaml";
    p.edit(file, "uri: s3://out/", "uri: s3://nowhere/");
    let err = fails(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"], 1);
    assert!(
        err.contains("s3://nowhere/") && err.contains("bucket does not exist"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // An endpoint nobody listens on: a clear error within the store timeout, not a hang.
    let mut command = segflow(
        &p,
        &s3,
        &[
            "run",
            PIPELINE,
            "--date",
            "2026-11-20",
            "--store-timeout",
            "2s",
        ],
    );
    command.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let started = Instant::now();
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the store"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    // An endpoint without its scheme is named, not a crash inside the client.
    let mut command = segflow(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    command.env("AWS_ENDPOINT_URL", "127.0.0.1:9");
    let out = command.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "the S3 endpoint from AWS_ENDPOINT_URL is not an http:// or https:// URL with a host"
        ),
        "{err}"
    );
    // A malformed URI is a pipeline error.
    p.edit(file, "uri: s3://nowhere/", "uri: s3:///no-bucket/");
    let err = fails(&p, &s3, &["validate", PIPELINE], 2);
    assert!(err.contains("names no bucket"), "{err}");
}

#[test]
fn wrong_credentials_are_refused_with_what_to_check() {
    let s3 = S3::start(true);
    let p = Project::sample();
    let file = "pipelines/daily_segments.yaml";
    p.edit(file, "uri: out/", "uri: s3://out/");
    let err = fails(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"], 1);
    assert!(
        err.contains("s3://out/") && err.contains("check the credentials"),
        "{err}"
    );
}

#[test]
fn an_output_prefix_with_a_space_is_published_under_that_prefix() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    let file = "pipelines/daily_segments.yaml";
    p.edit(file, "uri: s3://out/", "uri: \"s3://out/team audiences/\"");
    ok(&p, &s3, &["run", PIPELINE, "--date", "2026-11-20"]);
    let keys = s3.python(
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket='out'):\n\
         \x20   for o in page.get('Contents', []):\n\
         \x20       print(o['Key'])",
    );
    assert!(
        keys.lines()
            .any(|k| k == "team audiences/daily_segments/latest.json"),
        "{keys}"
    );
    assert!(!keys.contains('%'), "{keys}");
}
