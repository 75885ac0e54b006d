//! Publishing to an object store, which has no rename: every attempt under its own prefix, one
//! conditional write of the date's pointer to publish it, then of `latest.json`.

use bytes::Bytes;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{Latest, PipelineStore, StoreError};
use crate::objects::Folder;

/// `runs/run_date=D/published.json`: which attempt is the date's published run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pointer {
    run_id: String,
    /// The run's folder, relative to the pipeline's folder.
    path: String,
    /// The runs this one replaced, newest first, kept (`output.keep_replaced` of them) so that
    /// a reader who followed an older pointer can finish reading.
    #[serde(default)]
    replaced: Vec<String>,
    published_at: String,
}

/// A run staged on an object store: its own prefix, and scratch space on this machine or, for
/// a cluster's executors, inside the run's prefix (deleted before it is published).
#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) run: Folder,
    pub(super) work: Folder,
    /// The scratch space on this machine, removed with the attempt.
    work_space: Option<super::Space>,
    /// The pointer the run replaces, as it was when the run started (`None`: a new date).
    replaces: Option<(Pointer, UpdateVersion)>,
}

impl Attempt {
    /// Deletes the scratch space the attempt keeps on the store, if it does.
    pub(super) async fn clear_scratch(&self) -> Result<(), StoreError> {
        match self.work_space {
            Some(_) => Ok(()),
            None => delete_tree(&self.work).await,
        }
    }
}

/// What went wrong with an object store, and what to check.
pub(crate) fn advice(err: &object_store::Error) -> String {
    use object_store::Error as E;
    let text = err.to_string();
    let first_line = text.lines().next().unwrap_or_default();
    let short: String = first_line.chars().take(300).collect();
    let check = match err {
        // Writes only fail with "not found" when there is no bucket to write into.
        E::NotFound { .. } if text.contains("PUT ") => {
            "the bucket does not exist: check the bucket name in the URI"
        }
        E::NotFound { .. } => "not found",
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            "access denied: check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, GOOGLE_SERVICE_ACCOUNT, AZURE_STORAGE_ACCOUNT_KEY, …) and the bucket's permissions"
        }
        _ if text.contains("NoSuchBucket") || text.contains("bucket does not exist") => {
            "the bucket does not exist: check the bucket name in the URI"
        }
        _ if text.contains("AccessDenied")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
            || text.contains("403 Forbidden") =>
        {
            "access denied: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's permissions"
        }
        _ if text.contains("error sending request")
            || text.contains("onnect")
            || text.contains("timed out")
            || text.contains("dns") =>
        {
            "cannot reach the store: check the endpoint (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP for http://), the network, and --store-timeout"
        }
        _ => "check the URI, the credentials and the endpoint",
    };
    format!("{check} ({short})")
}

/// The bytes of a file (local or on a store).
pub(super) async fn get(file: &Folder) -> Result<Bytes, StoreError> {
    let read = async { file.store().get(file.path()).await?.bytes().await };
    read.await
        .map_err(|e| StoreError::object("reading", file, e))
}

pub(super) async fn put(file: &Folder, bytes: Vec<u8>) -> Result<(), StoreError> {
    file.store()
        .put(file.path(), PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|e| StoreError::object("writing", file, e))
}

/// Writes `value` at `file` only if it is still at `version` (`None`: only if absent).
async fn put_if(
    file: &Folder,
    value: &impl Serialize,
    version: Option<UpdateVersion>,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).expect("pointers serialize");
    let mode = match version {
        Some(version) => PutMode::Update(version),
        None => PutMode::Create,
    };
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    match file
        .store()
        .put_opts(file.path(), PutPayload::from(bytes), options)
        .await
    {
        Ok(_) => Ok(()),
        Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
            Err(StoreError::Object {
                action: "publishing".into(),
                uri: file.to_string(),
                problem: "it changed while this run was writing (another process publishes to this pipeline without its lock); nothing was published".into(),
            })
        }
        Err(e) => Err(StoreError::object("publishing", file, e)),
    }
}

/// A JSON object and its version, or `None` when it does not exist.
async fn read_versioned<T: serde::de::DeserializeOwned>(
    file: &Folder,
) -> Result<Option<(T, UpdateVersion)>, StoreError> {
    let result = match file.store().get(file.path()).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(StoreError::object("reading", file, e)),
    };
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    let bytes = result
        .bytes()
        .await
        .map_err(|e| StoreError::object("reading", file, e))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
        path: file.to_string(),
        message: e.to_string(),
    })?;
    Ok(Some((value, version)))
}

fn date_folder(root: &Folder, date: NaiveDate) -> Folder {
    root.join(&format!("runs/run_date={date}"))
}

fn pointer(root: &Folder, date: NaiveDate) -> Folder {
    date_folder(root, date).join("published.json")
}

/// Dates whose pointer exists, oldest first.
pub(super) async fn published_dates(root: &Folder) -> Result<Vec<NaiveDate>, StoreError> {
    let candidates = (list_prefixes(&root.join("runs"), "run_date=").await?.iter())
        .filter_map(|date| NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
        .collect::<Vec<_>>();
    let checks = futures::stream::iter(candidates)
        .map(|date| async move {
            let file = pointer(root, date);
            match file.store().head(file.path()).await {
                Ok(_) => Ok(Some(date)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(StoreError::object("reading", &file, e)),
            }
        })
        .buffer_unordered(16);
    let mut dates: Vec<NaiveDate> = checks
        .try_filter_map(|d| async move { Ok(d) })
        .try_collect()
        .await?;
    dates.sort();
    Ok(dates)
}

/// Every attempt under `runs/` but the dates' published runs and `running` (the attempt of
/// the run in progress): the replaced runs kept readable, and what killed runs left.
pub(super) async fn unpublished_attempts(
    root: &Folder,
    running: &Folder,
) -> Result<Vec<Folder>, StoreError> {
    let runs = root.join("runs");
    let dates = list_prefixes(&runs, "run_date=").await?;
    let mut attempts = Vec::new();
    for date in dates {
        let folder = runs.join(&format!("run_date={date}"));
        let published: Option<(Pointer, UpdateVersion)> =
            read_versioned(&folder.join("published.json")).await?;
        let published = published.map(|(p, _)| p.run_id);
        for id in list_prefixes(&folder, "run=").await? {
            let attempt = folder.join(&format!("run={id}"));
            if published.as_deref() != Some(id.as_str()) && attempt.path() != running.path() {
                attempts.push(attempt);
            }
        }
    }
    Ok(attempts)
}

/// The names after `prefix` of the folders directly below `folder` that start with it.
async fn list_prefixes(folder: &Folder, prefix: &str) -> Result<Vec<String>, StoreError> {
    let listed = folder
        .store()
        .list_with_delimiter(Some(folder.path()))
        .await
        .map_err(|e| StoreError::object("listing", folder, e))?;
    Ok((listed.common_prefixes.iter())
        .filter_map(|p| Some(p.filename()?.strip_prefix(prefix)?.to_string()))
        .collect())
}

pub(super) async fn published_run(
    root: &Folder,
    date: NaiveDate,
) -> Result<Option<Folder>, StoreError> {
    let current: Option<(Pointer, UpdateVersion)> = read_versioned(&pointer(root, date)).await?;
    Ok(current.map(|(p, _)| root.join(&p.path)))
}

pub(super) async fn stage(
    root: &Folder,
    date: NaiveDate,
    run_id: &str,
    scratch: super::Scratch,
) -> Result<super::Staged, StoreError> {
    let replaces = read_versioned(&pointer(root, date)).await?;
    let run = date_folder(root, date).join(&format!("run={run_id}"));
    let (work, work_space) = match scratch {
        super::Scratch::Here => {
            let space = super::Space::create(run_id)?;
            (Folder::local(space.path()), Some(space))
        }
        super::Scratch::Shared => (run.join(SCRATCH), None),
    };
    Ok(super::Staged::Remote(Attempt {
        run,
        work,
        work_space,
        replaces,
    }))
}

/// The folder of an attempt's scratch tables when a cluster writes them.
const SCRATCH: &str = ".scratch";

/// Copies every object below `from` to the same place below `to` (on the store, no download).
pub(super) async fn copy_tree(from: &Folder, to: &Folder) -> Result<(), StoreError> {
    let files = from
        .files()
        .await
        .map_err(|e| StoreError::object("listing", from, e))?;
    for meta in files {
        let target = to.join(&from.relative(&meta.location));
        from.store()
            .copy(&meta.location, target.path())
            .await
            .map_err(|e| StoreError::object("copying", &target, e))?;
    }
    Ok(())
}

/// Deletes every object at or below `folder`.
pub(super) async fn delete_tree(folder: &Folder) -> Result<(), StoreError> {
    let files = folder
        .files()
        .await
        .map_err(|e| StoreError::object("listing", folder, e))?;
    for meta in files {
        folder
            .store()
            .delete(&meta.location)
            .await
            .map_err(|e| StoreError::object("deleting", folder, e))?;
    }
    Ok(())
}

pub(super) async fn keep_blocked<M: Serialize>(
    attempt: &Attempt,
    target: &Folder,
    report: &M,
) -> Result<(), StoreError> {
    delete_tree(target).await?;
    // The report first: stopped while copying the samples, the blocked run is still listed.
    super::write_json(&target.join("report.json"), report).await?;
    let checks = attempt.run.join("checks");
    copy_tree(&checks, &target.join("checks")).await?;
    delete_tree(&attempt.run).await
}

/// Points the date at the staged attempt (conditionally on the pointer read when the run
/// started), then `latest.json` when the date is the newest, then deletes attempts of the date
/// that are neither published nor among the last `keep_replaced` replaced ones.
pub(super) async fn publish(
    store: &PipelineStore,
    attempt: &Attempt,
    date: NaiveDate,
    latest: impl FnOnce(String) -> Latest,
    keep_replaced: usize,
) -> Result<bool, StoreError> {
    let root = &store.root;
    let run_id = attempt
        .run
        .path()
        .filename()
        .unwrap_or_default()
        .trim_start_matches("run=");
    let path = format!("runs/run_date={date}/run={run_id}");
    let (mut replaced, version) = match &attempt.replaces {
        Some((pointer, version)) => {
            let older = pointer.replaced.iter().cloned();
            let all: Vec<String> = std::iter::once(pointer.run_id.clone())
                .chain(older)
                .collect();
            (all, Some(version.clone()))
        }
        None => (Vec::new(), None),
    };
    replaced.truncate(keep_replaced);
    let published = Pointer {
        run_id: run_id.to_string(),
        path: path.clone(),
        replaced: replaced.clone(),
        published_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let pointer_file = pointer(root, date);
    put_if(&pointer_file, &published, version).await?;
    // Published: what fails from here on must not read as "nothing was published".
    let after = |step: &'static str| {
        let pointer = pointer_file.to_string();
        move |source: StoreError| StoreError::AfterPublish {
            date,
            pointer,
            step,
            source: Box::new(source),
        }
    };
    super::failpoint("after-publish")
        .await
        .map_err(after("updating latest.json"))?;
    let is_latest = published_dates(root)
        .await
        .map_err(after("updating latest.json"))?
        .last()
        == Some(&date);
    if is_latest {
        let file = root.join("latest.json");
        let current: Option<(Latest, UpdateVersion)> = read_versioned(&file)
            .await
            .map_err(after("updating latest.json"))?;
        put_if(&file, &latest(path), current.map(|(_, v)| v))
            .await
            .map_err(after("updating latest.json"))?;
    }
    let keep: Vec<String> = std::iter::once(run_id.to_string())
        .chain(replaced)
        .collect();
    remove_other_attempts(&date_folder(root, date), &keep)
        .await
        .map_err(after("deleting the date's other attempts"))?;
    Ok(is_latest)
}

async fn remove_other_attempts(date: &Folder, keep: &[String]) -> Result<(), StoreError> {
    for id in list_prefixes(date, "run=").await? {
        if !keep.contains(&id) {
            delete_tree(&date.join(&format!("run={id}"))).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn a_store_error_is_told_by_its_status_not_by_digits_elsewhere_in_it() {
        // An unreachable endpoint whose retries took 403 ms.
        let refused = generic(
            "Error performing PUT http://127.0.0.1:9/b/.lock in 403.215504ms, after 3 retries, \
             max_retries: 3, retry_timeout: 2s  - HTTP error: error sending request",
        );
        assert!(advice(&refused).starts_with("cannot reach the store"));
        let forbidden = generic(
            "Error performing PUT http://127.0.0.1:9/b/.lock in 12ms - Server returned non-2xx \
             status code: 403 Forbidden: ",
        );
        assert!(advice(&forbidden).starts_with("access denied"));
    }
}
