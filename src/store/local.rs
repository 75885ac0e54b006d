//! Publishing to a local folder: stage under `.staging/<run_id>/`, then one rename.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;

use super::{Latest, PipelineStore, StoreError};
use crate::objects::Folder;

/// A run staged on the local disk; the staging folder is removed when it is dropped (after a
/// publish it holds the replaced run, after a failure the partial one).
#[derive(Debug)]
pub(super) struct Staging {
    dir: PathBuf,
    pub(super) run: Folder,
    pub(super) work: Folder,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_dir(root: &Path, date: NaiveDate) -> PathBuf {
    root.join("runs").join(format!("run_date={date}"))
}

/// Removes every staging folder: called with the pipeline's lock held, when no other run of
/// the pipeline is live.
pub(super) fn remove_staging(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join(".staging")) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        restore_replaced(root, &entry.path().join("run.replaced"));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// A run moved aside by the two-step swap (see [`exchange`]) of a process killed before the
/// new run took its place: the date has no folder, so the old run goes back.
fn restore_replaced(root: &Path, replaced: &Path) {
    #[derive(serde::Deserialize)]
    struct Dated {
        run_date: NaiveDate,
    }
    let Ok(text) = std::fs::read_to_string(replaced.join("manifest.json")) else {
        return;
    };
    let Ok(Dated { run_date }) = serde_json::from_str(&text) else {
        return;
    };
    let target = run_dir(root, run_date);
    if !target.exists() && std::fs::rename(replaced, &target).is_ok() {
        tracing::warn!(%run_date, "a run moved aside by a killed publish was put back");
    }
}

/// Dates with a published run (a run folder holding a manifest), oldest first.
pub(super) fn published_dates(root: &Path) -> Result<Vec<NaiveDate>, StoreError> {
    let runs = root.join("runs");
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
        .filter(|date| published_run(root, *date).is_some())
        .collect();
    dates.sort();
    Ok(dates)
}

pub(super) fn published_run(root: &Path, date: NaiveDate) -> Option<PathBuf> {
    let dir = run_dir(root, date);
    dir.join("manifest.json").is_file().then_some(dir)
}

pub(super) fn stage(root: &Path, run_id: &str) -> Result<super::Staged, StoreError> {
    let dir = root.join(".staging").join(run_id);
    let (run, work) = (dir.join("run"), dir.join("work"));
    for d in [&run, &work] {
        std::fs::create_dir_all(d).map_err(StoreError::io(d, "creating the staging folder"))?;
    }
    Ok(super::Staged::Local(Staging {
        run: Folder::local(&run),
        work: Folder::local(&work),
        dir,
    }))
}

pub(super) fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn local(folder: &Folder) -> &Path {
    folder
        .local_path()
        .expect("a local store's folders are local")
}

pub(super) fn keep_blocked<M: Serialize>(
    staging: &Staging,
    target: &Folder,
    report: &M,
) -> Result<(), StoreError> {
    let keep = staging.dir.join("blocked");
    std::fs::create_dir_all(&keep).map_err(StoreError::io(&keep, "creating folder"))?;
    let checks = local(&staging.run).join("checks");
    if checks.is_dir() {
        std::fs::rename(&checks, keep.join("checks"))
            .map_err(StoreError::io(&checks, "keeping check samples"))?;
    }
    let text = serde_json::to_string_pretty(report).expect("reports serialize");
    write_atomic(&keep.join("report.json"), text.as_bytes())?;
    let target = local(target);
    let parent = target.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating blocked/"))?;
    if target.exists() {
        std::fs::remove_dir_all(target)
            .map_err(StoreError::io(target, "replacing the blocked report"))?;
    }
    std::fs::rename(&keep, target).map_err(StoreError::io(target, "keeping the blocked report"))
}

/// Moves the staged run onto `runs/run_date=D` in one step and points `latest.json` at it
/// when it is the newest date.
pub(super) async fn publish(
    store: &PipelineStore,
    staging: &Staging,
    date: NaiveDate,
    latest: impl FnOnce(String) -> Latest,
) -> Result<bool, StoreError> {
    let root = local(&store.root);
    let target = run_dir(root, date);
    let parent = target.parent().expect("run folder has a parent");
    std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating runs/"))?;
    let staged = local(&staging.run);
    if target.exists() {
        exchange(staged, &target)?;
    } else {
        std::fs::rename(staged, &target)
            .map_err(StoreError::io(&target, "publishing the run folder"))?;
    }
    let is_latest = published_dates(root)?.last() == Some(&date);
    if is_latest {
        let latest = latest(format!("runs/run_date={date}"));
        let text = serde_json::to_string_pretty(&latest).expect("latest serializes") + "\n";
        write_atomic(&root.join("latest.json"), text.as_bytes())?;
    }
    Ok(is_latest)
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

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating folder"))?;
    }
    std::fs::write(&tmp, bytes).map_err(StoreError::io(&tmp, "writing"))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io(path, "replacing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_moved_aside_by_a_killed_swap_is_put_back_and_a_replaced_one_removed() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let write_run = |dir: &Path, date: &str| {
            std::fs::create_dir_all(dir).unwrap();
            let manifest = format!("{{\"run_date\": \"{date}\", \"run_id\": \"x\"}}");
            std::fs::write(dir.join("manifest.json"), manifest).unwrap();
        };
        // Killed between the two renames: 11-01 has no folder, its run is in staging.
        write_run(&root.join(".staging/a/run.replaced"), "2026-11-01");
        // Swapped and killed before cleaning up: 11-02 is published, the old one is staged.
        write_run(&root.join("runs/run_date=2026-11-02"), "2026-11-02");
        write_run(&root.join(".staging/b/run.replaced"), "2026-11-02");
        remove_staging(root);
        let date = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert!(published_run(root, date("2026-11-01")).is_some());
        assert!(published_run(root, date("2026-11-02")).is_some());
        assert_eq!(std::fs::read_dir(root.join(".staging")).unwrap().count(), 0);
    }
}
