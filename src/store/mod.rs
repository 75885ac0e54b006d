//! Where runs are published, and how a run becomes visible all at once — on a local disk, or
//! on an object store that has no rename.
//!
//! A run holds the pipeline's lock for everything it publishes, then goes through these
//! stages; a reader can only ever see the result of the last:
//!
//! ```text
//!  lock ─────────► stage ───────────────────────► publish ────────────────► point
//!  one run of the   every file of the run, then   make the run the date's   latest.json
//!  pipeline at a    manifest.json, under a        published run in one      (when the date
//!  time (a second   folder of its own             atomic step               is the newest)
//!  run of the same
//!  date is refused; others wait)
//! ```
//!
//! **Local folder.** The run is staged under `.staging/<run_id>/run/`; publishing is one
//! `rename` onto `runs/run_date=D` — or, when the date was published before, an atomic exchange
//! of the two folders (`renameat2(RENAME_EXCHANGE)`). `latest.json` is replaced by rename.
//! A run killed before the rename leaves only a staging folder, which the next run removes.
//! The lock is a file created exclusively; a lock whose process is gone is taken over.
//!
//! **Object store** (`s3://`, `gs://`, `az://`). Each attempt is written under its own prefix,
//! `runs/run_date=D/run=<run_id>/`, manifest last. Publishing is one conditional write of the
//! date's pointer `runs/run_date=D/published.json` (`If-Match` the version read when the run
//! started, `If-None-Match: *` for a new date), then of `latest.json` the same way. Readers
//! follow `latest.json` or `published.json` to the run's folder and its `manifest.json`, so
//! they never see a partial or mixed run; files of other attempts of that date are never
//! named. After publishing, attempts of the date other than the published one and the last
//! `output.keep_replaced` (default 1) it replaced are deleted: a reader who followed an older
//! pointer can finish reading, and failed attempts do not pile up. The lock is an
//! object created with `If-None-Match: *`, renewed with `If-Match` while the run lasts (a
//! lease); a lock whose lease ran out, or whose process on this host is gone, is taken over.
//! On a local disk the lock is a file under `flock`, free as soon as its holder ends.

mod encode;
mod local;
mod lock;
mod output;
mod parquet;
mod remote;
mod space;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub(crate) use lock::{PipelineLock, Purpose};
pub use output::{Output, OutputKind};
pub(crate) use output::{RunDirs, Written};
pub use parquet::{ColumnSchema, WrittenFile};
pub(crate) use parquet::{
    Part, ReadBy, TableLayout, portable, rows_written, write_stream, write_stream_by_day,
    write_stream_split,
};
pub(crate) use space::Space;

use crate::objects::Folder;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{uri}: {action}: {problem}")]
    Object {
        action: String,
        uri: String,
        /// What went wrong and what to check.
        problem: String,
    },
    #[error("{path}: writing Parquet: {message}")]
    Parquet { path: String, message: String },
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("{0}")]
    Locked(Box<InProgress>),
    #[error(
        "{lock}: another run took this pipeline's lock over while this run was publishing (its lease ran out); nothing more was published — rerun the date"
    )]
    LockLost { lock: String },
    /// The date was published (its pointer moved) but a step after it failed.
    #[error(
        "{date} was published ({pointer} points at the new run), but {step} failed: {source}; run the date again to finish"
    )]
    AfterPublish {
        date: NaiveDate,
        pointer: String,
        step: &'static str,
        source: Box<StoreError>,
    },
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

    /// An object store's error, said with what to check.
    pub(crate) fn object(action: &str, at: &Folder, err: object_store::Error) -> Self {
        StoreError::Object {
            action: action.to_string(),
            uri: at.to_string(),
            problem: remote::advice(&err),
        }
    }
}

/// The run that holds a pipeline's lock, when another run of the same date wants it.
#[derive(Debug)]
pub struct InProgress {
    pub run_date: NaiveDate,
    pub run_id: String,
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    pub lock: String,
}

impl std::fmt::Display for InProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "another run of this pipeline for {} is in progress (run {}, pid {} on {}, started {}, lock {}); wait for it to end: a lock whose process is gone is taken over by the next run (on an object store once its lease of a minute has run out)",
            self.run_date, self.run_id, self.pid, self.host, self.started_at, self.lock
        )
    }
}

/// Where a run's scratch tables go: the tables it writes for its own later steps and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scratch {
    /// On this machine, where DataFusion in this process reads them.
    Here,
    /// Beside the run's files, where a cluster's executors read and write them too: on an
    /// object store, inside the run's own prefix (deleted before it is published).
    Shared,
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
    root: Folder,
    pipeline: String,
    /// Replaced runs of a date an object store keeps readable.
    keep_replaced: usize,
}

impl PipelineStore {
    /// The pipeline's folder under the output folder.
    pub(crate) fn new(output: Folder, pipeline: &str, keep_replaced: u32) -> Self {
        Self {
            root: output.join(pipeline),
            pipeline: pipeline.to_string(),
            keep_replaced: keep_replaced as usize,
        }
    }

    /// Takes the pipeline's lock for a run of `date` (or, for `Purpose::Report`, to rewrite
    /// the pages of published runs): refused at once when a live run of the same date holds
    /// it, waited for otherwise.
    pub(crate) async fn lock(
        &self,
        date: NaiveDate,
        run_id: &str,
        purpose: Purpose,
    ) -> Result<PipelineLock, StoreError> {
        let lock = PipelineLock::acquire(&self.root, date, run_id, purpose).await?;
        if let Some(root) = self.root.local_path() {
            // With the lock held no other run of this pipeline is live: any staging left is
            // from a run that died.
            local::remove_staging(root);
        }
        Ok(lock)
    }

    /// Dates with a published run, oldest first.
    pub(crate) async fn published_dates(&self) -> Result<Vec<NaiveDate>, StoreError> {
        match self.root.local_path() {
            Some(root) => local::published_dates(root),
            None => remote::published_dates(&self.root).await,
        }
    }

    /// The latest published run strictly before `date`: what a run of `date` compares with.
    pub(crate) async fn previous_run(
        &self,
        date: NaiveDate,
    ) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self
            .published_dates()
            .await?
            .into_iter()
            .rev()
            .find(|d| *d < date))
    }

    /// The folder of the run published for `date`, if any.
    pub(crate) async fn published_run(
        &self,
        date: NaiveDate,
    ) -> Result<Option<Folder>, StoreError> {
        match self.root.local_path() {
            Some(root) => Ok(local::published_run(root, date).map(|p| Folder::local(&p))),
            None => remote::published_run(&self.root, date).await,
        }
    }

    pub(crate) async fn read_manifest<T: serde::de::DeserializeOwned>(
        &self,
        date: NaiveDate,
    ) -> Result<T, StoreError> {
        let run = self
            .published_run(date)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                path: self.root.to_string(),
                message: format!("no run is published for {date}"),
            })?;
        read_json(&run.join("manifest.json")).await
    }

    /// Prepares an empty run for `date`, under the lock.
    pub(crate) async fn stage(
        &self,
        _lock: &PipelineLock,
        date: NaiveDate,
        run_id: &str,
        scratch: Scratch,
    ) -> Result<StagedRun, StoreError> {
        let staged = match self.root.local_path() {
            Some(root) => local::stage(root, run_id)?,
            None => remote::stage(&self.root, date, run_id, scratch).await?,
        };
        Ok(StagedRun {
            store: self.clone(),
            date,
            run_id: run_id.to_string(),
            staged,
        })
    }

    /// Prepares a copy of the run published for `date` to rewrite some of its tables (files
    /// are hard-linked or copied on the store: published files are never changed in place).
    pub(crate) async fn restage(
        &self,
        lock: &PipelineLock,
        date: NaiveDate,
        run_id: &str,
    ) -> Result<StagedRun, StoreError> {
        let published = self
            .published_run(date)
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                path: self.root.to_string(),
                message: format!("no run is published for {date}"),
            })?;
        let staged = self.stage(lock, date, run_id, Scratch::Here).await?;
        match (published.local_path(), staged.run().local_path()) {
            (Some(from), Some(to)) => {
                local::link_tree(from, to).map_err(StoreError::io(to, "copying the run"))?
            }
            _ => remote::copy_tree(&published, staged.run()).await?,
        }
        Ok(staged)
    }

    /// The attempts an object store keeps beside the published runs — the replaced runs kept
    /// readable (`output.keep_replaced`), and what killed runs left — but `running`, the
    /// attempt of the run in progress. None on a local disk, which keeps no other attempt.
    pub(crate) async fn unpublished_attempts(
        &self,
        running: &Folder,
    ) -> Result<Vec<Folder>, StoreError> {
        match self.root.local_path() {
            Some(_) => Ok(Vec::new()),
            None => remote::unpublished_attempts(&self.root, running).await,
        }
    }

    /// Dates with a report of a blocked run, oldest first.
    pub(crate) async fn blocked_dates(&self) -> Result<Vec<NaiveDate>, StoreError> {
        let blocked = self.root.join("blocked");
        let listed = blocked
            .store()
            .list_with_delimiter(Some(blocked.path()))
            .await;
        let listed = match listed {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::object("listing blocked runs", &blocked, e)),
        };
        let mut dates: Vec<NaiveDate> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix("run_date=")?.parse().ok())
            .collect();
        dates.sort();
        Ok(dates)
    }

    /// The report of the blocked run of `date`.
    pub(crate) async fn read_blocked<T: serde::de::DeserializeOwned>(
        &self,
        date: NaiveDate,
    ) -> Result<T, StoreError> {
        read_json(&self.blocked_folder(date).join("report.json")).await
    }

    pub(crate) fn blocked_folder(&self, date: NaiveDate) -> Folder {
        self.root.join(&format!("blocked/run_date={date}"))
    }

    /// The pipeline's folder (where `latest.json` and `index.html` are).
    pub(crate) fn root(&self) -> &Folder {
        &self.root
    }

    /// A path below the pipeline's folder, relative to it.
    pub(crate) fn relative(&self, folder: &Folder) -> String {
        self.root.relative(folder.path())
    }

    /// Where a run of `date` is (or would be) published, for messages.
    pub(crate) async fn describe_run(&self, date: NaiveDate) -> String {
        match self.published_run(date).await {
            Ok(Some(folder)) => folder.to_string(),
            _ => self.root.join(&format!("runs/run_date={date}")).to_string(),
        }
    }
}

/// Where a staged run lives, by backend.
#[derive(Debug)]
enum Staged {
    Local(local::Staging),
    Remote(remote::Attempt),
}

/// A run being written: files go under [`StagedRun::run`] (published) and
/// [`StagedRun::work`] (scratch on this machine).
#[derive(Debug)]
pub(crate) struct StagedRun {
    store: PipelineStore,
    date: NaiveDate,
    run_id: String,
    staged: Staged,
}

impl StagedRun {
    pub(crate) fn run(&self) -> &Folder {
        match &self.staged {
            Staged::Local(s) => &s.run,
            Staged::Remote(a) => &a.run,
        }
    }

    pub(crate) fn work(&self) -> &Folder {
        match &self.staged {
            Staged::Local(s) => &s.work,
            Staged::Remote(a) => &a.work,
        }
    }

    /// Empties a table of the staged run (a folder or a file) before it is written anew.
    pub(crate) async fn clear(&self, relative: &str) -> Result<(), StoreError> {
        let table = self.run().join(relative);
        match table.local_path() {
            Some(path) if path.is_dir() => {
                std::fs::remove_dir_all(path).map_err(StoreError::io(path, "replacing"))
            }
            // Nothing there to replace (a feature without windows keeps no per-day partials).
            Some(path) if !path.exists() => Ok(()),
            Some(path) => std::fs::remove_file(path).map_err(StoreError::io(path, "replacing")),
            None => remote::delete_tree(&table).await,
        }
    }

    /// Keeps the report and failing-row samples of a blocked run in `blocked/run_date=D/` (the
    /// run itself is not published), replacing an older blocked report; returns where.
    pub(crate) async fn keep_blocked<M: Serialize>(
        &self,
        report: &M,
        page: String,
    ) -> Result<String, StoreError> {
        let target = self.store.blocked_folder(self.date);
        match &self.staged {
            Staged::Local(staging) => local::keep_blocked(staging, &target, report),
            Staged::Remote(attempt) => remote::keep_blocked(attempt, &target, report).await,
        }?;
        write_text(&target.join("report.html"), page).await?;
        Ok(target.to_string())
    }

    /// Writes `manifest.json` (last of the run's files) and publishes the run atomically.
    /// Returns true when `latest.json` now points at this run.
    pub(crate) async fn publish<M: Serialize>(
        self,
        lock: &PipelineLock,
        manifest: &M,
    ) -> Result<bool, StoreError> {
        let keep = self.store.keep_replaced;
        self.publish_keeping(lock, manifest, keep).await
    }

    /// [`publish`](Self::publish) for a run that erased customers, or was rewritten without
    /// them: the runs it replaces may hold them, so none is kept readable (`keep_replaced`
    /// does not apply).
    pub(crate) async fn publish_erased<M: Serialize>(
        self,
        lock: &PipelineLock,
        manifest: &M,
    ) -> Result<bool, StoreError> {
        self.publish_keeping(lock, manifest, 0).await
    }

    async fn publish_keeping<M: Serialize>(
        self,
        lock: &PipelineLock,
        manifest: &M,
        keep_replaced: usize,
    ) -> Result<bool, StoreError> {
        if let Staged::Remote(attempt) = &self.staged {
            attempt.clear_scratch().await?;
        }
        write_json(&self.run().join("manifest.json"), manifest).await?;
        failpoint("before-publish").await?;
        lock.check().await?;
        let latest = |path: String| Latest {
            pipeline: self.store.pipeline.clone(),
            run_date: self.date,
            run_id: self.run_id.clone(),
            manifest: format!("{path}/manifest.json"),
            path,
            published_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        match &self.staged {
            Staged::Local(staging) => local::publish(&self.store, staging, self.date, latest).await,
            Staged::Remote(attempt) => {
                remote::publish(&self.store, attempt, self.date, latest, keep_replaced).await
            }
        }
    }
}

/// Test hook: `SEGFLOW_FAILPOINT=before-publish` fails a run just before its atomic publish
/// (all files and the manifest written), `after-publish` on an object store just after (the
/// date's pointer moved, `latest.json` not yet); `before-publish=sleep` waits there so a test can
/// kill the process. `rebuild=sleep` waits before a rerun rebuilds the first date after it.
pub async fn failpoint(name: &str) -> Result<(), StoreError> {
    let Ok(setting) = std::env::var("SEGFLOW_FAILPOINT") else {
        return Ok(());
    };
    match setting.split_once('=') {
        Some((point, "sleep")) if point == name => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            Ok(())
        }
        None if setting == name => Err(StoreError::Injected(format!(
            "failure injected at {name} (SEGFLOW_FAILPOINT)"
        ))),
        _ => Ok(()),
    }
}

/// Deletes a folder and everything in it, on a local disk or an object store; a folder that
/// does not exist is fine.
pub(crate) async fn delete_folder(folder: &Folder) -> Result<(), StoreError> {
    match folder.local_path() {
        Some(path) => match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io(path, "deleting")(e))
            }
            _ => Ok(()),
        },
        None => remote::delete_tree(folder).await,
    }
}

/// Copies a folder of a published run into a staged one, on the same disk or store: hard links
/// on a local disk (published files are never changed in place), copies on an object store.
pub(crate) async fn copy_folder(from: &Folder, to: &Folder) -> Result<(), StoreError> {
    match (from.local_path(), to.local_path()) {
        (Some(from), Some(to)) => {
            local::link_tree(from, to).map_err(StoreError::io(to, "copying a folder"))
        }
        _ => remote::copy_tree(from, to).await,
    }
}

/// Reads a JSON document (a manifest, a pointer) from a local file or an object.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    file: &Folder,
) -> Result<T, StoreError> {
    let bytes = remote::get(file).await?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: file.to_string(),
        message: e.to_string(),
    })
}

/// Reads a JSON document that may not be there.
pub(crate) async fn read_json_if_any<T: serde::de::DeserializeOwned>(
    file: &Folder,
) -> Result<Option<T>, StoreError> {
    use object_store::ObjectStoreExt;
    match file.store().head(file.path()).await {
        Ok(_) => read_json(file).await.map(Some),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(StoreError::object("reading", file, e)),
    }
}

/// Deletes one file, on a local disk or an object store; a file that is not there is fine.
pub(crate) async fn delete_file(file: &Folder) -> Result<(), StoreError> {
    use object_store::ObjectStoreExt;
    match file.store().delete(file.path()).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(StoreError::object("deleting", file, e)),
    }
}

/// Writes a JSON document whole: by rename on a local disk, as one object on a store.
pub(crate) async fn write_json<T: Serialize + ?Sized>(
    file: &Folder,
    value: &T,
) -> Result<(), StoreError> {
    let mut text = serde_json::to_string_pretty(value).expect("manifests serialize");
    text.push('\n');
    write_text(file, text).await
}

/// Writes a text file whole: by rename on a local disk, as one object on a store.
pub(crate) async fn write_text(file: &Folder, text: String) -> Result<(), StoreError> {
    match file.local_path() {
        Some(path) => local::write_atomic(path, text.as_bytes()),
        None => remote::put(file, text.into_bytes()).await,
    }
}
