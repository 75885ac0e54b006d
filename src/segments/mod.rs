//! Today's segment membership, control groups, what changed since the previous published run,
//! how customers migrated between segments, and the membership history carried forward.
//!
//! All of it is set-based SQL that segflow generates from the pipeline's rules and runs on
//! DataFusion; tables stream to Parquet, and only per-segment counts are collected.
//!
//! Groups: a key's bucket is `segflow_bucket(salt, key)` in [0, 10000). Global holdout first
//! (`global_control`), then the segment's holdout (`control`), then its split variant, else
//! `treatment`. A bucket depends only on (salt, key), so a customer keeps their group every
//! day and in every segment they move to, and raising a percentage only adds to control.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::engine::{self, EngineError};
use crate::location::find_identifier;
use crate::pipeline::sql::literal;
use crate::pipeline::{Holdout, Params, Pipeline, Rule, Segment, Segments};
use crate::report::{Output, OutputKind};
use crate::run::{RunError, RunPaths, register_parquet_dir, write_query};
use crate::suppressions::{self, SUPPRESSIONS};

/// Internal tables; the prefix keeps them apart from the pipeline's own names.
pub const MEMBERS: &str = "__segflow_members";
const RAW: &str = "__segflow_raw_members";
/// Members held back from a segment: `(key, held_back_from, target, suppression, reason, detail)`.
pub const HELD: &str = "__segflow_held_segments";
pub const PREVIOUS: &str = "__segflow_previous_memberships";
const TODAY: &str = "__segflow_today";
/// The `segment` value for customers in no segment, in migration counts.
pub const NO_SEGMENT: &str = "(none)";

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

fn sql_segment_view(segment: &Segment) -> String {
    format!("__segflow_segment_{}", segment.name)
}

/// The rule in words, for the manifest and `explain`.
pub fn rule_text(segment: &Segment) -> Vec<String> {
    match &segment.rule {
        Rule::Conditions(conditions) => conditions
            .iter()
            .map(|c| format!("{}: {}", c.name, c.text))
            .collect(),
        Rule::Sql(query) => vec![format!("members returned by {}", query.path.display())],
    }
}

/// One segment's members as `(key, segment, reasons)`.
fn members_query(pipeline: &Pipeline, segments: &Segments, segment: &Segment) -> String {
    let key = pipeline
        .key
        .as_deref()
        .expect("compile requires a key with segments");
    match &segment.rule {
        Rule::Conditions(conditions) => {
            let reasons: Vec<&str> = conditions.iter().map(|c| c.reason.as_str()).collect();
            let all_hold: Vec<String> = conditions
                .iter()
                .map(|c| format!("COALESCE(({}), false)", c.expr))
                .collect();
            format!(
                "SELECT {key}, {segment} AS segment, {reasons} AS reasons FROM {from} WHERE {all}",
                segment = literal(&segment.name),
                reasons = literal(&reasons.join("; ")),
                from = segments.from,
                all = if all_hold.is_empty() {
                    "true".to_string()
                } else {
                    all_hold.join(" AND ")
                },
            )
        }
        Rule::Sql(_) => format!(
            "SELECT {key}, {segment} AS segment, COALESCE(__segflow_reason, {description}) AS reasons FROM {view}",
            segment = literal(&segment.name),
            description = literal(&segment.description),
            view = sql_segment_view(segment),
        ),
    }
}

fn bucket_below(holdout: &Holdout, key: &str) -> String {
    format!(
        "segflow_bucket({}, {key}) < {}",
        literal(&holdout.salt),
        holdout.below
    )
}

/// The `group` expression: global holdout, then the segment's holdout, then its split.
pub fn group_case(segments: &Segments, key: &str, segment_column: &str) -> String {
    let mut case = String::from("CASE");
    if let Some(global) = &segments.holdout {
        case += &format!(" WHEN {} THEN 'global_control'", bucket_below(global, key));
    }
    for segment in &segments.list {
        let is = format!("{segment_column} = {}", literal(&segment.name));
        if let Some(holdout) = &segment.holdout {
            case += &format!(
                " WHEN {is} AND {} THEN 'control'",
                bucket_below(holdout, key)
            );
        }
        if let Some(split) = &segment.split {
            for (variant, upper) in &split.variants {
                case += &format!(
                    " WHEN {is} AND segflow_bucket({}, {key}) < {upper} THEN {}",
                    literal(&split.salt),
                    literal(variant)
                );
            }
        }
    }
    if case == "CASE" {
        "'treatment'".to_string()
    } else {
        case + " ELSE 'treatment' END"
    }
}

/// Registers the SQL segments' queries and plans every segment against the profile, reading
/// no rows: used by `validate` and at the start of a run.
pub async fn plan_segments(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    segments: &Segments,
    params: &Params,
) -> Result<(), EngineError> {
    let key = pipeline
        .key
        .as_deref()
        .expect("compile requires a key with segments");
    for segment in &segments.list {
        let what = format!("segment {}", segment.name);
        if let Rule::Sql(query) = &segment.rule {
            let df = engine::plan_query(ctx, &what, query, params).await?;
            if df.schema().field_with_unqualified_name(key).is_err() {
                return Err(EngineError::Plan {
                    at: crate::location::Location::file(&query.path),
                    what,
                    message: format!("the query must return the key column {key}"),
                });
            }
            // The query's own `reason` column, when it has one, explains each member.
            let reason = if df.schema().field_with_unqualified_name("reason").is_ok() {
                "CAST(reason AS VARCHAR)"
            } else {
                "CAST(NULL AS VARCHAR)"
            };
            let inner = format!("{}_query", sql_segment_view(segment));
            ctx.register_table(inner.as_str(), df.into_view())
                .map_err(|e| EngineError::execution(&what, e))?;
            // One row per member (the first reason in key order when a query repeats keys).
            let view = engine::plan_sql(
                ctx,
                &format!(
                    "SELECT {key}, MIN({reason}) AS __segflow_reason FROM {inner} WHERE {key} IS NOT NULL GROUP BY {key}"
                ),
                params,
            )
            .await?;
            ctx.register_table(sql_segment_view(segment).as_str(), view.into_view())
                .map_err(|e| EngineError::execution(&what, e))?;
        }
        if let Rule::Conditions(conditions) = &segment.rule {
            check_conditions(ctx, &segments.from, conditions, &what, params).await?;
        }
        let sql = members_query(pipeline, segments, segment);
        engine::plan_sql(ctx, &sql, params)
            .await
            .map_err(|err| locate_segment_error(segment, &what, err))?;
    }
    if !pipeline.activation_columns.is_empty() {
        let sql = format!(
            "SELECT {key}, {} FROM {}",
            pipeline.activation_columns.join(", "),
            segments.from
        );
        engine::plan_sql(ctx, &sql, params)
            .await
            .map_err(|err| match err {
                EngineError::Execution { message, .. } => EngineError::Plan {
                    at: pipeline.output_at.clone(),
                    what: "output.columns".into(),
                    message: format!(
                        "{message} (columns must exist in the profile model {})",
                        segments.from
                    ),
                },
                other => other,
            })?;
    }
    Ok(())
}

/// Plans each condition alone over the profile: its columns must exist and it must be true or
/// false, so a typo or a non-boolean expression is reported at the condition's line.
pub async fn check_conditions(
    ctx: &SessionContext,
    profile: &str,
    conditions: &[crate::pipeline::Condition],
    what: &str,
    params: &Params,
) -> Result<(), EngineError> {
    for condition in conditions {
        let df = engine::plan_sql(
            ctx,
            &format!("SELECT ({}) AS c FROM {profile}", condition.expr),
            params,
        )
        .await
        .map_err(|e| match e {
            EngineError::Execution { message, .. } => EngineError::Plan {
                at: condition.at.clone(),
                what: format!("{what}, condition {}", condition.name),
                message,
            },
            other => other,
        })?;
        let data_type = df.schema().field(0).data_type().clone();
        if !matches!(data_type, DataType::Boolean | DataType::Null) {
            return Err(EngineError::Plan {
                at: condition.at.clone(),
                what: format!("{what}, condition {}", condition.name),
                message: format!(
                    "`{}` is {data_type}, not true/false; write a comparison such as `{} > 0`",
                    condition.text, condition.text
                ),
            });
        }
    }
    Ok(())
}

/// Points an error in a segment's generated SQL at the condition that names the bad column.
fn locate_segment_error(segment: &Segment, what: &str, err: EngineError) -> EngineError {
    let EngineError::Execution { message, .. } = err else {
        return err;
    };
    let at = match &segment.rule {
        Rule::Conditions(conditions) => conditions
            .iter()
            .find(|c| {
                message
                    .split(['\'', '"', ' ', '.'])
                    .filter(|w| w.len() > 1)
                    .any(|w| find_identifier(&c.text, w).is_some())
            })
            .map_or(segment.at.clone(), |c| c.at.clone()),
        Rule::Sql(query) => crate::location::Location::file(&query.path),
    };
    EngineError::Plan {
        at,
        what: what.to_string(),
        message,
    }
}

/// Evaluates every segment, assigns groups and writes audiences, changes, migration and the
/// new membership history into the staged run. `previous_run` is the folder of the run this
/// one compares with.
pub async fn run_segments(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    segments: &Segments,
    params: &Params,
    paths: RunPaths<'_>,
    outputs: &mut Vec<Output>,
) -> Result<Vec<SegmentStats>, RunError> {
    let key = pipeline
        .key
        .as_deref()
        .expect("compile requires a key with segments");
    let RunPaths {
        run_dir,
        work_dir,
        previous_run,
    } = paths;
    plan_segments(ctx, pipeline, segments, params).await?;

    // Today's members before suppressions: every segment's rule, erased keys excluded.
    let union: Vec<String> = segments
        .list
        .iter()
        .map(|s| members_query(pipeline, segments, s))
        .collect();
    let raw_sql = format!(
        "SELECT * FROM ({}) WHERE {}",
        union.join(" UNION ALL "),
        suppressions::not_erased(key)
    );
    let raw_dir = work_dir.join("raw_members");
    write_query(
        ctx,
        "segment membership",
        &raw_sql,
        params,
        &raw_dir,
        work_dir,
    )
    .await?;
    register_parquet_dir(ctx, RAW, &raw_dir).await?;

    // Held back: a member matched by a suppression whose scope covers the whole segment
    // (channel '*') or one of the channels the segment is activated through.
    let held_sql = format!(
        "SELECT r.{key}, 'segment' AS held_back_from, \
                CASE WHEN sc.channel = '*' THEN r.segment ELSE r.segment || ' via ' || sc.channel END AS target, \
                r.segment, sc.channel, s.suppression, s.reason, s.detail \
         FROM {RAW} r JOIN {SUPPRESSIONS} s ON s.{key} = r.{key} AND s.offer IS NULL \
         JOIN ({scope}) sc ON sc.suppression = s.suppression AND sc.segment = r.segment",
        scope = suppressions::segment_scope(pipeline),
    );
    let held_dir = work_dir.join("held_segments");
    write_query(ctx, "suppressions", &held_sql, params, &held_dir, work_dir).await?;
    register_parquet_dir(ctx, HELD, &held_dir).await?;

    // Today's members: the channels left to reach them (all, for a segment without channels),
    // and their group. A member held back on every channel is out.
    let channels = suppressions::segment_channels(pipeline);
    let members_sql = format!(
        "WITH whole AS (SELECT DISTINCT {key}, segment FROM {HELD} WHERE channel = '*'), \
              held AS (SELECT DISTINCT {key}, segment, channel FROM {HELD} WHERE channel <> '*'), \
              open AS ( \
                SELECT r.{key}, r.segment, c.channel FROM {RAW} r JOIN ({channels}) c ON c.segment = r.segment \
                WHERE NOT EXISTS (SELECT 1 FROM whole w WHERE w.{key} = r.{key} AND w.segment = r.segment) \
                  AND NOT EXISTS (SELECT 1 FROM held h WHERE h.{key} = r.{key} AND h.segment = r.segment AND h.channel = c.channel)), \
              reachable AS ( \
                SELECT {key}, segment, string_agg(channel, ',' ORDER BY channel) AS channels FROM open GROUP BY {key}, segment) \
         SELECT r.{key}, r.segment, r.reasons, NULLIF(a.channels, '') AS channels, {group} AS \"group\" \
         FROM {RAW} r JOIN reachable a ON a.{key} = r.{key} AND a.segment = r.segment",
        group = group_case(segments, &format!("r.{key}"), "r.segment"),
    );
    let members_dir = work_dir.join("members");
    write_query(
        ctx,
        "segment membership",
        &members_sql,
        params,
        &members_dir,
        work_dir,
    )
    .await?;
    register_parquet_dir(ctx, MEMBERS, &members_dir).await?;

    register_previous(
        ctx,
        key,
        previous_run.map(|d| d.join("state/memberships")).as_deref(),
    )
    .await?;

    // Audiences: members with their group, reasons and activation columns.
    let columns: String = pipeline
        .activation_columns
        .iter()
        .filter(|c| c.as_str() != key)
        .map(|c| format!(", p.{c}"))
        .collect();
    for segment in &segments.list {
        let sql = format!(
            "SELECT m.{key}, m.\"group\", m.reasons, m.channels{columns} FROM {MEMBERS} m \
             JOIN {from} p ON p.{key} = m.{key} WHERE m.segment = {name} ORDER BY m.{key}",
            from = segments.from,
            name = literal(&segment.name),
        );
        let relative = format!("audiences/segment={}", segment.name);
        let files = write_query(
            ctx,
            &format!("audience {}", segment.name),
            &sql,
            params,
            &run_dir.join(&relative),
            run_dir,
        )
        .await?;
        outputs.push(files.into_output(&segment.name, OutputKind::Audience, relative));
    }

    // Changes since the previous run: who was added, who was removed.
    let today = format!("SELECT DISTINCT {key}, segment FROM {MEMBERS}");
    ctx.register_table(
        TODAY,
        engine::plan_sql(ctx, &today, params).await?.into_view(),
    )
    .map_err(|e| EngineError::execution("segment membership", e))?;
    let open = format!("SELECT {key}, segment FROM {PREVIOUS} WHERE exited_on IS NULL");
    for segment in &segments.list {
        let name = literal(&segment.name);
        let sql = format!(
            "SELECT t.{key}, 'added' AS change FROM {TODAY} t WHERE t.segment = {name} \
               AND NOT EXISTS (SELECT 1 FROM ({open}) o WHERE o.{key} = t.{key} AND o.segment = t.segment) \
             UNION ALL \
             SELECT o.{key}, 'removed' AS change FROM ({open}) o WHERE o.segment = {name} \
               AND NOT EXISTS (SELECT 1 FROM {TODAY} t WHERE t.{key} = o.{key} AND t.segment = o.segment) \
             ORDER BY change, {key}"
        );
        let relative = format!("changes/segment={}", segment.name);
        let files = write_query(
            ctx,
            &format!("changes {}", segment.name),
            &sql,
            params,
            &run_dir.join(&relative),
            run_dir,
        )
        .await?;
        outputs.push(files.into_output(&segment.name, OutputKind::Changes, relative));
    }

    // Migration: a customer who stayed in a segment counts as (s, s); one who left segments
    // L and entered E counts once for each pair in L × E, with (none) standing in for an
    // empty side. Customers in no segment on either day are not counted.
    let none = literal(NO_SEGMENT);
    let migration = format!(
        "WITH before AS ({open}), after AS (SELECT {key}, segment FROM {TODAY}), \
         stayed AS (SELECT b.{key}, b.segment AS from_segment, b.segment AS to_segment FROM before b \
                    JOIN after a ON a.{key} = b.{key} AND a.segment = b.segment), \
         left_ AS (SELECT b.{key}, b.segment FROM before b WHERE NOT EXISTS \
                    (SELECT 1 FROM after a WHERE a.{key} = b.{key} AND a.segment = b.segment)), \
         entered AS (SELECT a.{key}, a.segment FROM after a WHERE NOT EXISTS \
                    (SELECT 1 FROM before b WHERE b.{key} = a.{key} AND b.segment = a.segment)), \
         moves AS ( \
           SELECT l.{key}, l.segment AS from_segment, e.segment AS to_segment FROM left_ l JOIN entered e ON e.{key} = l.{key} \
           UNION ALL SELECT l.{key}, l.segment, {none} FROM left_ l WHERE NOT EXISTS (SELECT 1 FROM entered e WHERE e.{key} = l.{key}) \
           UNION ALL SELECT e.{key}, {none}, e.segment FROM entered e WHERE NOT EXISTS (SELECT 1 FROM left_ l WHERE l.{key} = e.{key})) \
         SELECT from_segment, to_segment, COUNT(*) AS customers \
         FROM (SELECT * FROM stayed UNION ALL SELECT * FROM moves) \
         GROUP BY from_segment, to_segment ORDER BY from_segment, to_segment"
    );
    let files = write_query(
        ctx,
        "migration",
        &migration,
        params,
        &run_dir.join("migration.parquet"),
        run_dir,
    )
    .await?;
    outputs.push(files.into_output(
        "migration",
        OutputKind::Migration,
        "migration.parquet".into(),
    ));

    // History: closed spells carried over, open spells closed when the customer left, new
    // spells for customers who entered.
    let history = format!(
        "SELECT {key}, segment, entered_on, exited_on FROM {PREVIOUS} WHERE exited_on IS NOT NULL \
         UNION ALL \
         SELECT o.{key}, o.segment, o.entered_on, \
                CASE WHEN t.{key} IS NULL THEN $run_date ELSE CAST(NULL AS DATE) END AS exited_on \
           FROM {PREVIOUS} o LEFT JOIN {TODAY} t ON t.{key} = o.{key} AND t.segment = o.segment \
          WHERE o.exited_on IS NULL \
         UNION ALL \
         SELECT t.{key}, t.segment, $run_date AS entered_on, CAST(NULL AS DATE) AS exited_on FROM {TODAY} t \
          WHERE NOT EXISTS (SELECT 1 FROM {PREVIOUS} o WHERE o.exited_on IS NULL AND o.{key} = t.{key} AND o.segment = t.segment) \
         ORDER BY segment, {key}, entered_on"
    );
    let history = history.replace(
        "$run_date",
        &format!("CAST({} AS DATE)", literal(&params.run_date().to_string())),
    );
    let files = write_query(
        ctx,
        "membership history",
        &history,
        params,
        &run_dir.join("state/memberships"),
        run_dir,
    )
    .await?;
    outputs.push(files.into_output("memberships", OutputKind::State, "state/memberships".into()));

    stats(ctx, key, segments, params).await
}

/// Registers the previous run's membership history, or an empty one on the first run.
async fn register_previous(
    ctx: &SessionContext,
    key: &str,
    previous_state: Option<&Path>,
) -> Result<(), RunError> {
    if let Some(dir) = previous_state.filter(|d| d.is_dir()) {
        register_parquet_dir(ctx, PREVIOUS, dir).await?;
        // Erased customers leave history too.
        let kept = engine::plan_sql(
            ctx,
            &format!(
                "SELECT * FROM {PREVIOUS} WHERE {}",
                suppressions::not_erased(key)
            ),
            &Params::from_spec(&Default::default()).expect("no parameters"),
        )
        .await?;
        ctx.deregister_table(PREVIOUS)
            .map_err(|e| EngineError::execution("membership history", e))?;
        ctx.register_table(PREVIOUS, kept.into_view())
            .map_err(|e| EngineError::execution("membership history", e))?;
        return Ok(());
    }
    let key_type = ctx
        .table(MEMBERS)
        .await
        .map_err(|e| EngineError::execution("segment membership", e))?
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
    let empty = MemTable::try_new(schema, vec![vec![]])
        .map_err(|e| EngineError::execution("membership history", e))?;
    ctx.register_table(PREVIOUS, Arc::new(empty))
        .map_err(|e| EngineError::execution("membership history", e))?;
    Ok(())
}

/// Per-segment sizes by group and change counts (small aggregates, collected).
async fn stats(
    ctx: &SessionContext,
    key: &str,
    segments: &Segments,
    params: &Params,
) -> Result<Vec<SegmentStats>, RunError> {
    let mut by_name: BTreeMap<String, SegmentStats> = segments
        .list
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                SegmentStats {
                    name: s.name.clone(),
                    description: s.description.clone(),
                    rule: rule_text(s),
                    ..Default::default()
                },
            )
        })
        .collect();
    let groups = engine::count_rows(
        ctx,
        "segment counts",
        &format!("SELECT segment, \"group\", COUNT(*) AS n FROM {MEMBERS} GROUP BY 1, 2"),
        params,
    )
    .await?;
    for row in groups {
        if let (Some(stats), [_, group], [n]) = (
            by_name.get_mut(&row.labels[0]),
            &row.labels[..],
            &row.counts[..],
        ) {
            stats.size += n;
            stats.groups.insert(group.clone(), *n);
        }
    }
    let changes = engine::count_rows(
        ctx,
        "segment counts",
        &format!(
            "SELECT segment, change, COUNT(*) AS n FROM ( \
               SELECT t.segment, 'added' AS change FROM {TODAY} t WHERE NOT EXISTS ( \
                 SELECT 1 FROM {PREVIOUS} o WHERE o.exited_on IS NULL AND o.segment = t.segment AND o.{key} = t.{key}) \
               UNION ALL \
               SELECT o.segment, 'removed' AS change FROM {PREVIOUS} o WHERE o.exited_on IS NULL AND NOT EXISTS ( \
                 SELECT 1 FROM {TODAY} t WHERE t.segment = o.segment AND t.{key} = o.{key}) \
             ) GROUP BY 1, 2"
        ),
        params,
    )
    .await?;
    for row in changes {
        if let (Some(stats), [_, change], [n]) = (
            by_name.get_mut(&row.labels[0]),
            &row.labels[..],
            &row.counts[..],
        ) {
            match change.as_str() {
                "added" => stats.added = *n,
                _ => stats.removed = *n,
            }
        }
    }
    for stats in by_name.values_mut() {
        stats.stayed = stats.size - stats.added;
    }
    // Keep the pipeline's order of segments.
    let order: Vec<&str> = segments.list.iter().map(|s| s.name.as_str()).collect();
    let mut list: Vec<SegmentStats> = by_name.into_values().collect();
    list.sort_by_key(|s| order.iter().position(|n| *n == s.name));
    Ok(list)
}
