//! Writing the pages people read: each run's `report.html` (staged with the run, so it is
//! published with it) and the pipeline's `index.html`.

use chrono::NaiveDate;

use super::RunError;
use crate::objects::Folder;
use crate::pipeline::Pipeline;
use crate::report::{IndexEntry, Manifest, ReportInput, index, render};
use crate::store::{PipelineStore, Purpose, StoreError, write_text};

/// Runs shown over time in a run's page.
const HISTORY: usize = 30;
/// Runs listed in the index.
const INDEXED: usize = 120;

/// The page of the run `manifest` describes, with the published runs before it.
pub(crate) async fn page(
    store: &PipelineStore,
    pipeline: &Pipeline,
    manifest: &Manifest,
) -> Result<String, StoreError> {
    let dates = store.published_dates().await?;
    let earlier: Vec<NaiveDate> = dates
        .into_iter()
        .filter(|d| *d < manifest.run_date)
        .collect();
    let mut history = Vec::new();
    for date in earlier.iter().rev().take(HISTORY).rev() {
        history.push(store.read_manifest::<Manifest>(*date).await?);
    }
    Ok(render(&ReportInput {
        manifest,
        history: &history,
        pipeline,
    }))
}

/// Writes `index.html`: published and blocked runs, newest first.
pub(crate) async fn write_index(store: &PipelineStore) -> Result<(), StoreError> {
    let mut entries = Vec::new();
    for date in store.published_dates().await?.iter().rev().take(INDEXED) {
        if let Some(run) = store.published_run(*date).await? {
            let manifest: Manifest = store.read_manifest(*date).await?;
            let report = store.relative(&run.join("report.html"));
            entries.push(IndexEntry { manifest, report });
        }
    }
    for date in store.blocked_dates().await?.iter().rev().take(INDEXED) {
        // A blocked attempt matters until a later run of its date was published. One whose
        // report cannot be read (its writing was stopped) is left out of the index.
        let manifest: Manifest = match store.read_blocked(*date).await {
            Ok(manifest) => manifest,
            Err(err) => {
                tracing::warn!(%date, error = %err, "a blocked run's report cannot be read");
                continue;
            }
        };
        let replaced = entries
            .iter()
            .any(|e| e.manifest.run_date == *date && e.manifest.started_at > manifest.started_at);
        if !replaced {
            let report = store.relative(&store.blocked_folder(*date).join("report.html"));
            entries.push(IndexEntry { manifest, report });
        }
    }
    entries.sort_by(|a, b| {
        (b.manifest.run_date, b.manifest.started_at)
            .cmp(&(a.manifest.run_date, a.manifest.started_at))
    });
    write_text(
        &store.root().join("index.html"),
        index(&store_name(store), &entries),
    )
    .await
}

fn store_name(store: &PipelineStore) -> String {
    store
        .root()
        .path()
        .filename()
        .unwrap_or_default()
        .to_string()
}

/// `segflow report`: rebuilds the page of the run published for `date` (default: the newest)
/// and the index; returns the page's location. It holds the pipeline's lock, so that a run
/// publishing meanwhile cannot have its page or the index written over by older ones.
pub async fn rebuild(pipeline: &Pipeline, date: Option<NaiveDate>) -> Result<String, RunError> {
    let stores = pipeline.open_stores(crate::objects::DEFAULT_TIMEOUT)?;
    let store = pipeline.store(&stores);
    // Nothing to rebuild: said without taking the lock, which would make the pipeline's folder.
    if store.published_dates().await?.is_empty() && store.blocked_dates().await?.is_empty() {
        return rebuild_locked(&store, pipeline, date).await;
    }
    let today = chrono::Utc::now().date_naive();
    let report_id = format!("{}-report", super::new_run_id());
    let lock = store
        .lock(date.unwrap_or(today), &report_id, Purpose::Report)
        .await?;
    let rebuilt = rebuild_locked(&store, pipeline, date).await;
    lock.release().await;
    rebuilt
}

async fn rebuild_locked(
    store: &PipelineStore,
    pipeline: &Pipeline,
    date: Option<NaiveDate>,
) -> Result<String, RunError> {
    let blocked = store.blocked_dates().await?;
    let date = match date {
        Some(date) => date,
        None => match store.published_dates().await?.last() {
            Some(date) => *date,
            None => {
                return Err(RunError::NothingPublished {
                    root: store.root().to_string(),
                    blocked: if blocked.is_empty() {
                        String::new()
                    } else {
                        date_list(&blocked)
                    },
                });
            }
        },
    };
    let (manifest, folder): (Manifest, Folder) = match store.published_run(date).await? {
        Some(run) => (store.read_manifest(date).await?, run),
        None if blocked.contains(&date) => {
            (store.read_blocked(date).await?, store.blocked_folder(date))
        }
        None => {
            return Err(RunError::NoRun {
                date,
                published: date_list(&store.published_dates().await?),
                blocked: date_list(&blocked),
            });
        }
    };
    let html = page(store, pipeline, &manifest).await?;
    let file = folder.join("report.html");
    write_text(&file, html).await?;
    write_index(store).await?;
    Ok(file.to_string())
}

/// Dates for a message: `none`, the one date, or the first and the last and how many.
fn date_list(list: &[NaiveDate]) -> String {
    match list {
        [] => "none".to_string(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first} to {last}, {} dates", list.len()),
    }
}
