//! One run per pipeline and date at a time: a lock file created exclusively, removed when the
//! run ends. A lock left by a killed process (its pid no longer alive) is taken over.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::StoreError;

#[derive(Debug, Serialize, Deserialize)]
struct LockInfo {
    run_id: String,
    pid: u32,
    started_at: String,
}

#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

impl RunLock {
    pub fn acquire(dir: &Path, date: NaiveDate, run_id: &str) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir, "creating the lock folder"))?;
        let path = dir.join(format!("run_date={date}.lock"));
        let info = LockInfo {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        for _attempt in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let text = serde_json::to_string(&info).expect("lock info serializes");
                    file.write_all(text.as_bytes())
                        .map_err(StoreError::io(&path, "writing the run lock"))?;
                    return Ok(Self { path });
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder: Option<LockInfo> = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                    match holder {
                        Some(holder) if process_alive(holder.pid) => {
                            return Err(StoreError::Locked {
                                run_date: date,
                                run_id: holder.run_id,
                                pid: holder.pid,
                                started_at: holder.started_at,
                                lock: path,
                            });
                        }
                        // The holder died (or the file is garbage): take the lock over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(err) => return Err(StoreError::io(&path, "creating the run lock")(err)),
            }
        }
        Err(StoreError::io(&path, "creating the run lock")(
            std::io::Error::other("the lock was taken concurrently"),
        ))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Run ids that hold a lock and whose process is alive.
pub fn live_run_ids(dir: &Path) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| serde_json::from_str::<LockInfo>(&t).ok())
        .filter(|info| process_alive(info.pid))
        .map(|info| info.run_id)
        .collect()
}
