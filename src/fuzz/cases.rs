//! The properties every mutated project must keep: compiling, validating and running never
//! panic and never hang, every error of a broken pipeline names a file and a line, a run ends
//! with exit code 0, 1, 2 or 3, and a failed run never changes what was published.
//!
//! `SEGFLOW_FUZZ_CASES` (default 150) sets how many cases run; `SEGFLOW_FUZZ_SECONDS` instead
//! runs cases until that many seconds passed (`benches/fuzz.sh`). `SEGFLOW_FUZZ_SEED` replays
//! one case.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::mutate::{mutate_bytes, mutate_yaml};
use crate::pipeline::Pipeline;

const PIPELINE: &str = "pipelines/daily_segments.yaml";
/// A case taking longer than this has hung.
const HANG: Duration = Duration::from_secs(60);

/// The project the cases start from: this repository, or `SEGFLOW_FUZZ_PROJECT`.
fn repo() -> PathBuf {
    std::env::var_os("SEGFLOW_FUZZ_PROJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The example project in a temporary folder (its data linked, not copied).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("pipelines"), &dir.path().join("pipelines"));
    copy_dir(&repo().join("sql"), &dir.path().join("sql"));
    std::os::unix::fs::symlink(repo().join("data"), dir.path().join("data")).unwrap();
    dir
}

/// Whether a message starts with `file:line:column: `.
fn names_a_line(message: &str) -> bool {
    let first = message.lines().next().unwrap_or_default();
    let parts: Vec<&str> = first.splitn(4, ':').collect();
    parts.len() == 4
        && parts[1].parse::<usize>().is_ok_and(|l| l > 0)
        && parts[2].parse::<usize>().is_ok_and(|c| c > 0)
}

/// What a reader of the published runs sees: every file under the output (the lock, staging,
/// blocked-run reports and the index of runs aside), with its size.
fn published_state(root: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "blocked" || name == "index.html" {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((path.strip_prefix(base).unwrap().display().to_string(), size));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("out"), root, &mut out);
    out.sort();
    out
}

/// Runs the damaged pipeline for a new date: exit 0 publishes; any other leaves what was
/// published as it was.
fn run_case(root: &Path, pipeline: &Pipeline) -> Result<u8, String> {
    let before = published_state(root);
    let options = crate::run::RunOptions {
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 21).expect("valid"),
        params: Vec::new(),
        engine: Default::default(),
        force: false,
        full_refresh: false,
        timeout: Some(Duration::from_secs(45)),
        progress: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let run = std::panic::AssertUnwindSafe(crate::run::run(pipeline, &options));
    let code = match runtime.block_on(run.catch_unwind()) {
        Err(_) => return Err("running panicked".into()),
        Ok(Ok(_)) => 0,
        Ok(Err(err)) => err.exit_code(),
    };
    if code != 0 && published_state(root) != before {
        return Err(format!(
            "a run that failed with exit {code} changed what was published"
        ));
    }
    Ok(code)
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    compiled: u64,
    invalid: u64,
    validated: u64,
    invalid_at_validate: u64,
    /// Runs by exit code.
    runs: [u64; 4],
}

/// Damages the project with one seeded mutation; returns what was changed.
fn damage(root: &Path, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let pipeline = root.join(PIPELINE);
    let original = std::fs::read(repo().join(PIPELINE)).unwrap();
    std::fs::write(&pipeline, &original).unwrap();
    copy_dir(&repo().join("sql"), &root.join("sql"));
    match rng.random_range(0..4) {
        0 | 1 => {
            let text = String::from_utf8(original).unwrap();
            std::fs::write(&pipeline, mutate_yaml(&text, &mut rng)).unwrap();
            "pipeline YAML, structure".into()
        }
        2 => {
            std::fs::write(&pipeline, mutate_bytes(&original, &mut rng)).unwrap();
            "pipeline YAML, bytes".into()
        }
        _ => {
            let files: Vec<PathBuf> = std::fs::read_dir(root.join("sql/daily_segments"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let file = &files[rng.random_range(0..files.len())];
            let bytes = std::fs::read(file).unwrap();
            std::fs::write(file, mutate_bytes(&bytes, &mut rng)).unwrap();
            format!("{}, bytes", file.display())
        }
    }
}

/// Compiles (and every few cases validates) the damaged project on another thread, so a hang
/// is seen as one.
fn check(root: &Path, seed: u64, validate: bool, run: bool, tally: &mut Tally) {
    let what = damage(root, seed);
    let file = root.join(PIPELINE);
    let project = root.to_owned();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| Pipeline::load(&file));
        let result = match outcome {
            Err(_) => Err("compiling panicked".to_string()),
            Ok(Err(err)) => Ok((false, Some(crate::error::chain(&err)), None)),
            Ok(Ok(pipeline)) if run => run_case(&project, &pipeline).map(|code| {
                let error = (code != 0).then(|| (code, String::new()));
                (true, None, error)
            }),
            Ok(Ok(pipeline)) if validate => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let run = std::panic::AssertUnwindSafe(crate::run::validate(&pipeline));
                match runtime.block_on(run.catch_unwind()) {
                    Err(_) => Err("validating panicked".to_string()),
                    Ok(Ok(())) => Ok((true, None, None)),
                    Ok(Err(err)) => Ok((
                        true,
                        None,
                        Some((err.exit_code(), crate::error::chain(&err))),
                    )),
                }
            }
            Ok(Ok(_)) => Ok((true, None, None)),
        };
        let _ = send.send(result);
    });
    let outcome = match receive.recv_timeout(HANG) {
        Ok(outcome) => outcome,
        Err(_) => panic!("seed {seed} ({what}): no answer within {HANG:?}"),
    };
    let (compiled, compile_error, validate_error) =
        outcome.unwrap_or_else(|problem| panic!("seed {seed} ({what}): {problem}"));
    tally.cases += 1;
    if let Some(message) = compile_error {
        tally.invalid += 1;
        assert!(
            names_a_line(&message),
            "seed {seed} ({what}): no line in: {message}"
        );
    }
    if compiled {
        tally.compiled += 1;
    }
    if validate && compiled {
        tally.validated += 1;
    }
    if run && compiled {
        let code = validate_error.as_ref().map_or(0, |(code, _)| *code);
        assert!(code <= 3, "seed {seed} ({what}): exit {code}");
        tally.runs[code as usize] += 1;
        return;
    }
    if let Some((code, message)) = validate_error {
        assert!(
            matches!(code, 1 | 2),
            "seed {seed} ({what}): exit {code}: {message}"
        );
        if code == 2 {
            tally.invalid_at_validate += 1;
            assert!(
                names_a_line(&message),
                "seed {seed} ({what}): no line in: {message}"
            );
        }
    }
}

fn publish_baseline(root: &Path) {
    std::fs::write(
        root.join(PIPELINE),
        std::fs::read(repo().join(PIPELINE)).unwrap(),
    )
    .unwrap();
    let pipeline = Pipeline::load(&root.join(PIPELINE)).unwrap();
    let options = crate::run::RunOptions {
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).expect("valid"),
        params: Vec::new(),
        engine: Default::default(),
        force: false,
        full_refresh: false,
        timeout: None,
        progress: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(crate::run::run(&pipeline, &options))
        .unwrap();
}

#[test]
fn damaged_pipelines_never_panic_or_hang_and_their_errors_name_a_line() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let root = project();
    let mut tally = Tally::default();
    if let Some(seed) = env("SEGFLOW_FUZZ_SEED") {
        check(root.path(), seed, true, false, &mut tally);
        check(root.path(), seed, false, true, &mut tally);
        return;
    }
    // A published run, which failed runs must leave as it is.
    publish_baseline(root.path());
    let budget = env("SEGFLOW_FUZZ_SECONDS").map(Duration::from_secs);
    let cases = env("SEGFLOW_FUZZ_CASES").unwrap_or(150);
    let started = Instant::now();
    let first = env("SEGFLOW_FUZZ_FIRST_SEED").unwrap_or(0);
    for seed in first.. {
        let done = match budget {
            Some(budget) => started.elapsed() >= budget,
            None => seed - first >= cases,
        };
        if done {
            break;
        }
        // Validating plans every query, running reads the data: a case in twenty validates,
        // a case in fifty runs.
        check(
            root.path(),
            seed,
            seed % 20 == 0,
            seed % 50 == 25,
            &mut tally,
        );
    }
    eprintln!(
        "fuzz: {} cases in {:.0?} ({} compiled, {} rejected with a line, {} validated, {} rejected by validate, runs by exit code 0/1/2/3: {:?}), 0 panics, 0 hangs, 0 failed runs that changed the published state",
        tally.cases,
        started.elapsed(),
        tally.compiled,
        tally.invalid,
        tally.validated,
        tally.invalid_at_validate,
        tally.runs,
    );
}
