//! The segment steps of a run: plan every rule, evaluate today's membership (suppressions
//! applied, groups assigned), then publish audiences, changes, migration and history.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

pub(crate) use super::sql::HELD;
use super::sql::{self, MEMBERS, PREVIOUS, RAW, SIDES};
use super::{Segment, Segments};
use crate::engine::{self, EngineError, Part, PlanError, RuleColumns, TableLayout};
use crate::erasure::{Keep, not_erased};
use crate::location::Location;
use crate::objects::Folder;
use crate::sql::{Params, Rule, ident, idents};
use crate::store::{Output, OutputKind, RunDirs, Written};
use crate::suppressions::{self, Suppression};

#[derive(Debug, thiserror::Error)]
pub enum SegmentsError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the manifest records for one segment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SegmentStats {
    pub name: String,
    pub description: String,
    /// The rule in words: the conditions, or the SQL file.
    pub rule: Vec<String>,
    pub size: u64,
    pub groups: BTreeMap<String, u64>,
    pub added: u64,
    pub removed: u64,
    pub stayed: u64,
}

/// Registers the SQL segments' queries and plans every segment against the profile (and the
/// activation columns audiences copy from it), reading no rows.
pub(crate) async fn plan(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    activation_columns: &[String],
    columns_at: &Location,
    params: &Params,
) -> Result<(), PlanError> {
    plan_rules(ctx, key, segments, params).await?;
    if !activation_columns.is_empty() {
        let sql = format!(
            "SELECT {}, {} FROM {}",
            ident(key),
            idents(activation_columns),
            ident(&segments.from)
        );
        let what = format!(
            "output.columns (columns must exist in the profile model {})",
            segments.from
        );
        engine::plan_located(ctx, &sql, params, columns_at, &what).await?;
    }
    Ok(())
}

/// Registers the SQL segments' queries and plans every segment's rule.
async fn plan_rules(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    params: &Params,
) -> Result<(), PlanError> {
    let what = "segments.from";
    engine::check_key(ctx, &segments.from, key, &segments.from_at, what).await?;
    for segment in &segments.list {
        plan_segment(ctx, key, segments, segment, params).await?;
    }
    Ok(())
}

async fn plan_segment(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    segment: &Segment,
    params: &Params,
) -> Result<(), PlanError> {
    let what = format!("segment {}", segment.name);
    match &segment.rule {
        Rule::Sql(query) => {
            let columns = RuleColumns {
                grouped: &[],
                first: &["reason"],
            };
            let view = sql::rule_view(segment);
            let audience = (key, segments.from.as_str());
            engine::register_rule_query(ctx, &what, query, audience, &view, columns, params)
                .await?;
        }
        Rule::Conditions(conditions) => {
            engine::check_conditions(ctx, &segments.from, conditions, &what, params).await?;
        }
    }
    let members = sql::members_of(key, &segments.from, segment);
    engine::plan_located(ctx, &members.sql, params, &segment.at, &what).await?;
    Ok(())
}

/// Today's membership, for the keys `keep` keeps: every segment's rule, erased keys
/// left out, suppressions applied ([`HELD`]), channels and groups assigned (members). Reads
/// the suppressions' matches, which must be evaluated first.
pub(crate) async fn evaluate(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    suppressions: &[Suppression],
    params: &Params,
    keep: Keep<'_>,
    work_dir: &Folder,
) -> Result<(), SegmentsError> {
    plan_rules(ctx, key, segments, params).await?;
    let raw = sql::raw_members(key, segments, keep);
    if let Err(err) =
        engine::materialize(ctx, "segment membership", &raw, params, work_dir, RAW).await
    {
        let mut rules = Vec::new();
        for s in &segments.list {
            for c in s.rule.conditions() {
                rules.push((format!("segment {}, condition {}", s.name, c.name), c));
            }
        }
        let err = engine::locate_failure(ctx, &segments.from, rules, params, err).await;
        let queries = (segments.list.iter())
            .filter(|s| matches!(s.rule, Rule::Sql(_)))
            .map(|s| {
                let sql = sql::members_of(key, &segments.from, s).sql;
                (format!("segment {}", s.name), &s.at, sql)
            })
            .collect();
        return Err(engine::locate_query_failure(ctx, queries, params, err)
            .await
            .into());
    }
    let held = suppressions::held_from_segments(
        key,
        RAW,
        suppressions::MATCHES,
        suppressions,
        &segments.reach(),
    );
    engine::materialize(ctx, "suppressions", &held, params, work_dir, HELD).await?;
    let members = sql::members(key, segments);
    engine::materialize(
        ctx,
        "segment membership",
        &members,
        params,
        work_dir,
        MEMBERS,
    )
    .await?;
    Ok(())
}

/// What publishing the segments wrote, and their counts.
pub(crate) struct SegmentsRun {
    pub(crate) outputs: Vec<Output>,
    pub(crate) stats: Vec<SegmentStats>,
    pub(crate) overlap: Vec<Overlap>,
    pub(crate) migration: Vec<Flow>,
}

/// Customers in both of two segments today (a segment with itself: its size).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Overlap {
    pub segment: String,
    pub other: String,
    pub customers: u64,
}

/// Customers who moved from one segment to another since the previous run (`(none)` for no
/// segment), as `migration.parquet` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Flow {
    pub from_segment: String,
    pub to_segment: String,
    pub customers: u64,
}

/// Writes audiences, changes, migration and the new membership history into the staged run,
/// comparing today's members (from [`evaluate`]) with the previous run's history.
pub(crate) async fn publish(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    activation_columns: &[String],
    params: &Params,
    dirs: RunDirs<'_>,
) -> Result<SegmentsRun, SegmentsError> {
    let run_dir = dirs.run_dir;
    let previous =
        dirs.previous("state/memberships")
            .await
            .map_err(|source| EngineError::Write {
                what: "membership history".into(),
                source,
            })?;
    register_previous(ctx, key, previous.as_ref(), dirs.work_dir, params).await?;
    let what = "segment changes";
    engine::materialize(ctx, what, &sql::sides(key), params, dirs.work_dir, SIDES).await?;
    let audiences = sql::audiences(key, &segments.from, activation_columns);
    let table = ("audiences", OutputKind::Audience);
    let mut outputs = per_segment(ctx, key, table, &audiences, segments, params, run_dir).await?;
    let table = ("changes", OutputKind::Changes);
    let changes = sql::changes(key, segments);
    outputs.extend(per_segment(ctx, key, table, &changes, segments, params, run_dir).await?);
    let relative = relative_migration();
    let layout = TableLayout::published(None, params.run_date());
    let written = write(
        ctx,
        "migration",
        &sql::migration(key),
        params,
        run_dir,
        relative,
        layout,
    )
    .await?;
    outputs.push(written.into_output("migration", OutputKind::Migration, relative));
    let relative = "state/memberships";
    let history = sql::history(key, &params.run_date().to_string());
    let layout = TableLayout {
        not_null: vec![key.to_string()],
        ..TableLayout::default()
    };
    let written = write(
        ctx,
        "membership history",
        &history,
        params,
        run_dir,
        relative,
        layout,
    )
    .await?;
    outputs.push(written.into_output("memberships", OutputKind::State, relative));
    let stats = stats(ctx, segments, params).await?;
    let overlap = overlap(ctx, key, segments, params).await?;
    let migration = read_migration(ctx, run_dir, params).await?;
    Ok(SegmentsRun {
        outputs,
        stats,
        overlap,
        migration,
    })
}

/// Writes a query sorted by segment as one table per segment (`audiences/segment=<name>`,
/// `changes/segment=<name>`), each carrying its `segment` in every row: one query for all
/// segments.
async fn per_segment(
    ctx: &SessionContext,
    key: &str,
    (what, kind): (&str, OutputKind),
    sql: &str,
    segments: &Segments,
    params: &Params,
    run_dir: &Folder,
) -> Result<Vec<Output>, EngineError> {
    let layout = TableLayout::published(Some(key), params.run_date());
    let relative = |s: &Segment| format!("{what}/segment={}", s.name);
    let parts = segments
        .list
        .iter()
        .map(|s| Part {
            value: s.name.clone(),
            target: run_dir.join(&relative(s)),
            layout: layout.clone().with("segment", &s.name),
        })
        .collect();
    let df = engine::plan_step(ctx, what, sql, params).await?;
    let written = engine::write_frame_split(what, df, "segment", parts, run_dir).await?;
    Ok(segments
        .list
        .iter()
        .zip(written)
        .map(|(s, w)| w.into_output(&s.name, kind, &relative(s)))
        .collect())
}

/// Customers in both of every two segments today (a segment with itself: its size), from the
/// count of customers per combination of segments.
async fn overlap(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    params: &Params,
) -> Result<Vec<Overlap>, EngineError> {
    let sql = sql::overlap_masks(key, segments);
    let combinations = engine::count_rows(ctx, "segment overlap", &sql, params).await?;
    let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for row in combinations {
        let Some((customers, masks)) = row.counts.split_last() else {
            continue;
        };
        let members: Vec<&str> = segments
            .list
            .iter()
            .enumerate()
            .filter(|(i, _)| masks[i / sql::MASK_BITS] >> (i % sql::MASK_BITS) & 1 == 1)
            .map(|(_, s)| s.name.as_str())
            .collect();
        for a in &members {
            for b in &members {
                *pairs.entry((a, b)).or_default() += customers;
            }
        }
    }
    Ok(pairs
        .into_iter()
        .map(|((segment, other), customers)| Overlap {
            segment: segment.to_string(),
            other: other.to_string(),
            customers,
        })
        .collect())
}

/// Streams generated SQL into `relative` below the staged run.
async fn write(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    run_dir: &Folder,
    relative: &str,
    layout: TableLayout,
) -> Result<Written, EngineError> {
    let target = run_dir.join(relative);
    engine::write_query(ctx, what, sql, params, &target, run_dir, layout).await
}

/// The migration counts as the published file holds them: the manifest says what the file
/// says.
async fn read_migration(
    ctx: &SessionContext,
    run_dir: &Folder,
    params: &Params,
) -> Result<Vec<Flow>, EngineError> {
    let table = "__segflow_migration";
    engine::register_parquet(ctx, table, &run_dir.join(relative_migration())).await?;
    let sql = format!("SELECT from_segment, to_segment, customers FROM {table} ORDER BY 1, 2");
    let flows = engine::count_rows(ctx, "migration", &sql, params)
        .await?
        .into_iter()
        .map(|r| Flow {
            from_segment: r.labels[0].clone(),
            to_segment: r.labels[1].clone(),
            customers: r.counts[0],
        })
        .collect();
    Ok(flows)
}

fn relative_migration() -> &'static str {
    "migration.parquet"
}

/// Registers the previous run's membership history (erased customers left out), or an empty
/// one on the first run.
async fn register_previous(
    ctx: &SessionContext,
    key: &str,
    previous_state: Option<&Folder>,
    work_dir: &Folder,
    params: &Params,
) -> Result<(), EngineError> {
    let what = "membership history";
    if let Some(dir) = previous_state {
        engine::register_parquet(ctx, PREVIOUS, dir).await?;
        let sql = format!("SELECT * FROM {PREVIOUS} WHERE {}", not_erased(&ident(key)));
        let kept = engine::plan_step(ctx, what, &sql, params).await?;
        return engine::register_view(ctx, what, PREVIOUS, kept);
    }
    let key_type = ctx
        .table(MEMBERS)
        .await
        .map_err(|e| EngineError::execution(what, e))?
        .schema()
        .field_with_unqualified_name(key)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Utf8);
    let schema = Arc::new(Schema::new(vec![
        Field::new(key, key_type, true),
        Field::new("segment", DataType::Utf8, true),
        Field::new("entered_on", DataType::Date32, true),
        Field::new("exited_on", DataType::Date32, true),
    ]));
    let dir = work_dir.join("previous");
    engine::register_empty(ctx, what, PREVIOUS, schema, &dir).await
}

/// Per-segment sizes by group and change counts (small aggregates, collected).
async fn stats(
    ctx: &SessionContext,
    segments: &Segments,
    params: &Params,
) -> Result<Vec<SegmentStats>, EngineError> {
    let mut list: Vec<SegmentStats> = segments
        .list
        .iter()
        .map(|s| SegmentStats {
            name: s.name.clone(),
            description: s.description.clone(),
            rule: s.rule.describe(),
            ..Default::default()
        })
        .collect();
    let groups = engine::count_rows(ctx, "segment counts", &sql::group_counts(), params).await?;
    for row in groups {
        if let (Some(stats), [_, group], [n]) = (
            list.iter_mut().find(|s| s.name == row.labels[0]),
            &row.labels[..],
            &row.counts[..],
        ) {
            stats.size += n;
            stats.groups.insert(group.clone(), *n);
        }
    }
    let changes = engine::count_rows(ctx, "segment counts", &sql::change_counts(), params).await?;
    for row in changes {
        let ([segment, change], [n]) = (&row.labels[..], &row.counts[..]) else {
            continue;
        };
        match list.iter_mut().find(|s| &s.name == segment) {
            Some(stats) if change == "added" => stats.added = *n,
            Some(stats) => stats.removed = *n,
            None => tracing::info!(
                segment,
                customers = n,
                "a segment no longer in the pipeline: its members' spells are closed today"
            ),
        }
    }
    for stats in &mut list {
        stats.stayed = stats.size - stats.added;
    }
    Ok(list)
}
