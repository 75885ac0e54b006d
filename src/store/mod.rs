//! Where runs are published, and how a run becomes visible all at once.
//!
//! A run goes through these stages, and a reader can only ever see the result of the last:
//!
//! ```text
//!  lock ──► stage ──────────────────────► verify ──► publish ──────────────► point
//!  .locks/  .staging/<run_id>/run/…       row counts  runs/run_date=D ⇄ staged  latest.json
//!  run_date=D.lock  Parquet + manifest.json last      (one atomic rename/swap)
//! ```
//!
//! Everything of a run is written under `.staging/<run_id>/` first; `manifest.json` is written
//! last. Publishing is a single `rename` of the staged folder onto `runs/run_date=D` — or, when
//! that date was published before, an atomic exchange of the two folders (Linux
//! `renameat2(RENAME_EXCHANGE)`), so a reader sees the old run or the new one, never a mix and
//! never nothing. A run killed before that rename leaves only a stale staging folder, which the
//! next run removes. `latest.json` is replaced by rename too.

mod lock;
mod output;
mod parquet;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub(crate) use lock::RunLock;
pub use output::{Output, OutputKind};
pub(crate) use output::{RunDirs, Written};
pub(crate) use parquet::write_stream;
pub use parquet::{ColumnSchema, WrittenFile};

use crate::location::Uri;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: writing Parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "another run of this pipeline for {run_date} is in progress (run {run_id}, pid {pid}, started {started_at}); wait for it, or delete {lock} if that process is gone"
    )]
    Locked {
        run_date: NaiveDate,
        run_id: String,
        pid: u32,
        started_at: String,
        lock: PathBuf,
    },
    #[error("output {0}: publishing to object stores is not supported yet; use a local folder")]
    RemoteOutput(String),
    #[error("{0}")]
    Injected(String),
    /// The query feeding an output failed while it streamed.
    #[error("{}", .0.strip_backtrace())]
    Query(#[source] datafusion::common::DataFusionError),
}

impl StoreError {
    pub fn io(
        path: &Path,
        action: &'static str,
    ) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
        let path = path.to_owned();
        move |source| StoreError::Io {
            path,
            action,
            source,
        }
    }
}

/// `latest.json`: the newest published run date of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latest {
    pub pipeline: String,
    pub run_date: NaiveDate,
    pub run_id: String,
    /// The run folder, relative to the pipeline's folder.
    pub path: String,
    pub manifest: String,
    pub published_at: String,
}

/// The published folder of one pipeline: `<output>/<pipeline>/`.
#[derive(Debug, Clone)]
pub struct PipelineStore {
    root: PathBuf,
    pipeline: String,
}

impl PipelineStore {
    pub fn new(output: &Uri, pipeline: &str) -> Result<Self, StoreError> {
        match output {
            Uri::Local(path) => Ok(Self {
                root: std::path::absolute(path)
                    .unwrap_or_else(|_| path.clone())
                    .join(pipeline),
                pipeline: pipeline.to_string(),
            }),
            Uri::Url(url) => Err(StoreError::RemoteOutput(url.to_string())),
        }
    }

    pub fn run_dir(&self, date: NaiveDate) -> PathBuf {
        self.root.join("runs").join(format!("run_date={date}"))
    }

    fn manifest_path(&self, date: NaiveDate) -> PathBuf {
        self.run_dir(date).join("manifest.json")
    }

    /// Dates with a published run (a run folder holding a manifest), oldest first.
    pub fn published_dates(&self) -> Result<Vec<NaiveDate>, StoreError> {
        let runs = self.root.join("runs");
        let entries = match std::fs::read_dir(&runs) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(StoreError::io(&runs, "listing published runs")(err)),
        };
        let mut dates: Vec<NaiveDate> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                NaiveDate::parse_from_str(name.strip_prefix("run_date=")?, "%Y-%m-%d").ok()
            })
            .filter(|date| self.manifest_path(*date).is_file())
            .collect();
        dates.sort();
        Ok(dates)
    }

    /// The latest published run strictly before `date`: what a run of `date` compares with.
    pub fn previous_run(&self, date: NaiveDate) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self
            .published_dates()?
            .into_iter()
            .rev()
            .find(|d| *d < date))
    }

    pub fn read_manifest<T: serde::de::DeserializeOwned>(
        &self,
        date: NaiveDate,
    ) -> Result<T, StoreError> {
        read_json(&self.manifest_path(date))
    }

    /// Takes the lock for `date` and prepares an empty staging folder for the run.
    pub fn begin(&self, date: NaiveDate, run_id: &str) -> Result<StagedRun, StoreError> {
        let lock = RunLock::acquire(&self.root.join(".locks"), date, run_id)?;
        self.remove_stale_staging();
        let dir = self.root.join(".staging").join(run_id);
        let run_dir = dir.join("run");
        let work_dir = dir.join("work");
        for d in [&run_dir, &work_dir] {
            std::fs::create_dir_all(d).map_err(StoreError::io(d, "creating the staging folder"))?;
        }
        Ok(StagedRun {
            store: self.clone(),
            date,
            run_id: run_id.to_string(),
            dir,
            run_dir,
            work_dir,
            _lock: lock,
        })
    }

    /// Staging folders of runs that died; no lock holder uses them any more.
    fn remove_stale_staging(&self) {
        let staging = self.root.join(".staging");
        let Ok(entries) = std::fs::read_dir(&staging) else {
            return;
        };
        let live = lock::live_run_ids(&self.root.join(".locks"));
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    fn write_latest(&self, latest: &Latest) -> Result<(), StoreError> {
        write_json_atomic(&self.root.join("latest.json"), latest)
    }
}

/// A run being written: files go under `run_dir` (published) and `work_dir` (scratch).
#[derive(Debug)]
pub struct StagedRun {
    store: PipelineStore,
    date: NaiveDate,
    run_id: String,
    dir: PathBuf,
    run_dir: PathBuf,
    work_dir: PathBuf,
    _lock: RunLock,
}

impl StagedRun {
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// Keeps the report and failing-row samples of a blocked run in `blocked/run_date=D/` (the
    /// run itself is not published) for inspection, replacing an older blocked report.
    pub fn keep_blocked<M: Serialize>(&self, report: &M) -> Result<PathBuf, StoreError> {
        let keep = self.dir.join("blocked");
        std::fs::create_dir_all(&keep).map_err(StoreError::io(&keep, "creating folder"))?;
        let checks = self.run_dir.join("checks");
        if checks.is_dir() {
            std::fs::rename(&checks, keep.join("checks"))
                .map_err(StoreError::io(&checks, "keeping check samples"))?;
        }
        write_json_atomic(&keep.join("report.json"), report)?;
        let target = self
            .store
            .root
            .join("blocked")
            .join(format!("run_date={}", self.date));
        let parent = target.parent().expect("has a parent");
        std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating blocked/"))?;
        if target.exists() {
            std::fs::remove_dir_all(&target)
                .map_err(StoreError::io(&target, "replacing the blocked report"))?;
        }
        std::fs::rename(&keep, &target)
            .map_err(StoreError::io(&target, "keeping the blocked report"))?;
        Ok(target)
    }

    /// Writes `manifest.json` (last of the run's files) and publishes the run atomically.
    /// Returns true when `latest.json` now points at this run.
    pub fn publish<M: Serialize>(self, manifest: &M) -> Result<bool, StoreError> {
        write_json_atomic(&self.run_dir.join("manifest.json"), manifest)?;
        failpoint("before-publish")?;
        let target = self.store.run_dir(self.date);
        let parent = target.parent().expect("run folder has a parent");
        std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating runs/"))?;
        if target.exists() {
            exchange(&self.run_dir, &target)?;
        } else {
            std::fs::rename(&self.run_dir, &target)
                .map_err(StoreError::io(&target, "publishing the run folder"))?;
        }
        let newest = self.store.published_dates()?.last().copied();
        let is_latest = newest == Some(self.date);
        if is_latest {
            self.store.write_latest(&Latest {
                pipeline: self.store.pipeline.clone(),
                run_date: self.date,
                run_id: self.run_id.clone(),
                path: format!("runs/run_date={}", self.date),
                manifest: format!("runs/run_date={}/manifest.json", self.date),
                published_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })?;
        }
        Ok(is_latest)
    }
}

impl Drop for StagedRun {
    fn drop(&mut self) {
        // After a publish this holds the replaced run (or nothing); after a failure, the
        // partial run. Either way no reader looks here.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Atomically swaps two folders, so `target` is always a complete run.
fn exchange(staged: &Path, target: &Path) -> Result<(), StoreError> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let a = CString::new(staged.as_os_str().as_bytes()).expect("path without NUL");
        let b = CString::new(target.as_os_str().as_bytes()).expect("path without NUL");
        // SAFETY: both arguments are valid NUL-terminated paths; AT_FDCWD is ignored for
        // absolute paths.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // Filesystems without RENAME_EXCHANGE fall through to the two-step swap.
        if err.raw_os_error() != Some(libc::EINVAL) && err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(StoreError::io(target, "swapping in the new run folder")(
                err,
            ));
        }
    }
    // Two renames: for a moment the date has no folder, but never a partial one.
    let old = staged.with_extension("replaced");
    std::fs::rename(target, &old).map_err(StoreError::io(target, "moving the old run aside"))?;
    std::fs::rename(staged, target).map_err(StoreError::io(target, "publishing the run folder"))?;
    std::fs::rename(&old, staged).map_err(StoreError::io(staged, "retiring the old run"))
}

/// Test hook: `SEGFLOW_FAILPOINT=before-publish` fails a run just before its atomic publish
/// (all files and the manifest written); `before-publish=sleep` waits there so a test can
/// kill the process.
pub fn failpoint(name: &str) -> Result<(), StoreError> {
    let Ok(setting) = std::env::var("SEGFLOW_FAILPOINT") else {
        return Ok(());
    };
    match setting.split_once('=') {
        Some((point, "sleep")) if point == name => {
            std::thread::sleep(std::time::Duration::from_secs(300));
            Ok(())
        }
        None if setting == name => Err(StoreError::Injected(format!(
            "failure injected at {name} (SEGFLOW_FAILPOINT)"
        ))),
        _ => Ok(()),
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let text = std::fs::read_to_string(path).map_err(StoreError::io(path, "reading"))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes JSON to a temporary file beside `path` and renames it into place.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut text = serde_json::to_string_pretty(value).expect("manifests serialize");
    text.push('\n');
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating folder"))?;
    }
    std::fs::write(&tmp, text).map_err(StoreError::io(&tmp, "writing"))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io(path, "replacing"))
}
