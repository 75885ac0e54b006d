//! The sample pipeline on a real Apache DataFusion Ballista cluster: a scheduler and two
//! executors started from segflow's binary (`segflow scheduler`, `segflow executor`) as separate
//! processes on 127.0.0.1, with the sources and the output on the S3-compatible test server.
//! The cluster publishes the rows a run in process publishes; a cluster that is down, or that
//! goes away in the middle of a run, fails the run in one line and publishes nothing.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::objects::{on_s3, read_local_run, read_s3_run};
use crate::s3::S3;
use crate::support::Project;

const PIPELINE: &str = "daily_segments";

/// A scheduler and its executors, each a `segflow` process, stopped when dropped.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    port: u16,
    _work: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn process(s3: &S3, args: &[String], log: &Path) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_segflow"));
    command
        .args(args)
        .env("SEGFLOW_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    s3.configure(&mut command);
    command.spawn().unwrap()
}

/// Waits until something listens on `port`.
fn listening(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Cluster {
    fn start(s3: &S3, executors: usize) -> Self {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let s = |text: &str| text.to_string();
        let scheduler = process(
            s3,
            &[
                s("scheduler"),
                s("--bind-host"),
                s("127.0.0.1"),
                s("--external-host"),
                s("127.0.0.1"),
                s("--port"),
                port.to_string(),
                s("--executor-timeout"),
                s("5s"),
            ],
            &work.path().join("scheduler.log"),
        );
        listening(port, "segflow scheduler");
        let executors = (0..executors)
            .map(|i| {
                let (flight, grpc) = (free_port(), free_port());
                let child = process(
                    s3,
                    &[
                        s("executor"),
                        s("--scheduler"),
                        format!("127.0.0.1:{port}"),
                        s("--bind-host"),
                        s("127.0.0.1"),
                        s("--external-host"),
                        s("127.0.0.1"),
                        s("--port"),
                        flight.to_string(),
                        s("--grpc-port"),
                        grpc.to_string(),
                        s("--work-dir"),
                        work.path()
                            .join(format!("executor-{i}"))
                            .display()
                            .to_string(),
                        s("--concurrent-tasks"),
                        s("2"),
                        s("--heartbeat"),
                        s("1s"),
                    ],
                    &work.path().join(format!("executor-{i}.log")),
                );
                listening(flight, "segflow executor");
                child
            })
            .collect();
        // The executors register as they start; give the last one's registration a moment.
        std::thread::sleep(Duration::from_secs(1));
        Self {
            scheduler,
            executors,
            port,
            _work: work,
        }
    }

    /// The last lines each process logged, for a failure message.
    fn logs(&self) -> String {
        let mut logs = String::new();
        let mut names: Vec<_> = std::fs::read_dir(self._work.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        names.sort();
        for path in names {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            logs.push_str(&format!("--- {}\n{tail}\n", path.display()));
        }
        logs
    }

    fn engine(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn segflow(p: &Project, s3: &S3, args: &[&str]) -> Command {
    let mut command = p.command(args);
    s3.configure(&mut command);
    command
}

fn ok(command: &mut Command, cluster: &Cluster) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn latest(s3: &S3) -> String {
    s3.python(
        "try:\n    print(s3.get_object(Bucket='out', Key='daily_segments/latest.json')['Body'].read().decode())\n\
         except s3.exceptions.NoSuchKey:\n    print('none')",
    )
}

#[test]
fn the_sample_on_a_ballista_cluster_publishes_the_rows_of_a_local_run() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    let cluster = Cluster::start(&s3, 2);
    let engine = cluster.engine();
    let local = Project::sample();
    // Two days: the second continues the first's feature state and compares memberships.
    for date in ["2026-11-19", "2026-11-20"] {
        let args = ["run", PIPELINE, "--date", date, "--engine", &engine];
        // Scans split every file into ranges, as they split tables of millions of rows: the
        // stages run several tasks each, as they do at size.
        let mut run = segflow(&p, &s3, &args);
        let out = ok(
            run.env("DATAFUSION_OPTIMIZER_REPARTITION_FILE_MIN_SIZE", "1"),
            &cluster,
        );
        assert!(
            out.contains("s3://out/daily_segments/runs/run_date="),
            "{out}"
        );
        local.ok(&["run", PIPELINE, "--date", date]);
        let on_cluster = read_s3_run(&s3, Some(date));
        let in_process = read_local_run(&local, date);
        let tables = on_cluster["tables"].as_object().unwrap();
        assert!(tables.len() > 20, "{:?}", tables.keys());
        assert!(
            tables["audiences/segment=champions"]
                .as_array()
                .unwrap()
                .len()
                > 10,
            "{on_cluster}"
        );
        for (table, rows) in tables {
            assert_eq!(
                rows, &in_process["tables"][table],
                "{table} differs between the cluster and the local run of {date}"
            );
        }
        assert_eq!(on_cluster, in_process);
    }
    // The executors' scratch tables are gone from the published run; the manifest says the
    // identifier counts were not counted here rather than zero.
    let listed = s3.python(
        "r = s3.list_objects_v2(Bucket='out', Prefix='daily_segments/runs/')\n\
         print(sum('.scratch' in o['Key'] for o in r.get('Contents', [])))",
    );
    assert_eq!(listed.trim(), "0");
    let manifest = s3.python(
        "p = json.loads(s3.get_object(Bucket='out', Key='daily_segments/latest.json')['Body'].read())['manifest']\n\
         m = json.loads(s3.get_object(Bucket='out', Key='daily_segments/' + p)['Body'].read())\n\
         print(json.dumps(m['invalid_identifiers']))",
    );
    assert_eq!(manifest.trim(), "null");
    // explain runs its queries on the cluster too, and SEGFLOW_ENGINE names it.
    let mut explain = segflow(
        &p,
        &s3,
        &["explain", PIPELINE, "--key", "42", "--date", "2026-11-20"],
    );
    let out = explain.env("SEGFLOW_ENGINE", &engine).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("published run: "));
}

#[test]
fn a_cluster_that_is_down_or_goes_away_fails_the_run_and_publishes_nothing() {
    let s3 = S3::start(false);
    let p = on_s3(&s3);
    // No scheduler at all: one line naming it and what to do, at once.
    let engine = format!("ballista://127.0.0.1:{}", free_port());
    let start = Instant::now();
    let out = segflow(
        &p,
        &s3,
        &["run", PIPELINE, "--date", "2026-11-20", "--engine", &engine],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("--engine {engine}")), "{stderr}");
    assert!(stderr.contains("segflow scheduler"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(latest(&s3).trim(), "none");
    // backfill takes --engine, and explain SEGFLOW_ENGINE, the same way.
    let backfill = [
        "backfill",
        PIPELINE,
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-20",
    ];
    let out = segflow(&p, &s3, &[&backfill[..], &["--engine", &engine]].concat())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("segflow scheduler"), "{stderr}");
    let out = segflow(
        &p,
        &s3,
        &["explain", PIPELINE, "--key", "42", "--date", "2026-11-20"],
    )
    .env("SEGFLOW_ENGINE", &engine)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("segflow scheduler"), "{stderr}");
    assert_eq!(latest(&s3).trim(), "none");

    // A cluster that goes away while the run is in progress.
    let mut cluster = Cluster::start(&s3, 2);
    let engine = cluster.engine();
    let mut run = segflow(
        &p,
        &s3,
        &["run", PIPELINE, "--date", "2026-11-20", "--engine", &engine],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    cluster.stop();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run did not end within 2 minutes of its cluster going away"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("segflow: error:"), "{stderr}");
    assert_eq!(latest(&s3).trim(), "none");
}
