//! `segflow explain`: why one customer is or is not in each segment on a date.
//!
//! Conditions and the feature values behind them are evaluated live for that key only (the
//! models run as views, so DataFusion pushes the key filter down); groups come from the same
//! bucket formula the run uses; membership as published is read from that date's run.

use std::ops::ControlFlow;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, visit_expressions};
use serde::Serialize;

use crate::engine::{self, EngineError, EngineOptions};
use crate::pipeline::sql::literal;
use crate::pipeline::{Params, Pipeline, Rule, Segment};
use crate::run::RunError;
use crate::segments;
use crate::store::PipelineStore;

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub pipeline: String,
    pub key: String,
    pub run_date: NaiveDate,
    /// Whether the key exists in the profile model on that date.
    pub found: bool,
    /// The run published for that date, if any.
    pub published_run: Option<String>,
    pub segments: Vec<SegmentExplanation>,
    /// Every suppression rule that matches the customer today, with the data behind it.
    pub suppressions: Vec<SuppressionExplanation>,
    pub offers: Vec<OfferExplanation>,
}

#[derive(Debug, Serialize)]
pub struct OfferExplanation {
    pub name: String,
    pub description: String,
    /// Every eligibility condition holds.
    pub eligible: bool,
    pub conditions: Vec<ConditionExplanation>,
    pub score: Option<String>,
    /// Suppressions holding the offer back, with the channels they cover.
    pub held_back_by: Vec<String>,
    /// In the published run: assigned, suppressed, capacity (lost to customers it scores
    /// higher for), outranked (better offers filled max_per_customer), or not eligible.
    pub published_status: Option<String>,
    pub published_rank: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SuppressionExplanation {
    pub name: String,
    pub reason: String,
    /// What the rule holds back: everything, or the segments, offers and channels named.
    pub scope: String,
    /// The rule's own account of the data that matched (e.g. the technician visit).
    pub detail: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SegmentExplanation {
    pub name: String,
    pub description: String,
    /// Whether the segment's rule holds for the customer.
    pub qualifies: bool,
    /// Suppressions that hold the customer back from this segment.
    pub held_back_by: Vec<String>,
    /// In the audience: the rule holds and no suppression holds the customer back.
    pub member: bool,
    /// The group the key falls in when a member (treatment, control, global_control, variant).
    pub group: Option<String>,
    /// Whether the published run lists the key in this segment's audience.
    pub published_member: Option<bool>,
    pub conditions: Vec<ConditionExplanation>,
}

#[derive(Debug, Serialize)]
pub struct ConditionExplanation {
    pub name: String,
    pub sql: String,
    /// true / false, or null when the expression is NULL (counts as not holding).
    pub holds: Option<bool>,
    /// The profile columns the condition reads, with this customer's values.
    pub values: Vec<(String, String)>,
}

/// The profile columns an expression reads.
pub fn columns_of(expr: &SqlExpr) -> Vec<String> {
    let mut columns = Vec::new();
    let _ = visit_expressions(expr, |e| {
        let name = match e {
            SqlExpr::Identifier(ident) => Some(ident.value.to_ascii_lowercase()),
            SqlExpr::CompoundIdentifier(parts) => {
                parts.last().map(|p| p.value.to_ascii_lowercase())
            }
            _ => None,
        };
        if let Some(name) = name
            && !columns.contains(&name)
        {
            columns.push(name);
        }
        ControlFlow::<()>::Continue(())
    });
    columns
}

fn format_value(batch: &RecordBatch, column: usize) -> String {
    let array = batch.column(column);
    if array.is_null(0) {
        return "NULL".into();
    }
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map(|f| f.value(0).to_string())
        .unwrap_or_else(|_| "?".into())
}

async fn one_row(
    ctx: &SessionContext,
    sql: &str,
    params: &Params,
) -> Result<Option<RecordBatch>, RunError> {
    let batches = engine::plan_sql(ctx, sql, params)
        .await?
        .limit(0, Some(1))
        .map_err(|e| EngineError::execution("explain", e))?
        .collect()
        .await
        .map_err(|e| EngineError::execution("explain", e))?;
    Ok(batches.into_iter().find(|b| b.num_rows() > 0))
}

/// The key as a SQL literal of the key column's type (a number stays a number so filters
/// push down to the sources).
async fn key_literal(
    ctx: &SessionContext,
    table: &str,
    key_column: &str,
    key: &str,
) -> Result<String, RunError> {
    let df = ctx
        .table(table)
        .await
        .map_err(|e| EngineError::execution("explain", e))?;
    let numeric = df
        .schema()
        .field_with_unqualified_name(key_column)
        .map(|f| f.data_type().is_integer())
        .unwrap_or(false);
    Ok(if numeric && key.parse::<i64>().is_ok() {
        key.to_string()
    } else {
        literal(key)
    })
}

pub async fn explain(
    pipeline: &Pipeline,
    key: &str,
    date: NaiveDate,
    params: &[String],
) -> Result<Explanation, RunError> {
    let params = pipeline.params.bind(date, params)?;
    let (ctx, _) = engine::session(&EngineOptions::default())?;
    engine::register_sources(&ctx, pipeline).await?;
    for model in &pipeline.models {
        engine::register_view(&ctx, model, &params).await?;
    }
    let store = PipelineStore::new(&pipeline.output, &pipeline.name)?;
    let published = store.published_dates()?.contains(&date);
    let published_run = if published {
        store
            .read_manifest::<crate::report::Manifest>(date)
            .ok()
            .map(|m| m.run_id)
    } else {
        None
    };
    let mut explanation = Explanation {
        pipeline: pipeline.name.clone(),
        key: key.to_string(),
        run_date: date,
        found: false,
        published_run,
        segments: Vec::new(),
        suppressions: Vec::new(),
        offers: Vec::new(),
    };
    let Some(key_column) = pipeline.key.as_deref() else {
        return Ok(explanation);
    };
    let Some(profile_model) = pipeline
        .segments
        .as_ref()
        .map(|s| s.from.clone())
        .or(pipeline.offers.as_ref().map(|o| o.from.clone()))
    else {
        return Ok(explanation);
    };
    let key_sql = key_literal(&ctx, &profile_model, key_column, key).await?;
    crate::suppressions::plan_suppressions(&ctx, pipeline, key_column, &profile_model, &params)
        .await?;
    for suppression in &pipeline.suppressions {
        let sql = format!(
            "SELECT detail FROM ({}) WHERE {key_column} = {key_sql}",
            crate::suppressions::matches_query(key_column, &profile_model, suppression)
        );
        if let Some(row) = one_row(&ctx, &sql, &params).await? {
            let detail = format_value(&row, 0);
            explanation.suppressions.push(SuppressionExplanation {
                name: suppression.name.clone(),
                reason: suppression.reason.clone(),
                scope: suppression.scope.describe(),
                detail: (detail != "NULL").then_some(detail),
            });
        }
    }
    let profile = one_row(
        &ctx,
        &format!("SELECT {key_column} FROM {profile_model} WHERE {key_column} = {key_sql}"),
        &params,
    )
    .await?;
    explanation.found = profile.is_some();
    if let Some(offers) = &pipeline.offers {
        explanation.offers = explain_offers(
            &ctx,
            pipeline,
            offers,
            key_column,
            &key_sql,
            &params,
            &explanation,
            published.then(|| store.run_dir(date)),
        )
        .await?;
    }
    let Some(segments) = &pipeline.segments else {
        return Ok(explanation);
    };
    segments::plan_segments(&ctx, pipeline, segments, &params).await?;

    for segment in &segments.list {
        let mut conditions = Vec::new();
        let qualifies = match &segment.rule {
            Rule::Conditions(list) => {
                let (all, explained) =
                    evaluate_conditions(&ctx, &segments.from, list, key_column, &key_sql, &params)
                        .await?;
                conditions = explained;
                all
            }
            Rule::Sql(_) => one_row(
                &ctx,
                &format!(
                    "SELECT 1 FROM __segflow_segment_{} WHERE {key_column} = {key_sql}",
                    segment.name
                ),
                &params,
            )
            .await?
            .is_some(),
        };
        // Which matching rules hold the customer back, on which of the segment's channels.
        let mut held_back_by = Vec::new();
        let mut whole = false;
        let mut held_channels: Vec<&str> = Vec::new();
        for s in &pipeline.suppressions {
            if !explanation.suppressions.iter().any(|e| e.name == s.name) {
                continue;
            }
            match s.scope.segment_channels(segment) {
                None => {
                    whole = true;
                    held_back_by.push(s.name.clone());
                }
                Some(channels) if !channels.is_empty() => {
                    held_back_by.push(format!("{} (on {})", s.name, channels.join(", ")));
                    held_channels.extend(channels);
                }
                Some(_) => {}
            }
        }
        let every_channel_held = !segment.channels.is_empty()
            && segment
                .channels
                .iter()
                .all(|c| held_channels.contains(&c.as_str()));
        let member = qualifies && !whole && !every_channel_held;
        let group = if member {
            group_of(&ctx, segments, segment, &key_sql, &params).await?
        } else {
            None
        };
        let published_member = if published {
            Some(
                published_member(&store, date, segment, key_column, &key_sql, &ctx, &params)
                    .await?,
            )
        } else {
            None
        };
        explanation.segments.push(SegmentExplanation {
            name: segment.name.clone(),
            description: segment.description.clone(),
            qualifies,
            held_back_by,
            member,
            group,
            published_member,
            conditions,
        });
    }
    Ok(explanation)
}

/// Evaluates conditions for one key: whether all hold, and each with its values.
async fn evaluate_conditions(
    ctx: &SessionContext,
    profile: &str,
    list: &[crate::pipeline::Condition],
    key_column: &str,
    key_sql: &str,
    params: &Params,
) -> Result<(bool, Vec<ConditionExplanation>), RunError> {
    let mut select = Vec::new();
    let mut columns = Vec::new();
    for (i, condition) in list.iter().enumerate() {
        select.push(format!("({}) AS __c{i}", condition.expr));
        let cols = columns_of(&condition.expr);
        for c in &cols {
            select.push(format!("{c} AS \"__v{i}_{c}\""));
        }
        columns.push(cols);
    }
    let sql = format!(
        "SELECT {} FROM {profile} WHERE {key_column} = {key_sql}",
        if select.is_empty() {
            "1".to_string()
        } else {
            select.join(", ")
        },
    );
    let row = one_row(ctx, &sql, params).await?;
    let mut all = row.is_some();
    let mut index = 0;
    let mut explained = Vec::new();
    for (condition, cols) in list.iter().zip(&columns) {
        let (holds, values) = match &row {
            Some(batch) => {
                let holds = batch
                    .column(index)
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .and_then(|a| (!a.is_null(0)).then(|| a.value(0)));
                let values = cols
                    .iter()
                    .enumerate()
                    .map(|(j, c)| (c.clone(), format_value(batch, index + 1 + j)))
                    .collect();
                (holds, values)
            }
            None => (None, Vec::new()),
        };
        index += 1 + cols.len();
        all &= holds == Some(true);
        explained.push(ConditionExplanation {
            name: condition.name.clone(),
            sql: condition.text.clone(),
            holds,
            values,
        });
    }
    Ok((all, explained))
}

#[allow(clippy::too_many_arguments)]
async fn explain_offers(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    offers: &crate::pipeline::Offers,
    key_column: &str,
    key_sql: &str,
    params: &Params,
    so_far: &Explanation,
    published_run: Option<std::path::PathBuf>,
) -> Result<Vec<OfferExplanation>, RunError> {
    let decisions = match published_run
        .map(|d| d.join("decisions"))
        .filter(|d| d.is_dir())
    {
        Some(dir) => {
            crate::run::register_parquet_dir(ctx, "__segflow_published_decisions", &dir).await?;
            true
        }
        None => false,
    };
    let mut list = Vec::new();
    for offer in &offers.list {
        let (eligible, conditions) = evaluate_conditions(
            ctx,
            &offers.from,
            &offer.eligible,
            key_column,
            key_sql,
            params,
        )
        .await?;
        let score = one_row(
            ctx,
            &format!(
                "SELECT {} FROM {} WHERE {key_column} = {key_sql}",
                offer.score_sql(),
                offers.from
            ),
            params,
        )
        .await?
        .map(|b| format_value(&b, 0));
        let held_back_by = pipeline
            .suppressions
            .iter()
            .filter(|s| so_far.suppressions.iter().any(|e| e.name == s.name))
            .filter_map(|s| {
                let channels: Vec<&str> = offer
                    .channels
                    .iter()
                    .filter(|c| {
                        s.scope.covers_offer_channel(&offer.name, c)
                            || offer.suppressed_by.contains(&s.name)
                    })
                    .map(String::as_str)
                    .collect();
                (!channels.is_empty()).then(|| format!("{} (on {})", s.name, channels.join(", ")))
            })
            .collect();
        let (published_status, published_rank) = if decisions {
            let row = one_row(
                ctx,
                &format!(
                    "SELECT status, rank FROM __segflow_published_decisions WHERE {key_column} = {key_sql} AND offer = {}",
                    literal(&offer.name)
                ),
                params,
            )
            .await?;
            match row {
                Some(b) => (
                    Some(format_value(&b, 0)),
                    Some(format_value(&b, 1)).filter(|r| r != "NULL"),
                ),
                None => (Some("not eligible".to_string()), None),
            }
        } else {
            (None, None)
        };
        list.push(OfferExplanation {
            name: offer.name.clone(),
            description: offer.description.clone(),
            eligible,
            conditions,
            score,
            held_back_by,
            published_status,
            published_rank,
        });
    }
    Ok(list)
}

async fn group_of(
    ctx: &SessionContext,
    segments: &crate::pipeline::Segments,
    segment: &Segment,
    key_sql: &str,
    params: &Params,
) -> Result<Option<String>, RunError> {
    let sql = format!(
        "SELECT {} FROM (SELECT {key_sql} AS __key, {} AS segment)",
        segments::group_case(segments, "__key", "segment"),
        literal(&segment.name)
    );
    Ok(one_row(ctx, &sql, params)
        .await?
        .map(|b| format_value(&b, 0)))
}

async fn published_member(
    store: &PipelineStore,
    date: NaiveDate,
    segment: &Segment,
    key_column: &str,
    key_sql: &str,
    ctx: &SessionContext,
    params: &Params,
) -> Result<bool, RunError> {
    let dir = store
        .run_dir(date)
        .join(format!("audiences/segment={}", segment.name));
    if !dir.is_dir() {
        return Ok(false);
    }
    let table = format!("__segflow_published_{}", segment.name);
    crate::run::register_parquet_dir(ctx, &table, &dir).await?;
    Ok(one_row(
        ctx,
        &format!("SELECT 1 FROM {table} WHERE {key_column} = {key_sql}"),
        params,
    )
    .await?
    .is_some())
}

impl ConditionExplanation {
    /// `  ✓ name: sql    [column = value, …]`
    fn line(&self) -> String {
        let mark = match self.holds {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "✗ (NULL)",
        };
        let values: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        format!(
            "  {mark} {}: {}    [{}]\n",
            self.name,
            self.sql,
            values.join(", ")
        )
    }
}

impl Explanation {
    /// The explanation in words.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = format!(
            "customer {} on {} ({})\n",
            self.key, self.run_date, self.pipeline
        );
        if !self.found {
            let _ = writeln!(
                out,
                "  not found in the profile on this date: in no segment"
            );
        }
        match &self.published_run {
            Some(run) => {
                let _ = writeln!(out, "  published run: {run}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "  no run is published for this date; showing what a run would decide"
                );
            }
        }
        for s in &self.segments {
            let verdict = match (&s.group, s.member) {
                (Some(group), true) => format!("MEMBER, group {group}"),
                _ if s.qualifies => {
                    format!("qualifies but held back by {}", s.held_back_by.join(", "))
                }
                _ => "not a member".to_string(),
            };
            let published = match s.published_member {
                Some(true) => ", in the published audience",
                Some(false) => ", not in the published audience",
                None => "",
            };
            let _ = writeln!(
                out,
                "\nsegment {} — {}{}\n  {}",
                s.name, verdict, published, s.description
            );
            for c in &s.conditions {
                out += &c.line();
            }
        }
        for o in &self.offers {
            let status = match (o.published_status.as_deref(), &o.published_rank) {
                (Some(status), Some(rank)) => format!("published: {status}, rank {rank}"),
                (Some("capacity"), None) => {
                    "published: lost to capacity, the offer went to customers it scores higher for"
                        .to_string()
                }
                (Some("outranked"), None) => {
                    "published: outranked, better offers filled max_per_customer".to_string()
                }
                (Some(status), None) => format!("published: {status}"),
                (None, _) => "no published decision".to_string(),
            };
            let _ = writeln!(
                out,
                "\noffer {} — {}, score {} ({status})\n  {}",
                o.name,
                if o.eligible {
                    "eligible"
                } else {
                    "not eligible"
                },
                o.score.as_deref().unwrap_or("-"),
                o.description
            );
            for c in &o.conditions {
                out += &c.line();
            }
            if !o.held_back_by.is_empty() {
                let _ = writeln!(out, "  held back by {}", o.held_back_by.join(", "));
            }
        }
        if !self.suppressions.is_empty() {
            let _ = writeln!(out, "\nsuppressions that apply:");
            for s in &self.suppressions {
                let _ = writeln!(
                    out,
                    "  {} (holds back from {}): {}",
                    s.name, s.scope, s.reason
                );
                if let Some(detail) = &s.detail {
                    let _ = writeln!(out, "    because: {detail}");
                }
            }
        }
        out
    }
}
