//! Running a feature: from the previous run's state and the days that changed, or from all its
//! events when there is no usable state. See the module above for the arithmetic.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{Datelike, Days, NaiveDate};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::info;

use super::{DAY, Feature, ROWS, date_literal};
use crate::engine::{self, EngineError, PlanError, TableLayout};
use crate::erasure::{self, not_erased};
use crate::location::Location;
use crate::objects::Folder;
use crate::sql::{Params, ident};
use crate::store::{self, Output, OutputKind, RunDirs, StoreError, Written};

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a run brought a feature up to date, as its manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureMaintenance {
    pub feature: String,
    /// `incremental` or `full`.
    pub mode: String,
    /// Why the features were computed from all events (first run, `--full-refresh`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The run whose state this one continued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_run: Option<NaiveDate>,
    /// Days of events read (the changed days when incremental).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_read: Vec<NaiveDate>,
    pub rows: u64,
    /// Milliseconds spent on the totals: computing them from the events, or updating the
    /// previous ones with the days that changed or left a window.
    #[serde(default)]
    pub totals_ms: u64,
    /// Milliseconds spent writing per-day partials: every day of the longest window when
    /// computed from the events (the state a first run leaves for the days to come, which
    /// recomputing the features alone would not write), the changed days when incremental.
    #[serde(default)]
    pub days_ms: u64,
}

/// What a feature's run left in the run folder.
pub(crate) struct FeatureRun {
    pub(crate) outputs: Vec<Output>,
    pub(crate) maintenance: FeatureMaintenance,
}

/// The state's description, next to its tables.
#[derive(Debug, Serialize, Deserialize)]
struct StateInfo {
    /// A hash of everything the totals depend on: the generated SQL and the parameters it uses.
    definition: String,
    run_date: NaiveDate,
    /// The days with a partials folder.
    days: Vec<NaiveDate>,
}

/// Where a run keeps a feature's state, relative to the run folder.
fn state_dir(feature: &Feature) -> String {
    format!("state/features/{}", feature.name)
}

fn day_dir(day: NaiveDate) -> String {
    format!("days/{DAY}={day}")
}

/// What a run needs to bring a feature up to date.
pub(crate) struct Inputs<'a> {
    pub(crate) ctx: &'a SessionContext,
    /// The pipeline's key, when the feature is kept per it (erased keys are left out).
    pub(crate) key: Option<&'a str>,
    pub(crate) params: &'a Params,
    pub(crate) dirs: RunDirs<'a>,
    pub(crate) full_refresh: bool,
}

/// Plans every part of a feature on its own, so that a mistake is reported at its line in the
/// pipeline file rather than in the SQL segflow generates from it.
pub(crate) async fn check_plan(
    ctx: &SessionContext,
    feature: &Feature,
    params: &Params,
) -> Result<(), PlanError> {
    let what = format!("feature {}", feature.name);
    let source = ident(&feature.source);
    let mut pieces: Vec<(String, &Location)> = vec![
        (feature.keys(), &feature.key_at),
        (ident(&feature.time), &feature.time_at),
    ];
    if let Some(filter) = &feature.filter {
        pieces.push((format!("({}) AS f", filter.sql), &filter.at));
    }
    for aggregate in &feature.aggregates {
        if let Some(column) = &aggregate.column {
            pieces.push((ident(&column.sql), &column.at));
        }
        if let Some(filter) = &aggregate.filter {
            pieces.push((format!("({}) AS f", filter.sql), &filter.at));
        }
    }
    for (select, at) in pieces {
        let sql = format!("SELECT {select} FROM {source}");
        let df = engine::plan_located(ctx, &sql, params, at, &what).await?;
        if let Some((column, file)) = missing_in_a_file(&df) {
            return Err(PlanError::Invalid {
                at: at.clone(),
                what,
                problem: format!(
                    "{} has no column {column} in {file}, though other files have it: the feature would count its events as if {column} were NULL; fix the file, or declare {column} under the source's columns: to check every file",
                    feature.source
                ),
            });
        }
    }
    let sql = feature.query_text();
    engine::plan_located(ctx, &sql, params, &feature.at, &what).await?;
    Ok(())
}

/// A column of the source the planned `df` reads that some of the source's files lack, and the
/// first of them (see `sources::MISSING_IN`).
fn missing_in_a_file(df: &datafusion::prelude::DataFrame) -> Option<(String, String)> {
    use datafusion::common::ExprSchema;
    use datafusion::logical_expr::LogicalPlan;
    let LogicalPlan::Projection(projection) = df.logical_plan() else {
        return None;
    };
    let input = projection.input.schema();
    projection
        .expr
        .iter()
        .flat_map(|expr| expr.column_refs())
        .find_map(|column| {
            let field = input.field_from_column(column).ok()?;
            let file = field.metadata().get(crate::sources::MISSING_IN)?;
            Some((column.name.clone(), file.clone()))
        })
}

/// Brings `feature` up to date for the run's date and registers it under its name.
pub(crate) async fn run(
    feature: &Feature,
    publish: bool,
    inputs: &Inputs<'_>,
) -> Result<FeatureRun, FeatureError> {
    check_plan(inputs.ctx, feature, inputs.params).await?;
    let feature = &feature.with_clock(inputs.ctx).await;
    let date = inputs.params.run_date();
    let definition = definition(feature, inputs.params);
    let state = inputs.dirs.run_dir.join(&state_dir(feature));
    let previous = previous_state(feature, inputs, &definition, date).await?;
    let key = inputs.key.filter(|k| feature.key.iter().any(|c| c == k));
    let job = Job {
        feature,
        inputs,
        state: &state,
        date,
        key,
    };
    let (days, totals, mut maintenance) = match previous {
        Ok(previous) => job.incremental(&previous).await?,
        Err(reason) => job.full(reason).await?,
    };
    let info = StateInfo {
        definition,
        run_date: date,
        days,
    };
    store::write_json(&state.join("feature.json"), &info).await?;

    let what = format!("feature {}", feature.name);
    let totals_dir = state.join("totals");
    let totals_table = format!("__segflow_feature_{}", feature.name);
    engine::register_parquet(inputs.ctx, &totals_table, &totals_dir).await?;
    let rows = totals.rows();
    let df = engine::plan_step(
        inputs.ctx,
        &what,
        &feature.projection(&totals_table),
        inputs.params,
    )
    .await?;
    engine::register_view(inputs.ctx, &what, &feature.name, df)?;
    let relative = format!("{}/totals", state_dir(feature));
    let mut outputs = vec![totals.into_output(
        &format!("feature_{}", feature.name),
        OutputKind::State,
        &relative,
    )];
    if publish {
        let relative = format!("models/{}", feature.name);
        let sql = format!(
            "SELECT * FROM {} ORDER BY {}",
            ident(&feature.name),
            feature.keys()
        );
        let dir = inputs.dirs.run_dir.join(&relative);
        let layout = TableLayout::published(None, date);
        let written = engine::write_query(
            inputs.ctx,
            &what,
            &sql,
            inputs.params,
            &dir,
            inputs.dirs.run_dir,
            layout,
        )
        .await?;
        outputs.push(written.into_output(&feature.name, OutputKind::Model, &relative));
    }
    maintenance.rows = rows;
    info!(
        feature = %feature.name,
        mode = %maintenance.mode,
        days_read = maintenance.days_read.len(),
        rows,
        "feature up to date"
    );
    Ok(FeatureRun {
        outputs,
        maintenance,
    })
}

/// The per-day partials folder beside a feature's totals (`state/features/<name>/totals`).
pub(crate) fn days_beside(totals: &str) -> Option<String> {
    let state = totals.strip_suffix("/totals")?;
    state
        .starts_with("state/features/")
        .then(|| format!("{state}/days"))
}

/// Rewrites a feature's per-day partials without erased keys, from a published run into a
/// staged copy of it (whose `days/` folder is empty), and updates the state's list of days.
pub(crate) async fn scrub_days(
    ctx: &SessionContext,
    published: &Folder,
    staged: &Folder,
    totals: &str,
    key: &str,
    params: &Params,
) -> Result<(), FeatureError> {
    let Some(days) = days_beside(totals) else {
        return Ok(());
    };
    let state = days.trim_end_matches("/days");
    let info_file = format!("{state}/feature.json");
    let mut info: StateInfo = store::read_json(&published.join(&info_file)).await?;
    if info.days.is_empty() {
        return Ok(());
    }
    let table = "__segflow_scrub_days";
    let sql = format!("SELECT * FROM {table} WHERE {}", not_erased(&ident(key)));
    let target = staged.join(&days);
    let mut kept = Vec::with_capacity(info.days.len());
    // A month at a time, as they were written: every day of one query keeps a writer open.
    for month in info
        .days
        .chunk_by(|a, b| (a.year(), a.month()) == (b.year(), b.month()))
    {
        let folders: Vec<Folder> = month
            .iter()
            .map(|d| published.join(&format!("{state}/{}", day_dir(*d))))
            .collect();
        engine::register_parquet_folders(ctx, "erasure", table, &folders).await?;
        let df = engine::plan_step(ctx, "erasure", &sql, params).await?;
        kept.extend(engine::write_frame_by_day("erasure", df, DAY, &target, staged).await?);
    }
    info.days = kept;
    store::write_json(&staged.join(&info_file), &info).await?;
    Ok(())
}

/// A hash of what the feature's values depend on; a state made under another definition is not
/// continued from.
fn definition(feature: &Feature, params: &Params) -> String {
    let text = feature.query_text();
    let mut hash = Sha256::new();
    hash.update(b"segflow feature state 1\n");
    hash.update(text.as_bytes());
    hash.update(format!("\nsource {}", feature.source_declared).as_bytes());
    // Zoned times in month partitions: states made before the months were chosen a day wider
    // on each side missed the zone's days at a month's edge.
    if matches!(feature.clock, super::Clock::Zoned { .. }) && feature.year_month_partitions {
        hash.update(b"\nzoned months widened");
    }
    for (name, value) in params.to_json() {
        if name != "run_date" && uses_param(&text, &name) {
            hash.update(format!("\n{name}={value}").as_bytes());
        }
    }
    format!("{:x}", hash.finalize())
}

/// Whether `text` names `$name` itself, not a longer parameter it begins (`$min_spend`).
fn uses_param(text: &str, name: &str) -> bool {
    let placeholder = format!("${name}");
    text.match_indices(&placeholder).any(|(at, _)| {
        let next = text[at + placeholder.len()..].chars().next();
        !next.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The previous run's state, or why the feature is computed from its events instead.
async fn previous_state(
    feature: &Feature,
    inputs: &Inputs<'_>,
    definition: &str,
    date: NaiveDate,
) -> Result<Result<(Folder, StateInfo), String>, FeatureError> {
    if inputs.full_refresh {
        return Ok(Err("--full-refresh".into()));
    }
    let Some(previous_run) = inputs.dirs.previous_run else {
        return Ok(Err("no earlier run".into()));
    };
    let Some(file) = inputs
        .dirs
        .previous(&format!("{}/feature.json", state_dir(feature)))
        .await?
    else {
        return Ok(Err("the previous run has no state for this feature".into()));
    };
    let info: StateInfo = store::read_json(&file).await?;
    if info.definition != definition {
        return Ok(Err(
            "the feature's definition or parameters changed since the previous run".into(),
        ));
    }
    if info.run_date >= date {
        return Ok(Err("the previous run is not earlier".into()));
    }
    Ok(Ok((previous_run.join(&state_dir(feature)), info)))
}

/// One feature's work in one run.
struct Job<'a> {
    feature: &'a Feature,
    inputs: &'a Inputs<'a>,
    /// The feature's state folder in the staged run.
    state: &'a Folder,
    date: NaiveDate,
    /// The pipeline's key, when the feature is kept per it (erased keys are left out).
    key: Option<&'a str>,
}

impl Job<'_> {
    fn what(&self) -> String {
        format!("feature {}", self.feature.name)
    }

    /// The first day of the longest window, if there are windows.
    fn first_kept_day(&self) -> Option<NaiveDate> {
        let longest = self.feature.longest_window();
        (longest > 0).then(|| self.date - Days::new(u64::from(longest) - 1))
    }

    /// ` WHERE <key not erased>`, hashing each row's key, when the feature is kept per the
    /// pipeline's key.
    fn erased(&self) -> Option<String> {
        self.key
            .map(|k| format!(" WHERE {}", not_erased(&ident(k))))
    }

    fn kept(&self, sql: String) -> String {
        kept_by(sql, self.erased().as_deref())
    }

    /// Where [`Self::write_totals`] sets aside the erased keys it finds.
    fn erased_table(&self) -> String {
        format!("__segflow_feature_{}_erased", self.feature.name)
    }

    /// Everything from the events: the totals, then the partials of the longest window as the
    /// state keeps them (only what a later run may take away from a total).
    async fn full(
        &self,
        reason: String,
    ) -> Result<(Vec<NaiveDate>, Written, FeatureMaintenance), FeatureError> {
        let clock = Instant::now();
        let (written, erased) = self.write_totals().await?;
        let totals_ms = elapsed_ms(clock);
        let clock = Instant::now();
        let days = match self.first_kept_day() {
            Some(first) => {
                let state = |from, to| self.feature.state_partials(from, to, self.date);
                let days = self.write_partials(first, erased.as_deref(), state).await;
                // The erased keys are held no longer than needed.
                let _ = self.inputs.ctx.deregister_table(self.erased_table());
                days?
            }
            None => Vec::new(),
        };
        let maintenance = FeatureMaintenance {
            feature: self.feature.name.clone(),
            mode: "full".into(),
            reason: Some(reason),
            from_run: None,
            days_read: Vec::new(),
            rows: 0,
            totals_ms,
            days_ms: elapsed_ms(clock),
        };
        Ok((days, written, maintenance))
    }

    /// Writes the totals from the events, without erased keys, and returns them with the
    /// filter that leaves erased keys out of the partials. In process, the totals (one row per
    /// key, every key of the longest window among them) are where those keys are found: each
    /// row's key is hashed once (1M at 1M customers), the erased ones are kept aside in memory,
    /// and the partials leave them out by a join on the key itself instead of hashing every
    /// event's key (127M). None found, nothing to leave out; nobody ever erased, nothing to
    /// look for. On a cluster every row's key is hashed.
    async fn write_totals(&self) -> Result<(Written, Option<String>), FeatureError> {
        let (what, inputs) = (self.what(), self.inputs);
        let (ctx, params) = (inputs.ctx, inputs.params);
        let totals = self.feature.totals_from_events(Some(self.date));
        let (target, root) = (self.state.join("totals"), inputs.dirs.run_dir);
        let layout = TableLayout::default();
        let key = match self.key {
            Some(key) if !engine::on_cluster(ctx) => key,
            _ => {
                let sql = self.kept(totals);
                let written =
                    engine::write_query(ctx, &what, &sql, params, &target, root, layout).await?;
                return Ok((written, self.erased()));
            }
        };
        if !erasure::any_erased(ctx, params).await? {
            let written =
                engine::write_query(ctx, &what, &totals, params, &target, root, layout).await?;
            return Ok((written, None));
        }
        let table = self.erased_table();
        let sql = erasure::marked(&totals, &ident(key));
        let df = engine::plan_step(ctx, &what, &sql, params).await?;
        let aside = engine::Aside {
            mark: erasure::MARK,
            key,
            table: &table,
        };
        let (written, found) =
            engine::write_frame_setting_aside(ctx, &what, df, &aside, &target, root, layout)
                .await?;
        let filter =
            (found > 0).then(|| format!(" WHERE {}", erasure::not_among(&table, &ident(key))));
        Ok((written, filter))
    }

    /// Partials of the days `from..=date` (`partials` of a range of days), one folder per day
    /// with events, into the state, without the keys `erased` (a filter) leaves out. A calendar
    /// month at a time: a year of (key, day) groups at once would hold tens of millions of
    /// groups in memory, a month a twelfth of that (and reads one month partition).
    async fn write_partials(
        &self,
        from: NaiveDate,
        erased: Option<&str>,
        partials: impl Fn(NaiveDate, NaiveDate) -> String,
    ) -> Result<Vec<NaiveDate>, FeatureError> {
        let mut days = Vec::new();
        let mut start = from;
        while start <= self.date {
            let next_month = start
                .with_day(1)
                .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
                .unwrap_or(self.date.succ_opt().unwrap_or(self.date));
            let end = next_month.pred_opt().unwrap_or(next_month).min(self.date);
            let sql = kept_by(partials(start, end), erased);
            let df =
                engine::plan_step(self.inputs.ctx, &self.what(), &sql, self.inputs.params).await?;
            days.extend(
                engine::write_frame_by_day(
                    &self.what(),
                    df,
                    DAY,
                    &self.state.join("days"),
                    self.inputs.dirs.run_dir,
                )
                .await?,
            );
            if end >= self.date {
                break;
            }
            start = end.succ_opt().unwrap_or(end);
        }
        Ok(days)
    }

    /// From the previous run's totals, adding the changed days and taking away the days that
    /// left a window (and the old version of the changed ones).
    async fn incremental(
        &self,
        (previous, info): &(Folder, StateInfo),
    ) -> Result<(Vec<NaiveDate>, Written, FeatureMaintenance), FeatureError> {
        let inputs = self.inputs;
        let (ctx, name, what) = (inputs.ctx, &self.feature.name, self.what());
        let before = info.run_date;
        // An event that arrived after the previous run happened at most `late_days` before it
        // arrived: the days from the previous run's date + 1 - late_days on may have changed.
        let changed_from =
            before.succ_opt().unwrap_or(before) - Days::new(u64::from(self.feature.late_days));

        let new_table = format!("__segflow_feature_{name}_new");
        let clock = Instant::now();
        let (new_days, new_rows) = self.new_partials(changed_from, &new_table).await?;
        let days_ms = elapsed_ms(clock);
        let clock = Instant::now();
        let old_table = format!("__segflow_feature_{name}_old");
        let old_folders: Vec<Folder> = self
            .old_days_needed(info, changed_from)
            .map(|d| previous.join(&day_dir(d)))
            .collect();
        let old_rows = register_days(ctx, &what, &old_table, &old_folders).await?;
        let previous_table = format!("__segflow_feature_{name}_previous");
        engine::register_parquet(ctx, &previous_table, &previous.join("totals")).await?;

        let sql = self.kept(self.update_sql(
            &previous_table,
            new_rows.then_some(new_table.as_str()),
            old_rows.then_some(old_table.as_str()),
            before,
            changed_from,
        ));
        let written = engine::write_query(
            ctx,
            &what,
            &sql,
            inputs.params,
            &self.state.join("totals"),
            inputs.dirs.run_dir,
            TableLayout::default(),
        )
        .await?;
        let totals_ms = elapsed_ms(clock);

        // Changed days before the longest window were read for this update (an all-time `max`
        // or `min` takes a late event of any day) but no later run takes them away: they are
        // not kept, so the state holds no key the totals do not (the erasure of earlier runs
        // looks for erased keys in their totals).
        let first = self.first_kept_day();
        let (new_days, outside): (Vec<NaiveDate>, Vec<NaiveDate>) =
            (new_days.into_iter()).partition(|d| first.is_none_or(|first| *d >= first));
        for day in outside {
            store::delete_folder(&self.state.join(&day_dir(day))).await?;
        }
        let mut days = self
            .carry(previous, info, changed_from, &previous_table)
            .await?;
        days.extend(new_days);
        let maintenance = FeatureMaintenance {
            feature: name.clone(),
            mode: "incremental".into(),
            reason: None,
            from_run: Some(before),
            days_read: date_range(changed_from, self.date),
            rows: 0,
            totals_ms,
            days_ms,
        };
        Ok((days, written, maintenance))
    }

    /// The partials of the changed days, from the events (the only scan of the source), written
    /// into the state and registered as `table`; the days written, and whether there are any.
    async fn new_partials(
        &self,
        changed_from: NaiveDate,
        table: &str,
    ) -> Result<(Vec<NaiveDate>, bool), FeatureError> {
        let inputs = self.inputs;
        if self.first_kept_day().is_none() {
            // Only all-time aggregates: nothing is kept per day.
            let sql = self.kept(self.feature.partials(changed_from, self.date));
            let dir = inputs.dirs.work_dir;
            engine::materialize(inputs.ctx, &self.what(), &sql, inputs.params, dir, table).await?;
            return Ok((Vec::new(), true));
        }
        // Whole: this run's update reads them, `max` and `min` too.
        let whole = |from, to| self.feature.partials(from, to);
        let days = (self.write_partials(changed_from, self.erased().as_deref(), whole)).await?;
        let folders: Vec<Folder> = days.iter().map(|d| self.state.join(&day_dir(*d))).collect();
        let any = register_days(inputs.ctx, &self.what(), table, &folders).await?;
        Ok((days, any))
    }

    /// Days of the previous state whose partials the update takes away: those that left a
    /// window since, and the old version of those recomputed.
    fn old_days_needed<'b>(
        &self,
        info: &'b StateInfo,
        changed_from: NaiveDate,
    ) -> impl Iterator<Item = NaiveDate> + 'b {
        let windows: BTreeSet<u32> = self
            .feature
            .aggregates
            .iter()
            .flat_map(|a| a.windows.iter().copied())
            .collect();
        let (before, date) = (info.run_date, self.date);
        let left = move |d: NaiveDate, w: u32| {
            let leaves = d + Days::new(u64::from(w));
            leaves > before && leaves <= date
        };
        info.days
            .iter()
            .copied()
            .filter(move |d| *d >= changed_from || windows.iter().any(|w| left(*d, *w)))
    }

    /// Carries the previous state's days still in the longest window and not recomputed into
    /// this run's state, unchanged — or without anyone erased since, when the previous totals
    /// (which hold every key of those days) hold an erased key. Returns the days carried.
    async fn carry(
        &self,
        previous: &Folder,
        info: &StateInfo,
        changed_from: NaiveDate,
        previous_totals: &str,
    ) -> Result<Vec<NaiveDate>, FeatureError> {
        let Some(first) = self.first_kept_day() else {
            return Ok(Vec::new());
        };
        let inputs = self.inputs;
        let carried: Vec<NaiveDate> = info
            .days
            .iter()
            .copied()
            .filter(|d| *d >= first && *d < changed_from)
            .collect();
        let scrub_key = match inputs.key {
            Some(key) if self.key.is_some() => {
                erasure::holds_erased(inputs.ctx, previous_totals, key, inputs.params)
                    .await?
                    .then_some(key)
            }
            _ => None,
        };
        for day in &carried {
            let from = previous.join(&day_dir(*day));
            let to = self.state.join(&day_dir(*day));
            match scrub_key {
                Some(key) => {
                    let table = format!("__segflow_feature_{}_carried", self.feature.name);
                    engine::register_parquet(inputs.ctx, &table, &from).await?;
                    let run_dir = inputs.dirs.run_dir;
                    erasure::rewrite_without_erased(
                        inputs.ctx,
                        &table,
                        key,
                        inputs.params,
                        &to,
                        run_dir,
                    )
                    .await?;
                }
                None => store::copy_folder(&from, &to).await?,
            }
        }
        Ok(carried)
    }

    /// The new totals: previous totals, plus the changed days' partials inside each window, minus
    /// the old partials that left a window or were recomputed. Keys left with no event in the
    /// longest window drop out (unless an all-time aggregate keeps them).
    fn update_sql(
        &self,
        previous: &str,
        new: Option<&str>,
        old: Option<&str>,
        before: NaiveDate,
        changed_from: NaiveDate,
    ) -> String {
        let feature = self.feature;
        let day = ident(DAY);
        let since = |d: NaiveDate, w: u32| date_literal(d - Days::new(u64::from(w) - 1));
        let until = |d: NaiveDate, w: u32| date_literal(d - Days::new(u64::from(w)));
        let changed = date_literal(changed_from);
        let longest = feature.longest_window();
        let keys = feature.keys();
        // A windowed column: a changed day's partial counts when inside the window; an old
        // partial is taken away when it was inside the previous window and has left it since, or
        // was recomputed; the total sums them with the previous total.
        let windowed = |partial: &str, column: &str, w: u32| {
            [
                format!(
                    "CASE WHEN {day} >= {} THEN {partial} END AS {column}",
                    since(self.date, w)
                ),
                format!(
                    "-(CASE WHEN {day} >= {} AND ({day} <= {} OR {day} >= {changed}) THEN {partial} END) AS {column}",
                    since(before, w),
                    until(self.date, w)
                ),
                format!("COALESCE(SUM({column}), 0) AS {column}"),
            ]
        };

        let mut previous_cols = vec![keys.clone()];
        let mut new_cols = vec![keys.clone()];
        let mut old_cols = vec![keys.clone()];
        let mut outer = vec![keys.clone()];
        for (aggregate, column, window) in feature.total_columns() {
            let partial = ident(&aggregate.name);
            let column = ident(&column);
            previous_cols.push(column.clone());
            match window {
                Some(w) => {
                    let [new, old, sum] = windowed(&partial, &column, w);
                    new_cols.push(new);
                    old_cols.push(old);
                    outer.push(sum);
                }
                None => {
                    new_cols.push(format!("{partial} AS {column}"));
                    old_cols.push(format!("CASE WHEN false THEN {partial} END AS {column}"));
                    outer.push(format!("{}({column}) AS {column}", aggregate.combine()));
                }
            }
        }
        let mut having = String::new();
        if feature.counts_rows() {
            let rows = ident(ROWS);
            previous_cols.push(rows.clone());
            let [new, old, sum] = windowed(&rows, &rows, longest);
            new_cols.push(new);
            old_cols.push(old);
            outer.push(sum);
            having = format!(" HAVING COALESCE(SUM({rows}), 0) > 0");
        }
        let mut parts = vec![format!(
            "SELECT {} FROM {previous}",
            previous_cols.join(", ")
        )];
        if let Some(new) = new {
            parts.push(format!("SELECT {} FROM {new}", new_cols.join(", ")));
        }
        if let Some(old) = old {
            parts.push(format!("SELECT {} FROM {old}", old_cols.join(", ")));
        }
        format!(
            "SELECT {} FROM ({}) AS changes GROUP BY {keys}{having}",
            outer.join(", "),
            parts.join("\nUNION ALL\n")
        )
    }
}

/// `sql`'s rows that `filter` (` WHERE …`, over its columns) keeps.
fn kept_by(sql: String, filter: Option<&str>) -> String {
    match filter {
        Some(filter) => format!("SELECT * FROM ({sql}) AS kept{filter}"),
        None => sql,
    }
}

fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn date_range(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    from.iter_days().take_while(|d| *d <= to).collect()
}

/// Registers the partials of some days as one table; false when there are none.
async fn register_days(
    ctx: &SessionContext,
    what: &str,
    table: &str,
    folders: &[Folder],
) -> Result<bool, FeatureError> {
    if folders.is_empty() {
        return Ok(false);
    }
    engine::register_parquet_folders(ctx, what, table, folders).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_ranges_include_both_ends() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            date_range(d("2026-11-18"), d("2026-11-20")),
            vec![d("2026-11-18"), d("2026-11-19"), d("2026-11-20")]
        );
        assert!(date_range(d("2026-11-21"), d("2026-11-20")).is_empty());
    }

    #[test]
    fn a_parameter_counts_where_it_is_named_whole() {
        let text = "amount > $min_spend AND n < $max";
        assert!(uses_param(text, "min_spend") && uses_param(text, "max"));
        assert!(!uses_param(text, "min") && !uses_param(text, "max_n"));
    }
}
