//! One run of a pipeline at a time. A run takes the pipeline's lock before it stages anything
//! and keeps it until it has published (and rebuilt the dates after it): a second run of the
//! same date is refused ("in progress"), a run of another date waits its turn, so history is
//! always built from one run after another.
//!
//! On a local disk the lock is a file created exclusively; a lock left by a process that is
//! gone is taken over. On an object store it is an object created with `If-None-Match: *`
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
use crate::objects::Folder;

/// How long a lock on an object store lasts without renewal.
const LEASE: Duration = Duration::from_secs(60);
/// How often a waiting run looks at the lock again.
const POLL: Duration = Duration::from_millis(250);

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
}

impl Holder {
    fn new(run_id: &str, run_date: NaiveDate, lease: bool) -> Self {
        Self {
            run_id: run_id.to_string(),
            run_date,
            pid: std::process::id(),
            host: hostname(),
            started_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            expires_at: lease.then(|| Utc::now() + LEASE),
        }
    }

    /// Whether the run holding the lock is gone: its process on this host has exited, or its
    /// lease ran out.
    fn is_gone(&self) -> bool {
        let dead_here = self.host == hostname() && !process_alive(self.pid);
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

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The pipeline's lock, held until dropped (or released).
#[derive(Debug)]
pub(crate) struct PipelineLock {
    file: Folder,
    /// The lease renewer of an object-store lock.
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    version: Arc<Mutex<UpdateVersion>>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl PipelineLock {
    pub(super) async fn acquire(
        root: &Folder,
        date: NaiveDate,
        run_id: &str,
    ) -> Result<Self, StoreError> {
        let file = root.join(".lock");
        let mut announced = false;
        loop {
            let holder = match file.local_path() {
                Some(path) => try_local(path, run_id, date)?,
                None => match try_remote(&file, run_id, date).await? {
                    Ok(lease) => {
                        return Ok(Self {
                            file,
                            lease: Some(lease),
                        });
                    }
                    Err(holder) => Some(holder),
                },
            };
            let Some(holder) = holder else {
                return Ok(Self { file, lease: None });
            };
            if holder.run_date == date {
                return Err(holder.in_progress(&file));
            }
            if !announced {
                tracing::info!(other_date = %holder.run_date, other_run = %holder.run_id, "waiting for another run of this pipeline to finish");
                announced = true;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails when the lock was taken over (its lease ran out): the run must not publish.
    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        match &self.lease {
            Some(lease) if lease.lost.load(Ordering::SeqCst) => Err(StoreError::LockLost {
                lock: self.file.to_string(),
            }),
            _ => Ok(()),
        }
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
        if let Some(path) = self.file.local_path() {
            let _ = std::fs::remove_file(path);
        }
        if let Some(lease) = &self.lease {
            // Not released explicitly (the run was stopped): the lease runs out.
            lease.renewer.abort();
        }
    }
}

/// Takes a local lock file; returns the live holder when another run has it.
fn try_local(
    path: &std::path::Path,
    run_id: &str,
    date: NaiveDate,
) -> Result<Option<Holder>, StoreError> {
    use std::io::Write;
    let parent = path.parent().expect("the lock is in the pipeline's folder");
    std::fs::create_dir_all(parent).map_err(StoreError::io(parent, "creating the folder"))?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut file) => {
            let holder = Holder::new(run_id, date, false);
            let text = serde_json::to_string(&holder).expect("lock info serializes");
            file.write_all(text.as_bytes())
                .map_err(StoreError::io(path, "writing the run lock"))?;
            Ok(None)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let holder: Option<Holder> = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let written_just_now = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|at| at.elapsed().unwrap_or_default() < Duration::from_secs(5));
            match holder {
                Some(holder) if !holder.is_gone() => Ok(Some(holder)),
                // Being written by a run that just took it: wait for it like for another date.
                None if written_just_now => Ok(Some(Holder::new("?", NaiveDate::MIN, false))),
                // The holder died (or the file is being written, or is garbage): take it over
                // by removing it; the next attempt creates it exclusively again.
                _ => {
                    let _ = std::fs::remove_file(path);
                    try_local(path, run_id, date)
                }
            }
        }
        Err(err) => Err(StoreError::io(path, "creating the run lock")(err)),
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

/// Takes an object-store lock (creating it, or taking over a lapsed one); returns the live
/// holder when another run has it.
async fn try_remote(
    file: &Folder,
    run_id: &str,
    date: NaiveDate,
) -> Result<Result<Lease, Holder>, StoreError> {
    let holder = Holder::new(run_id, date, true);
    if let Ok(version) = put_holder(file, &holder, PutMode::Create).await? {
        return Ok(Ok(Lease::start(file.clone(), holder, version)));
    }
    let current = match file.store().get(file.path()).await {
        Ok(current) => current,
        // Released in between: try again.
        Err(object_store::Error::NotFound { .. }) => {
            return Box::pin(try_remote(file, run_id, date)).await;
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
        _ => match put_holder(file, &holder, PutMode::Update(version)).await? {
            Ok(version) => Ok(Ok(Lease::start(file.clone(), holder, version))),
            Err(()) => Box::pin(try_remote(file, run_id, date)).await,
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
                    let current = version.lock().await.clone();
                    match put_holder(&file, &holder, PutMode::Update(current)).await {
                        Ok(Ok(next)) => *version.lock().await = next,
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
