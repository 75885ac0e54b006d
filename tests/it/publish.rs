//! Publishing: the run folder appears whole or not at all, and a failed or killed run leaves
//! the previously published run untouched.

use std::time::{Duration, Instant};

use crate::support::Project;

const PIPELINE: &str = "pipelines/mini.yaml";
const SEGS: &str = "pipelines/segs.yaml";

fn run(p: &Project, date: &str) -> String {
    p.ok(&["run", PIPELINE, "--date", date])
}

#[test]
fn a_run_publishes_its_folder_manifest_and_latest() {
    let p = Project::mini();
    let stdout = run(&p, "2026-11-20");
    assert!(stdout.contains("published mini for 2026-11-20"), "{stdout}");

    let latest = p.json("out/mini/latest.json");
    assert_eq!(latest["run_date"], "2026-11-20");
    assert_eq!(latest["manifest"], "runs/run_date=2026-11-20/manifest.json");

    let manifest = p.json("out/mini/runs/run_date=2026-11-20/manifest.json");
    assert_eq!(manifest["parameters"]["run_date"], "2026-11-20");
    assert_eq!(manifest["parameters"]["min_spend"], 10.0);
    let profile = &manifest["outputs"][0];
    assert_eq!(profile["path"], "models/profile");
    // Customer 4 signs up on 2026-11-21: not active yet.
    assert_eq!(profile["rows"], 3);
    assert_eq!(
        profile["files"][0]["path"],
        "models/profile/part-00000.parquet"
    );
    assert!(
        p.path("out/mini/runs/run_date=2026-11-20/models/profile/part-00000.parquet")
            .is_file()
    );
    let inputs: Vec<&str> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["customers", "orders"]);
    assert!(
        !p.path("out/mini/.staging")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}

#[test]
fn params_on_the_command_line_are_bound_typed() {
    let p = Project::mini();
    p.ok(&[
        "run",
        PIPELINE,
        "--date",
        "2026-11-20",
        "--param",
        "min_spend=100",
    ]);
    let manifest = p.json("out/mini/runs/run_date=2026-11-20/manifest.json");
    assert_eq!(manifest["parameters"]["min_spend"], 100.0);
}

#[test]
fn failure_in_the_last_step_keeps_the_previous_run() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let before = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");

    // A failed run for a new date publishes nothing and leaves latest.json alone.
    let err = p
        .command(&["run", PIPELINE, "--date", "2026-11-21"])
        .env("SEGFLOW_FAILPOINT", "before-publish")
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(!p.path("out/mini/runs/run_date=2026-11-21").exists());
    assert_eq!(p.json("out/mini/latest.json")["run_date"], "2026-11-20");

    // A failed rerun of the same date leaves the published folder byte for byte.
    let err = p
        .command(&["run", PIPELINE, "--date", "2026-11-20"])
        .env("SEGFLOW_FAILPOINT", "before-publish")
        .output()
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        before
    );
    assert!(
        !p.path("out/mini/.staging")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}

/// Starts a run of the mini project that waits just before publishing, and returns once it
/// has staged everything, manifest included (holding the pipeline's lock).
fn staged_and_waiting(mut command: std::process::Command, p: &Project) -> std::process::Child {
    let child = command
        .env("SEGFLOW_FAILPOINT", "before-publish=sleep")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let staged_manifest = || {
        std::fs::read_dir(p.path("out/mini/.staging"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("run/manifest.json").exists())
    };
    while !staged_manifest() {
        assert!(Instant::now() < deadline, "the run never staged its files");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `segflow report` rewrites the pages of published runs: while a run holds the pipeline's lock
/// (about to publish the date whose page it would rewrite) it waits.
#[test]
fn a_report_waits_for_the_run_in_progress() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let mut child = staged_and_waiting(p.command(&["run", PIPELINE, "--date", "2026-11-20"]), &p);
    let report = p
        .command(&["report", PIPELINE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut report = report;
    let waiting = report.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    let out = report.wait_with_output().unwrap();
    assert!(waiting, "the report did not wait for the run: {out:?}");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("report.html"));
}

#[test]
fn killed_run_leaves_the_previous_run_and_the_next_run_recovers() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let before = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");

    // Wait until the run has staged everything, manifest included, then kill it.
    let mut child = staged_and_waiting(p.command(&["run", PIPELINE, "--date", "2026-11-20"]), &p);
    // While it holds the lock, a second run of the same date is refused.
    let concurrent = p.segflow(&["run", PIPELINE, "--date", "2026-11-20"]);
    assert_eq!(concurrent.status.code(), Some(1));
    // It names the run that holds the lock by the id of its manifest.
    let staging = p.path("out/mini/.staging").read_dir().unwrap().flatten();
    let staged = staging
        .map(|e| e.path().join("run/manifest.json"))
        .find(|m| m.exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(staged.unwrap()).unwrap()).unwrap();
    let run_id = manifest["run_id"].as_str().unwrap();
    let stderr = String::from_utf8_lossy(&concurrent.stderr);
    assert!(
        stderr.contains(&format!("in progress (run {run_id},")),
        "{stderr}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        before
    );
    // Its folder to spill to, and the lock file that told it was in use.
    let left = p.temporary_files();
    assert!(
        left.iter().any(|f| f.starts_with("segflow-spill-")) && left.len() == 2,
        "{left:?}"
    );

    // The next run takes over the dead run's lock, cleans its staging and its temporary
    // folder, and publishes.
    run(&p, "2026-11-20");
    assert_ne!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        before
    );
    assert_eq!(p.path("out/mini/.staging").read_dir().unwrap().count(), 0);
    assert_eq!(p.temporary_files(), Vec::<String>::new());
}

#[test]
fn rerun_replaces_the_date_with_the_same_rows() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let file = "out/mini/runs/run_date=2026-11-20/models/profile/part-00000.parquet";
    let first = std::fs::read(p.path(file)).unwrap();
    let first_id = p.json("out/mini/latest.json")["run_id"].clone();
    run(&p, "2026-11-20");
    assert_ne!(p.json("out/mini/latest.json")["run_id"], first_id);
    assert_eq!(
        std::fs::read(p.path(file)).unwrap(),
        first,
        "same inputs, same bytes"
    );
}

#[test]
fn an_older_date_does_not_move_latest() {
    let p = Project::mini();
    run(&p, "2026-11-21");
    let out = run(&p, "2026-11-20");
    assert!(out.contains("latest.json unchanged"), "{out}");
    assert_eq!(p.json("out/mini/latest.json")["run_date"], "2026-11-21");
    let manifest = p.json("out/mini/runs/run_date=2026-11-21/manifest.json");
    assert_eq!(manifest["outputs"][0]["rows"], 4);
}

/// The log lines of a successful run with `--log-format json`, each parsed.
fn json_log_lines(p: &Project, pipeline: &str, date: &str) -> Vec<serde_json::Value> {
    let out = p
        .command(&["--log-format", "json", "run", pipeline, "--date", date])
        .env("SEGFLOW_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn json_logs_carry_the_pipeline_run_date_and_steps() {
    let p = Project::mini();
    let lines = json_log_lines(&p, PIPELINE, "2026-11-20");
    let model = lines
        .iter()
        .find(|l| l["message"] == "model done" && l["model"] == "profile")
        .expect("a log line per model");
    // The spans a line is in, outermost first: the pipeline, then the run's date.
    assert_eq!(model["spans"][0]["name"], "pipeline");
    assert_eq!(model["spans"][0]["pipeline"], "mini");
    assert_eq!(model["spans"][1]["name"], "run");
    assert_eq!(model["span"]["run_date"], "2026-11-20");
    assert_eq!(model["rows"], 3);
    assert!(lines.iter().any(|l| l["message"] == "run published"));
    let started = (lines.iter().find(|l| l["message"] == "run started")).unwrap();
    assert_eq!(started["previous_run"], serde_json::Value::Null);

    // A rerun's rebuild logs each date under its own date, and says what it rebuilt in JSON.
    let segs = Project::segs();
    segs.ok(&[
        "backfill",
        SEGS,
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
    ]);
    let lines = json_log_lines(&segs, SEGS, "2026-11-01");
    let published: Vec<&serde_json::Value> = (lines.iter())
        .filter(|l| l["message"] == "run published")
        .map(|l| &l["span"]["run_date"])
        .collect();
    assert_eq!(published, ["2026-11-01", "2026-11-02"]);
    assert!(
        lines.iter().any(|l| l["rebuilt"] == "2026-11-02"),
        "{lines:?}"
    );
    // So is a wrong argument.
    let out = p
        .command(&[
            "--log-format",
            "json",
            "run",
            PIPELINE,
            "--date",
            "2026-13-01",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let line: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(line["exit_code"], 2);

    // The error that ends a failed run is a JSON line too.
    let out = p
        .command(&["--log-format", "json", "run", "pipelines/nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(
        (&last["level"], &last["exit_code"]),
        (&serde_json::json!("ERROR"), &serde_json::json!(2))
    );
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("pipelines/nope.yaml"),
        "{last}"
    );
}

#[test]
fn a_temporary_folder_that_cannot_be_written_fails_the_run_and_says_so() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let before = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");
    let out = p
        .command(&["run", PIPELINE, "--date", "2026-11-20"])
        .env("TMPDIR", p.path("no/such/folder"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("set TMPDIR to a writable folder"),
        "{stderr}"
    );
    assert!(stderr.contains("no/such/folder"), "{stderr}");
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        before
    );
}

#[test]
fn a_timeout_spent_waiting_for_the_lock_says_another_run_held_it() {
    let p = Project::mini();
    let mut holder = staged_and_waiting(p.command(&["run", PIPELINE, "--date", "2026-11-20"]), &p);
    let err = p.fails(
        &["run", PIPELINE, "--date", "2026-11-21", "--timeout", "2s"],
        1,
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        err.contains("stopped during waiting for the pipeline's lock")
            && err.contains("another run of the pipeline held its lock all that time"),
        "{err}"
    );
}

#[test]
fn a_run_stopped_by_sigterm_publishes_nothing_and_leaves_nothing_behind() {
    let p = Project::mini();
    run(&p, "2026-11-20");
    let before = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");
    let mut command = p.command(&["run", PIPELINE, "--date", "2026-11-20"]);
    command.stderr(std::process::Stdio::piped());
    let child = staged_and_waiting(command, &p);
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGTERM: nothing more was published"),
        "{stderr}"
    );
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        before
    );
    // Its staging, its lock and its spill folder are gone at once, not at the next run.
    assert_eq!(p.path("out/mini/.staging").read_dir().unwrap().count(), 0);
    assert!(!p.path("out/mini/.lock").exists());
    assert_eq!(p.temporary_files(), Vec::<String>::new());
}
