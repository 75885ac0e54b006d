//! One run of a pipeline at a time. A run takes the pipeline's lock before it stages anything
//! and keeps it until it has published (and rebuilt the dates after it): a second run of the
//! same date is refused ("in progress"), a run of another date waits its turn, so history is
//! always built from one run after another. `segflow report`, which rewrites pages of published
//! runs, takes it too: it waits for any run, and runs wait for it.
//!
//! On a local disk the lock is the file `.lock` under an exclusive `flock`, which the kernel
//! releases however the holder ends: a killed run's lock is free at once, and two runs that
//! find it free never both take it (the file names its holder, for the message of a run that
//! finds it taken). On an object store it is an object created with `If-None-Match: *`
//! holding a lease that the run renews with `If-Match`; a lock whose lease ran out (or whose
//! process on this host is gone) is taken over with `If-Match`, so two runs never both take it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::StoreError;
use super::space::same_file;
use crate::objects::Folder;

/// How long a lock on an object store lasts without renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How often a waiting run looks at the lock again.
const POLL: Duration = Duration::from_millis(250);

/// What the lock is taken for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Purpose {
    /// A run of a date: another run of the same date is refused while it holds the lock.
    #[default]
    Run,
    /// Rebuilding pages (`segflow report`): waited for, and waits, whatever the date.
    Report,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    run_id: String,
    run_date: NaiveDate,
    pid: u32,
    host: String,
    started_at: String,
    /// When an object-store lock lapses unless renewed.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// Which machine boot and PID namespace `pid` is a process of (see [`process_space`]).
    #[serde(default)]
    process_space: Option<String>,
    #[serde(default)]
    purpose: Purpose,
}

impl Holder {
    fn new(run_id: &str, run_date: NaiveDate, purpose: Purpose, lease: bool) -> Self {
        Self {
            run_id: run_id.to_string(),
            run_date,
            pid: std::process::id(),
            host: hostname(),
            started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            expires_at: lease.then(|| Utc::now() + LEASE),
            process_space: process_space(),
            purpose,
        }
    }

    /// Whether `self`, holding the lock, makes a run of `other` fail rather than wait: two
    /// runs of one date would build the same history twice.
    fn refuses(&self, other: &Holder) -> bool {
        self.purpose == Purpose::Run
            && other.purpose == Purpose::Run
            && self.run_date == other.run_date
    }

    /// Whether the run holding the lock is gone: its process on this host has exited, or its
    /// lease ran out. A process of another machine or PID namespace (two containers sharing a
    /// hostname, as with host networking) cannot be looked up: only its lease tells.
    fn is_gone(&self) -> bool {
        let here = self.host == hostname()
            && (self.process_space.is_none() || self.process_space == process_space());
        let dead_here = here && !process_alive(self.pid);
        let lapsed = self.expires_at.is_some_and(|at| at < Utc::now());
        dead_here || lapsed
    }

    fn in_progress(&self, lock: &Folder) -> StoreError {
        StoreError::Locked(Box::new(super::InProgress {
            run_date: self.run_date,
            run_id: self.run_id.clone(),
            pid: self.pid,
            host: self.host.clone(),
            started_at: self.started_at.clone(),
            lock: lock.to_string(),
        }))
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// This machine's boot and this process's PID namespace: a process ID names a process only
/// within both. `None` where the system does not say (then the hostname alone is compared).
fn process_space() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::metadata("/proc/self/ns/pid").ok()?.ino();
    Some(format!("{}/{namespace}", boot.trim()))
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The pipeline's lock, held until dropped (or released).
#[derive(Debug)]
pub(crate) struct PipelineLock {
    file: Folder,
    /// The locked file of a local lock: closing it releases the lock.
    local: Option<std::fs::File>,
    /// The lease renewer of an object-store lock.
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    version: Arc<Mutex<UpdateVersion>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Who holds a lock another run wants.
#[derive(Debug)]
enum Taken {
    By(Holder),
    /// Its holder is still writing its name.
    Unnamed,
}

impl PipelineLock {
    pub(super) async fn acquire(
        root: &Folder,
        date: NaiveDate,
        run_id: &str,
        purpose: Purpose,
    ) -> Result<Self, StoreError> {
        let file = root.join(".lock");
        let mut announced = false;
        loop {
            let me = Holder::new(run_id, date, purpose, file.local_path().is_none());
            let taken = match file.local_path() {
                Some(path) => match try_local(path, &me)? {
                    Ok(locked) => {
                        return Ok(Self {
                            file,
                            local: Some(locked),
                            lease: None,
                        });
                    }
                    Err(taken) => taken,
                },
                None => match try_remote(&file, &me).await? {
                    Ok(lease) => {
                        return Ok(Self {
                            file,
                            local: None,
                            lease: Some(lease),
                        });
                    }
                    Err(holder) => Taken::By(holder),
                },
            };
            if let Taken::By(holder) = &taken {
                if holder.refuses(&me) {
                    return Err(holder.in_progress(&file));
                }
                if !announced {
                    match holder.purpose {
                        Purpose::Run => {
                            tracing::info!(other_date = %holder.run_date, other_run = %holder.run_id, "waiting for another run of this pipeline to finish")
                        }
                        Purpose::Report => tracing::info!(
                            "waiting for `segflow report` to finish rewriting this pipeline's pages"
                        ),
                    }
                    announced = true;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails when the lock was taken over (its lease ran out): the run must not publish. On an
    /// object store the lock is read again: a run stalled past its lease (a paused container)
    /// learns here, not at its next renewal, that another run took the lock over.
    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        let Some(lease) = &self.lease else {
            return Ok(());
        };
        let lost = || StoreError::LockLost {
            lock: self.file.to_string(),
        };
        if lease.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        // Held while a renewal is written, so that the version is this run's last.
        let ours = lease.version.lock().await;
        let current = (self.file.store().head(self.file.path()).await)
            .map_err(|e| StoreError::object("reading the pipeline's lock", &self.file, e))?;
        if current.e_tag != ours.e_tag {
            lease.lost.store(true, Ordering::SeqCst);
            return Err(lost());
        }
        Ok(())
    }

    /// Releases the lock now (dropping it does too; on an object store this deletes it).
    pub(crate) async fn release(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.renewer.abort();
            let ours = lease.version.lock().await.e_tag.clone();
            let current = self.file.store().head(self.file.path()).await;
            if current.is_ok_and(|meta| meta.e_tag == ours) {
                let _ = self.file.store().delete(self.file.path()).await;
            }
        }
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        // The file is removed while still locked, then closed: a run that opened it meanwhile
        // and locks it next finds it no longer named `.lock`, and opens the new one.
        if let (Some(path), Some(file)) = (self.file.local_path(), &self.local)
            && same_file(file, path)
        {
            let _ = std::fs::remove_file(path);
        }
        if let Some(lease) = &self.lease {
            // Not released explicitly (the run was stopped): the lease runs out.
            lease.renewer.abort();
        }
    }
}

/// Takes a local lock: the file `path` locked (and naming `me`), or who holds it.
fn try_local(
    path: &std::path::Path,
    me: &Holder,
) -> Result<Result<std::fs::File, Taken>, StoreError> {
    use std::io::{Read, Seek, Write};
    let parent = path.parent().expect("the lock is in the pipeline's folder");
    std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating the folder"))?;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    // Another user's file can be locked and read, not written.
    let (mut file, ours) = match opened {
        Ok(file) => (file, true),
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => (
            std::fs::File::open(path).map_err(StoreError::io(path, "opening the run lock"))?,
            false,
        ),
        Err(err) => return Err(StoreError::io(path, "opening the run lock")(err)),
    };
    match file.try_lock() {
        // The run that held it removed it between our open and our lock: open the new one.
        Ok(()) if !same_file(&file, path) => try_local(path, me),
        // Another user's, left by a run that is gone: made anew.
        Ok(()) if !ours => {
            std::fs::remove_file(path).map_err(StoreError::io(path, "removing the run lock"))?;
            try_local(path, me)
        }
        Ok(()) => {
            let text = serde_json::to_string(me).expect("lock info serializes");
            (file.set_len(0))
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(text.as_bytes()))
                .map_err(StoreError::io(path, "writing the run lock"))?;
            Ok(Ok(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let named = file.read_to_string(&mut text).is_ok();
            Ok(Err(match serde_json::from_str::<Holder>(&text) {
                // A run that is gone cannot hold it: the file still names the run before,
                // which the run that just took the lock has not written over yet.
                Ok(holder) if named && !holder.is_gone() => Taken::By(holder),
                _ => Taken::Unnamed,
            }))
        }
        // Some file systems (NFS) lock only what the locker may write.
        Err(std::fs::TryLockError::Error(err)) if !ours => Err(StoreError::io(
            path,
            "locking the run lock, another user's file, which this file system will not lock for a user who cannot write it (if no run of this pipeline is in progress, remove it)",
        )(err)),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(StoreError::io(path, "locking the run lock")(err))
        }
    }
}

async fn put_holder(
    file: &Folder,
    holder: &Holder,
    mode: PutMode,
) -> Result<Result<UpdateVersion, ()>, StoreError> {
    let bytes = serde_json::to_vec(holder).expect("lock info serializes");
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match file
        .store()
        .put_opts(file.path(), PutPayload::from(bytes), options)
        .await
    {
        Ok(put) => Ok(Ok(UpdateVersion {
            e_tag: put.e_tag,
            version: put.version,
        })),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Err(())),
        Err(e) => Err(StoreError::object("taking the pipeline's lock", file, e)),
    }
}

/// Takes an object-store lock for `me` (creating it, or taking over a lapsed one); returns
/// the live holder when another run has it.
async fn try_remote(file: &Folder, me: &Holder) -> Result<Result<Lease, Holder>, StoreError> {
    if let Ok(version) = put_holder(file, me, PutMode::Create).await? {
        return Ok(Ok(Lease::start(file.clone(), me.clone(), version)));
    }
    let current = match file.store().get(file.path()).await {
        Ok(current) => current,
        // Released in between: try again.
        Err(object_store::Error::NotFound { .. }) => {
            return Box::pin(try_remote(file, me)).await;
        }
        Err(e) => return Err(StoreError::object("reading the pipeline's lock", file, e)),
    };
    let version = UpdateVersion {
        e_tag: current.meta.e_tag.clone(),
        version: current.meta.version.clone(),
    };
    let bytes = current
        .bytes()
        .await
        .map_err(|e| StoreError::object("reading the pipeline's lock", file, e))?;
    match serde_json::from_slice::<Holder>(&bytes) {
        Ok(other) if !other.is_gone() => Ok(Err(other)),
        // Lapsed (or unreadable): take it over only if nobody else did meanwhile.
        _ => match put_holder(file, me, PutMode::Update(version)).await? {
            Ok(version) => Ok(Ok(Lease::start(file.clone(), me.clone(), version))),
            Err(()) => Box::pin(try_remote(file, me)).await,
        },
    }
}

impl Lease {
    /// Renews the lease every third of its length while the run lasts.
    fn start(file: Folder, holder: Holder, version: UpdateVersion) -> Self {
        let version = Arc::new(Mutex::new(version));
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn({
            let (version, lost) = (version.clone(), lost.clone());
            async move {
                let mut holder = holder;
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    holder.expires_at = Some(Utc::now() + LEASE);
                    // The version stays locked until the new one is known (see `check`).
                    let mut current = version.lock().await;
                    match put_holder(&file, &holder, PutMode::Update(current.clone())).await {
                        Ok(Ok(next)) => *current = next,
                        Ok(Err(())) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        // A passing failure: the lease still has two thirds to run.
                        Err(err) => tracing::warn!("renewing the pipeline's lock: {err}"),
                    }
                }
            }
        });
        Self {
            version,
            lost,
            renewer,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn run(run_id: &str, date: NaiveDate) -> Holder {
        Holder::new(run_id, date, Purpose::Run, false)
    }

    /// Runs racing for a lock, the first of each round finding a killed run's file: at every
    /// moment one at most holds it, and each gets it in turn.
    #[test]
    fn one_run_holds_the_lock_at_a_time_even_taking_over_a_killed_runs() {
        let temp = tempfile::tempdir().unwrap();
        let root = Folder::local(temp.path());
        let path = temp.path().join(".lock");
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let holding = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        for _ in 0..200 {
            let killed = Holder::new("killed", date, Purpose::Run, false);
            std::fs::write(&path, serde_json::to_string(&killed).unwrap()).unwrap();
            std::thread::scope(|scope| {
                for i in 0..4 {
                    let (root, path, holding, most) = (&root, &path, &holding, &most);
                    scope.spawn(move || {
                        let run_id = format!("run-{i}");
                        let locked = loop {
                            match try_local(path, &run(&run_id, date)).unwrap() {
                                Ok(locked) => break locked,
                                Err(_) => std::thread::yield_now(),
                            }
                        };
                        let lock = PipelineLock {
                            file: root.join(".lock"),
                            local: Some(locked),
                            lease: None,
                        };
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let named: Holder =
                            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                        assert_eq!(named.run_id, run_id);
                        std::thread::sleep(Duration::from_millis(1));
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(lock);
                    });
                }
            });
            assert!(!path.exists(), "the last run removed its lock");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }

    /// Taken by a run that has not yet written its name over a killed run's: the killed run
    /// of the same date is not "in progress", and the run waits.
    #[test]
    fn a_held_lock_still_naming_a_killed_run_is_waited_for() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join(".lock");
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        // No process has the largest number the kernel gives (spawning one to wait for it
        // would lend the other tests' locks to the child).
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        let killed = Holder {
            pid: pid_max.trim().parse().unwrap(),
            ..Holder::new("killed", date, Purpose::Run, false)
        };
        std::fs::write(&path, serde_json::to_string(&killed).unwrap()).unwrap();
        let taking = std::fs::File::open(&path).unwrap();
        taking.lock().unwrap();
        assert!(matches!(
            try_local(&path, &run("next", date)).unwrap(),
            Err(Taken::Unnamed)
        ));
    }

    /// Two runs of one date would build its history twice: the second is refused. A report
    /// rewriting pages is waited for, and waits, whatever its date.
    #[test]
    fn only_a_run_of_the_same_date_is_refused() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let next = date.succ_opt().unwrap();
        let report = Holder::new("report", date, Purpose::Report, false);
        assert!(run("a", date).refuses(&run("b", date)));
        assert!(!run("a", date).refuses(&run("b", next)));
        assert!(!report.refuses(&run("b", date)));
        assert!(!run("a", date).refuses(&report));
    }

    /// A run that finds the lock held learns who holds it from the file.
    #[test]
    fn a_held_lock_names_its_run() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join(".lock");
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let held = try_local(&path, &run("first", date)).unwrap().unwrap();
        match try_local(&path, &run("second", date)).unwrap() {
            Err(Taken::By(holder)) => assert_eq!(holder.run_id, "first"),
            _ => panic!("the lock was taken twice"),
        }
        drop(held);
        // Free once dropped (a process another test forks may share it until it execs).
        let free = (0..100).any(|_| {
            let taken = matches!(try_local(&path, &run("second", date)), Ok(Ok(_)));
            taken || {
                std::thread::sleep(Duration::from_millis(10));
                false
            }
        });
        assert!(free);
    }

    /// A process of another PID namespace with the same hostname (containers sharing the
    /// host's network) cannot be looked up by its number: its lock lapses with its lease only.
    #[test]
    fn a_holder_in_another_pid_namespace_is_gone_only_when_its_lease_runs_out() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        let unknown_here = Holder {
            pid: pid_max.trim().parse().unwrap(),
            ..Holder::new("elsewhere", date, Purpose::Run, true)
        };
        assert!(unknown_here.is_gone(), "a dead process of this namespace");
        let elsewhere = Holder {
            process_space: Some("another-boot/4026531836".into()),
            ..unknown_here.clone()
        };
        assert!(
            !elsewhere.is_gone(),
            "alive as far as this machine can tell"
        );
        let lapsed = Holder {
            expires_at: Some(Utc::now() - chrono::Duration::seconds(1)),
            ..elsewhere
        };
        assert!(lapsed.is_gone());
    }
}
