//! Feedback that holds customers back: suppression rules with their reasons and scopes, and
//! erasure of customers who asked to be forgotten.
//!
//! A suppression is evaluated like a segment (conditions over the profile, or a query returning
//! keys) and yields `(key, suppression, reason, detail)`. Its end condition lives in its rule:
//! a "not serviceable here" query joined to the address *as of the run date* stops matching the
//! day the customer moves, so the customer is eligible again without anyone acting.
//!
//! A SQL rule may also return an `offer` column: the customer is then held back from that
//! offer only (within the rule's scope), e.g. "stop repeating an offer nobody answers".
//!
//! Erasure: the keys of the erasure source are hashed (SHA-256 of the key as text) and kept in
//! `state/erased` of every run, so no later run brings an erased customer back even once the
//! list or the CRM no longer holds them, and no erased id is stored in clear.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::engine::{self, EngineError};
use crate::pipeline::sql::literal;
use crate::pipeline::{Params, Pipeline, Rule, Suppression};
use crate::report::{Output, OutputKind};
use crate::run::{RunError, register_parquet_dir, write_query};

pub const SUPPRESSIONS: &str = "__segflow_suppressions";
pub const ERASED: &str = "__segflow_erased";

/// What the manifest records for one suppression rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SuppressionStats {
    pub name: String,
    pub reason: String,
    pub scope: String,
    /// Customers the rule matched today.
    pub matched: u64,
    /// (customer, segment or offer) pairs it held back.
    pub held_back: u64,
}

fn sql_view(suppression: &Suppression) -> String {
    format!("__segflow_suppression_{}", suppression.name)
}

/// One rule's matches as `(key, suppression, reason, detail)`.
pub fn matches_query(key: &str, profile: &str, suppression: &Suppression) -> String {
    let name = literal(&suppression.name);
    let reason = literal(&suppression.reason);
    match &suppression.rule {
        Rule::Conditions(conditions) => {
            let all: Vec<String> = conditions
                .iter()
                .map(|c| format!("COALESCE(({}), false)", c.expr))
                .collect();
            let detail: Vec<String> = conditions.iter().map(|c| c.reason.clone()).collect();
            format!(
                "SELECT {key}, {name} AS suppression, {reason} AS reason, {detail} AS detail, \
                 CAST(NULL AS VARCHAR) AS offer FROM {profile} WHERE {}",
                all.join(" AND "),
                detail = literal(&detail.join("; ")),
            )
        }
        Rule::Sql(_) => format!(
            "SELECT {key}, {name} AS suppression, {reason} AS reason, __segflow_detail AS detail, \
             __segflow_offer AS offer FROM {view}",
            view = sql_view(suppression),
        ),
    }
}

/// Registers SQL rules as views (adding a `detail` column when the query has none) and plans
/// every rule, reading no rows.
pub async fn plan_suppressions(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    key: &str,
    profile: &str,
    params: &Params,
) -> Result<(), EngineError> {
    for suppression in &pipeline.suppressions {
        let what = format!("suppression {}", suppression.name);
        if let Rule::Conditions(conditions) = &suppression.rule {
            crate::segments::check_conditions(ctx, profile, conditions, &what, params).await?;
        }
        if let Rule::Sql(query) = &suppression.rule {
            let df = engine::plan_query(ctx, &what, query, params).await?;
            let schema = df.schema().clone();
            if schema.field_with_unqualified_name(key).is_err() {
                return Err(EngineError::Plan {
                    at: crate::location::Location::file(&query.path),
                    what,
                    message: format!("the query must return the key column {key}"),
                });
            }
            let detail = if schema.field_with_unqualified_name("detail").is_ok() {
                "CAST(detail AS VARCHAR)".to_string()
            } else {
                "CAST(NULL AS VARCHAR)".to_string()
            };
            let offer = if schema.field_with_unqualified_name("offer").is_ok() {
                "CAST(offer AS VARCHAR)"
            } else {
                "CAST(NULL AS VARCHAR)"
            };
            let inner = format!("__segflow_suppression_query_{}", suppression.name);
            ctx.register_table(inner.as_str(), df.into_view())
                .map_err(|e| EngineError::execution(&what, e))?;
            let view = engine::plan_sql(
                ctx,
                &format!(
                    "SELECT {key}, {offer} AS __segflow_offer, MIN({detail}) AS __segflow_detail FROM {inner} \
                     WHERE {key} IS NOT NULL GROUP BY {key}, {offer}"
                ),
                params,
            )
            .await?;
            ctx.register_table(sql_view(suppression).as_str(), view.into_view())
                .map_err(|e| EngineError::execution(&what, e))?;
        }
        engine::plan_sql(ctx, &matches_query(key, profile, suppression), params)
            .await
            .map_err(|e| match e {
                EngineError::Execution { message, .. } => EngineError::Plan {
                    at: suppression.at.clone(),
                    what: what.clone(),
                    message,
                },
                other => other,
            })?;
    }
    Ok(())
}

/// Evaluates every rule once into `__segflow_suppressions` (scratch space).
pub async fn evaluate(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    key: &str,
    profile: &str,
    params: &Params,
    work_dir: &Path,
) -> Result<(), RunError> {
    plan_suppressions(ctx, pipeline, key, profile, params).await?;
    let sql = if pipeline.suppressions.is_empty() {
        format!(
            "SELECT {key}, CAST(NULL AS VARCHAR) AS suppression, CAST(NULL AS VARCHAR) AS reason, \
             CAST(NULL AS VARCHAR) AS detail, CAST(NULL AS VARCHAR) AS offer FROM {profile} WHERE false"
        )
    } else {
        let union: Vec<String> = pipeline
            .suppressions
            .iter()
            .map(|s| matches_query(key, profile, s))
            .collect();
        format!(
            "SELECT * FROM ({}) WHERE {}",
            union.join(" UNION ALL "),
            not_erased(key)
        )
    };
    let dir = work_dir.join("suppressions");
    write_query(ctx, "suppressions", &sql, params, &dir, work_dir).await?;
    register_parquet_dir(ctx, SUPPRESSIONS, &dir).await?;
    Ok(())
}

/// `(suppression, segment, channel)`: which rule holds back which segment, on which of its
/// channels (`*`: the whole segment).
pub fn segment_scope(pipeline: &Pipeline) -> String {
    let mut rows = Vec::new();
    if let Some(segments) = &pipeline.segments {
        for suppression in &pipeline.suppressions {
            for segment in &segments.list {
                let channels = suppression
                    .scope
                    .segment_channels(segment)
                    .unwrap_or_else(|| vec!["*"]);
                for channel in channels {
                    rows.push(format!(
                        "({}, {}, {})",
                        literal(&suppression.name),
                        literal(&segment.name),
                        literal(channel)
                    ));
                }
            }
        }
    }
    values(rows, &["suppression", "segment", "channel"])
}

/// `(segment, channel)` for every channel a segment is activated through; `''` for a segment
/// that names none.
pub fn segment_channels(pipeline: &Pipeline) -> String {
    let rows = pipeline
        .segments
        .iter()
        .flat_map(|s| &s.list)
        .flat_map(|segment| {
            let channels = if segment.channels.is_empty() {
                vec![String::new()]
            } else {
                segment.channels.clone()
            };
            channels
                .into_iter()
                .map(move |c| format!("({}, {})", literal(&segment.name), literal(&c)))
        })
        .collect();
    values(rows, &["segment", "channel"])
}

/// A table of string rows as SQL (`VALUES`), or an empty table with those columns.
pub fn values(rows: Vec<String>, columns: &[&str]) -> String {
    if rows.is_empty() {
        let nulls: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST(NULL AS VARCHAR) AS {c}"))
            .collect();
        return format!("SELECT {} WHERE false", nulls.join(", "));
    }
    let named: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("column{} AS {c}", i + 1))
        .collect();
    format!(
        "SELECT {} FROM (VALUES {})",
        named.join(", "),
        rows.join(", ")
    )
}

/// A predicate that keeps only keys that were never erased.
pub fn not_erased(key: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {ERASED} __e WHERE __e.key_sha256 = encode(sha256(CAST({key} AS VARCHAR)), 'hex'))"
    )
}

/// Registers the erased keys: today's erasure list plus every key erased before (from the
/// previous run's state), and writes them to this run's `state/erased`.
pub async fn register_erased(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    key: &str,
    params: &Params,
    previous_run: Option<&Path>,
    run_dir: &Path,
    outputs: &mut Vec<Output>,
) -> Result<(), RunError> {
    let none = "SELECT CAST(NULL AS VARCHAR) AS key_sha256 WHERE false";
    let previous = previous_run
        .map(|d| d.join("state/erased"))
        .filter(|d| d.is_dir());
    if pipeline.erasure.is_none() && previous.is_none() {
        // Nothing was ever erased: an empty list, and nothing to carry in state.
        let empty = engine::plan_sql(ctx, none, params).await?;
        ctx.register_table(ERASED, empty.into_view())
            .map_err(|e| EngineError::execution("erasure list", e))?;
        return Ok(());
    }
    let mut parts = vec![none.to_string()];
    if let Some(source) = &pipeline.erasure {
        parts.push(format!(
            "SELECT encode(sha256(CAST({key} AS VARCHAR)), 'hex') AS key_sha256 FROM {source} WHERE {key} IS NOT NULL"
        ));
    }
    if let Some(dir) = previous {
        register_parquet_dir(ctx, "__segflow_previously_erased", &dir).await?;
        parts.push("SELECT CAST(key_sha256 AS VARCHAR) FROM __segflow_previously_erased".into());
    }
    let sql = format!(
        "SELECT DISTINCT key_sha256 FROM ({}) ORDER BY key_sha256",
        parts.join(" UNION ALL ")
    );
    let relative = "state/erased";
    let written = write_query(
        ctx,
        "erasure list",
        &sql,
        params,
        &run_dir.join(relative),
        run_dir,
    )
    .await?;
    register_parquet_dir(ctx, ERASED, &run_dir.join(relative)).await?;
    outputs.push(written.into_output("erased", OutputKind::State, relative.into()));
    Ok(())
}

/// Writes `suppressed/`: every (customer, segment or offer) held back, by which rule and why;
/// returns the per-rule counts for the manifest.
pub async fn write_suppressed(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
    run_dir: &Path,
    outputs: &mut Vec<Output>,
) -> Result<Vec<SuppressionStats>, RunError> {
    let key = pipeline.key.as_deref().expect("suppressions need a key");
    let mut parts = Vec::new();
    for (table, present) in [
        (crate::segments::HELD, pipeline.segments.is_some()),
        (crate::offers::HELD, pipeline.offers.is_some()),
    ] {
        if present {
            parts.push(format!(
                "SELECT {key}, held_back_from || ' ' || target AS held_back_from, suppression, reason, detail FROM {table}"
            ));
        }
    }
    let held = format!("({})", parts.join(" UNION ALL "));
    let sql = format!("SELECT * FROM {held} ORDER BY {key}, held_back_from, suppression");
    let relative = "suppressed";
    let written = write_query(
        ctx,
        "suppressed",
        &sql,
        params,
        &run_dir.join(relative),
        run_dir,
    )
    .await?;
    outputs.push(written.into_output("suppressed", OutputKind::Suppressed, relative.into()));

    let counts = engine::count_rows(
        ctx,
        "suppression counts",
        &format!(
            "SELECT m.suppression, m.matched, COALESCE(h.held, 0) AS held FROM \
             (SELECT suppression, COUNT(DISTINCT {key}) AS matched FROM {SUPPRESSIONS} GROUP BY 1) m \
             LEFT JOIN (SELECT suppression, COUNT(*) AS held FROM {held} GROUP BY 1) h ON h.suppression = m.suppression"
        ),
        params,
    )
    .await?;
    let mut stats: Vec<SuppressionStats> = pipeline
        .suppressions
        .iter()
        .map(|s| SuppressionStats {
            name: s.name.clone(),
            reason: s.reason.clone(),
            scope: s.scope.describe(),
            ..Default::default()
        })
        .collect();
    for row in counts {
        if let (Some(s), &[matched, held_back]) = (
            stats.iter_mut().find(|s| s.name == row.labels[0]),
            &row.counts[..],
        ) {
            (s.matched, s.held_back) = (matched, held_back);
        }
    }
    Ok(stats)
}
