//! A process's room on this machine: `segflow-<id>/` in the temporary folder (`$TMPDIR`, else
//! `/tmp`), where DataFusion spills sorts and aggregations that outgrow `--memory-limit`, and
//! where a run publishing to an object store keeps its scratch tables. A space is removed when
//! the process is done with it.
//!
//! A process killed first — a scheduler's timeout, the kernel out of memory — cannot remove
//! it, and what it spilled or staged (gigabytes at 10M customers) would fill the disk run after
//! run. So a space is held under an exclusive lock on `segflow-<id>.lock` for as long as it is
//! in use, which the kernel releases however the process ends, and every new space first
//! removes the spaces whose lock nobody holds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::info;

use super::StoreError;

const PREFIX: &str = "segflow-";
const LOCK: &str = ".lock";

/// A folder of this process's, removed when dropped (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Space {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Holds the lock: closing it releases it.
    _lock: File,
}

impl Space {
    /// A new space named after `id` (unique to the process, e.g. a run id) in the temporary
    /// folder, after removing the spaces of processes that are gone.
    pub(crate) fn create(id: &str) -> Result<Self, StoreError> {
        let temp = std::env::temp_dir();
        Self::create_in(&temp, id).map_err(StoreError::io(
            &temp,
            "creating a folder of segflow's (set TMPDIR to a writable folder)",
        ))
    }

    fn create_in(temp: &Path, id: &str) -> io::Result<Self> {
        let removed = remove_abandoned(temp);
        if removed > 0 {
            info!(
                folder = %temp.display(),
                removed,
                "removed the spill and scratch folders of segflow processes that were killed"
            );
        }
        let name = format!("{PREFIX}{id}");
        let lock_path = temp.join(format!("{name}{LOCK}"));
        let lock = loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)?;
            file.lock()?;
            // Another process's sweep may have taken the lock between the open and the lock,
            // found no folder and removed the file: then this lock guards nothing; start again.
            if same_file(&file, &lock_path) {
                break file;
            }
        };
        let dir = temp.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            lock_path,
            _lock: lock,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Space {
    fn drop(&mut self) {
        // The folder first, while the lock keeps sweeps away; the lock file last, so that a
        // process killed in between leaves a lock file for the next sweep to find.
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Whether `path` still names the file `file` has open.
pub(super) fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
        _ => false,
    }
}

/// Removes every space in `temp` whose lock nobody holds, returning how many. Spaces of other
/// users that cannot be removed are left.
fn remove_abandoned(temp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    let locks = entries.filter_map(Result::ok).filter_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        let id = name.strip_prefix(PREFIX)?.strip_suffix(LOCK)?;
        Some((entry.path(), temp.join(format!("{PREFIX}{id}"))))
    });
    let mut removed = 0;
    for (lock_path, dir) in locks {
        // Read-only is enough to lock, and opens another user's lock file too.
        let Ok(file) = File::open(&lock_path) else {
            continue;
        };
        // Held: the process is alive. Taken: it is gone, unless its folder was removed and
        // the name reused in between.
        if file.try_lock().is_err() || !same_file(&file, &lock_path) {
            continue;
        }
        if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
            let _ = std::fs::remove_file(&lock_path);
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(temp: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(temp)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_space_is_a_locked_folder_removed_when_dropped() {
        let temp = tempfile::tempdir().unwrap();
        let space = Space::create_in(temp.path(), "a").unwrap();
        std::fs::write(space.path().join("spill"), b"rows").unwrap();
        assert_eq!(names(temp.path()), ["segflow-a", "segflow-a.lock"]);
        drop(space);
        assert!(names(temp.path()).is_empty());
    }

    #[test]
    fn a_new_space_removes_those_nobody_holds_and_keeps_those_in_use() {
        let temp = tempfile::tempdir().unwrap();
        let live = Space::create_in(temp.path(), "live").unwrap();
        // What a killed process leaves: its folder and lock file, the lock released.
        let dead = temp.path().join("segflow-dead");
        std::fs::create_dir_all(dead.join("datafusion-x")).unwrap();
        std::fs::write(dead.join("datafusion-x/spill.arrow"), b"rows").unwrap();
        std::fs::write(temp.path().join("segflow-dead.lock"), b"").unwrap();
        // Not a space: no lock file of its own.
        std::fs::create_dir(temp.path().join("segflow-other")).unwrap();

        let new = Space::create_in(temp.path(), "new").unwrap();
        assert_eq!(
            names(temp.path()),
            [
                "segflow-live",
                "segflow-live.lock",
                "segflow-new",
                "segflow-new.lock",
                "segflow-other"
            ]
        );
        drop((live, new));
        assert_eq!(names(temp.path()), ["segflow-other"]);
    }
}
