//! Runs over many dates: `backfill` (in order, resumable) and rebuilding the dates after a
//! rerun, whose history followed from the date that changed.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, warn};

use super::{Locked, RunError, RunOptions, limited, run_date};
use crate::pipeline::Pipeline;
use crate::store;

/// Why a backfill stopped, with what it had published before.
#[derive(Debug, thiserror::Error)]
#[error(
    "backfill stopped at {date} ({published} of {total} dates published, {skipped} already were){resume}"
)]
pub struct BackfillError {
    pub date: NaiveDate,
    pub published: usize,
    pub skipped: usize,
    pub total: usize,
    /// How to go on, when the error itself does not say.
    pub resume: String,
    #[source]
    pub source: RunError,
}

/// What a backfill did, date by date.
#[derive(Debug, Default)]
pub struct BackfillReport {
    pub published: Vec<NaiveDate>,
    pub skipped: Vec<NaiveDate>,
    /// Published dates after the range, rerun because their history followed from it.
    pub rebuilt: Vec<NaiveDate>,
    /// A rebuild an earlier command left pending, finished first.
    pub finished: Option<Finished>,
}

/// Runs every date from `from` to `to` in order, under the pipeline's lock. Dates already
/// published are skipped unless `rerun`; the first failure stops the backfill, leaving earlier
/// dates published, so running the same command again resumes at the failed date.
pub async fn backfill(
    pipeline: &Pipeline,
    from: NaiveDate,
    to: NaiveDate,
    rerun: bool,
    options: &RunOptions,
    on_date: impl FnMut(NaiveDate, bool),
) -> Result<BackfillReport, BackfillError> {
    let total = from.iter_days().take_while(|d| *d <= to).count();
    let start = RunOptions {
        date: from,
        ..options.clone()
    };
    let work = async {
        let locked = Locked::take(pipeline, &start)
            .await
            .map_err(|source| BackfillError {
                date: from,
                published: 0,
                skipped: 0,
                total,
                resume: String::new(),
                source,
            })?;
        let result = backfill_locked(&locked, from, to, rerun, options, on_date).await;
        locked.release().await;
        result
    };
    work.instrument(info_span!("pipeline", pipeline = %pipeline.name))
        .await
}

async fn backfill_locked(
    locked: &Locked<'_>,
    from: NaiveDate,
    to: NaiveDate,
    rerun: bool,
    options: &RunOptions,
    mut on_date: impl FnMut(NaiveDate, bool),
) -> Result<BackfillReport, BackfillError> {
    let dates: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let mut b = Backfill {
        command: format!("segflow backfill {}", locked.pipeline.file().display()),
        to,
        params: param_args(&options.params),
        total: dates.len(),
        report: BackfillReport::default(),
        published: Vec::new(),
        pending: false,
    };
    b.report.finished = finish_pending_rebuild(locked, options)
        .await
        .map_err(|e| b.fail(from, e))?;
    b.published = (locked.store.published_dates().await).map_err(|e| b.fail(from, e.into()))?;
    for date in &dates {
        // A published date after one this backfill published follows from it, so it is run
        // again, as a rerun rebuilds the dates after it.
        let follows_new = !b.report.published.is_empty() && locked.pipeline.carries_state();
        if !rerun && b.published.contains(date) && !follows_new {
            b.report.skipped.push(*date);
            on_date(*date, false);
            continue;
        }
        // `--full-refresh` recomputes the features of the first date run; the dates after it
        // continue from its state.
        let options = RunOptions {
            date: *date,
            full_refresh: options.full_refresh && b.report.published.is_empty(),
            ..options.clone()
        };
        limited(&options, run_date(locked, &options))
            .await
            .map_err(|e| b.fail(*date, e))?;
        b.report.published.push(*date);
        on_date(*date, true);
        // Dates published before this backfill, after the one it just published, follow
        // from it now: recorded at once, so that a backfill stopped before its end (a date
        // blocked, the process killed) leaves them to the next run to rebuild rather than
        // contradicting the history before them.
        let later = b.published.iter().any(|d| d > date);
        if !b.pending && later && locked.pipeline.carries_state() {
            record_pending(locked, *date, &options.params)
                .await
                .map_err(|e| b.fail(*date, e))?;
            b.pending = true;
        }
    }
    // The dates after the last one published were rebuilt: none is left pending.
    let pending = std::mem::take(&mut b.pending);
    if let Some(last) = b.report.published.last().copied() {
        b.report.rebuilt = rebuild_following(locked, last, options)
            .await
            .map_err(|e| b.fail(last, e))?;
    }
    // Those after the last date it published were rebuilt; those before, run again in order.
    if pending {
        let record = pending_record(locked);
        (store::delete_file(&record).await).map_err(|e| b.fail(to, e.into()))?;
    }
    Ok(b.report)
}

/// A backfill under way: what it has done, and what its error says to do next.
struct Backfill {
    /// `segflow backfill PIPELINE`, to resume with.
    command: String,
    to: NaiveDate,
    /// ` --param …` for every override.
    params: String,
    total: usize,
    report: BackfillReport,
    /// The dates published before this backfill.
    published: Vec<NaiveDate>,
    /// Whether the published dates after one this backfill published are recorded to rebuild.
    pending: bool,
}

impl Backfill {
    /// The backfill stopped at `date` by `source`, and how to go on.
    fn fail(&self, date: NaiveDate, source: RunError) -> BackfillError {
        let Backfill {
            command,
            to,
            params,
            ..
        } = self;
        let resume = match &source {
            RunError::RebuildStopped { .. } => String::new(),
            // The same command would skip it: it was published before this backfill.
            _ if self.published.contains(&date) => format!(
                "; run `{command} --from {date} --to {to} --rerun{params}` to rebuild it and the dates after it"
            ),
            _ => format!("; rerun the same command to resume from {date}"),
        };
        let resume = match self.pending {
            true => format!(
                "{resume}; the runs published after {date} do not follow from the dates this backfill published yet: the pipeline's next run or backfill rebuilds them first"
            ),
            false => resume,
        };
        BackfillError {
            date,
            published: self.report.published.len(),
            skipped: self.report.skipped.len(),
            total: self.total,
            resume,
            source,
        }
    }
}

/// ` --param name=value` for each of `params`, as a shell reads it back.
pub(super) fn param_args(params: &[(String, String)]) -> String {
    let quoted = |text: &str| {
        let plain = |c: char| c.is_ascii_alphanumeric() || "_-.:/@%+=,".contains(c);
        match !text.is_empty() && text.chars().all(plain) {
            true => text.to_string(),
            false => format!("'{}'", text.replace('\'', r"'\''")),
        }
    };
    (params.iter())
        .map(|(name, value)| format!(" --param {}", quoted(&format!("{name}={value}"))))
        .collect()
}

/// Records that the published dates after `date` are to be rebuilt with `params` (see
/// [`finish_pending_rebuild`]).
async fn record_pending(
    locked: &Locked<'_>,
    date: NaiveDate,
    params: &[(String, String)],
) -> Result<(), RunError> {
    let record = pending_record(locked);
    let pending = PendingRebuild {
        after: date,
        params: params.to_vec(),
    };
    store::write_json(&record, &pending).await?;
    Ok(())
}

/// Reruns, in order, every published date after `date` when the pipeline carries history:
/// each run's changes and history are computed against the run before it, so replacing a
/// date invalidates what follows.
pub(super) async fn rebuild_following(
    locked: &Locked<'_>,
    date: NaiveDate,
    options: &RunOptions,
) -> Result<Vec<NaiveDate>, RunError> {
    if !locked.pipeline.carries_state() {
        return Ok(Vec::new());
    }
    let later: Vec<NaiveDate> = locked
        .store
        .published_dates()
        .await?
        .into_iter()
        .filter(|d| *d > date)
        .collect();
    if later.is_empty() {
        return Ok(later);
    }
    // Recorded first: a rebuild stopped before it reports anything is finished by the next run.
    record_pending(locked, date, &options.params).await?;
    let record = pending_record(locked);
    store::failpoint("rebuild").await?;
    let rebuilt = rebuild_dates(locked, date, &later, options).await;
    // Done, or stopped with an error that says how to finish: nothing is left pending. The
    // rebuild's own error comes first.
    let removed = store::delete_file(&record).await;
    rebuilt?;
    removed?;
    Ok(later)
}

/// A rerun's rebuild of the published dates after it, recorded while it runs (see
/// [`finish_pending_rebuild`]). `params` are the rerun's `--param` values.
#[derive(Debug, Serialize, Deserialize)]
struct PendingRebuild {
    after: NaiveDate,
    params: Vec<(String, String)>,
}

/// Where a pending rebuild is recorded, in the pipeline's folder.
const PENDING_REBUILD: &str = "rebuild.json";

fn pending_record(locked: &Locked<'_>) -> crate::objects::Folder {
    locked.store.root().join(PENDING_REBUILD)
}

/// A rebuild left pending, finished before a command's own work.
#[derive(Debug)]
pub struct Finished {
    /// The date the rebuilt runs now follow from.
    pub after: NaiveDate,
    pub rebuilt: Vec<NaiveDate>,
}

/// Finishes the rebuild a rerun or a backfill left when it was stopped (killed, its machine
/// gone, a date of a backfill blocked) before the runs after it followed from it. Every run
/// and backfill calls this under the lock before anything else.
pub(super) async fn finish_pending_rebuild(
    locked: &Locked<'_>,
    options: &RunOptions,
) -> Result<Option<Finished>, RunError> {
    let record = pending_record(locked);
    let Some(pending) = store::read_json_if_any::<PendingRebuild>(&record).await? else {
        return Ok(None);
    };
    warn!(
        after = %pending.after,
        "the runs published after a rerun or a backfill stopped early do not follow from it yet; rebuilding them first"
    );
    let options = RunOptions {
        params: pending.params,
        ..options.clone()
    };
    let rebuilt = rebuild_following(locked, pending.after, &options).await?;
    Ok(Some(Finished {
        after: pending.after,
        rebuilt,
    }))
}

/// Reruns `later`, the published dates after `date`, in order.
async fn rebuild_dates(
    locked: &Locked<'_>,
    date: NaiveDate,
    later: &[NaiveDate],
    options: &RunOptions,
) -> Result<(), RunError> {
    for later_date in later {
        info!(rebuilding = %later_date, after = %date, "rebuilding a later run");
        // Later dates continue from the state of the date just rerun. `--force` was given for
        // that date only: a later date that fails a gate stops the rebuild. Each date gets the
        // whole `--timeout`.
        let options = RunOptions {
            date: *later_date,
            full_refresh: false,
            force: false,
            ..options.clone()
        };
        if let Err(err) = limited(&options, run_date(locked, &options)).await {
            return Err(RunError::RebuildStopped {
                rerun: date,
                stopped: *later_date,
                last: *later.last().unwrap_or(later_date),
                pipeline: locked.pipeline.file().display().to_string(),
                params: param_args(&options.params),
                source: Box::new(err),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::param_args;

    #[test]
    fn parameters_are_given_back_as_a_shell_reads_them() {
        let params = [
            ("big".to_string(), "100".to_string()),
            ("launch".to_string(), "2026-11-01".to_string()),
            ("note".to_string(), "it's late".to_string()),
        ];
        assert_eq!(
            param_args(&params),
            r" --param big=100 --param launch=2026-11-01 --param 'note=it'\''s late'"
        );
    }
}
