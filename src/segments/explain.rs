//! Why a customer is or is not in each segment: the same membership SQL a run executes,
//! evaluated for that customer ([`super::evaluate`] with a key filter), with the values behind
//! each condition.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::Segments;
use super::sql::{HELD, MEMBERS, RAW};
use crate::engine::{self, ConditionExplanation, EngineError};
use crate::sql::{Params, Rule, ident, literal};

#[derive(Debug, Serialize)]
pub struct SegmentExplanation {
    pub name: String,
    pub description: String,
    /// Whether the segment's rule holds for the customer.
    pub qualifies: bool,
    /// Suppressions that hold the customer back from this segment, with the channels they
    /// cover when they hold back only some.
    pub held_back_by: Vec<String>,
    /// In the audience: the rule holds and the customer is reachable on some channel.
    pub member: bool,
    /// The group the key falls in when a member (treatment, control, global_control, variant).
    pub group: Option<String>,
    /// Whether the published run lists the key in this segment's audience.
    pub published_member: Option<bool>,
    pub conditions: Vec<ConditionExplanation>,
}

/// Explains every segment for one key (`key_literal`, a SQL literal of the key's type), from
/// the tables [`super::evaluate`] computed for it; `published_run` is the folder of that
/// date's published run, if any.
pub(crate) async fn explain(
    ctx: &SessionContext,
    key: &str,
    key_literal: &str,
    segments: &Segments,
    params: &Params,
    published_run: Option<&Path>,
) -> Result<Vec<SegmentExplanation>, EngineError> {
    let k = ident(key);
    let mut list = Vec::new();
    for segment in &segments.list {
        let name = literal(&segment.name);
        let this = format!("{k} = {key_literal} AND segment = {name}");
        let conditions = match &segment.rule {
            Rule::Conditions(conditions) => engine::explain_conditions(
                ctx,
                &segments.from,
                conditions,
                key,
                key_literal,
                params,
            )
            .await?
            .unwrap_or_default(),
            Rule::Sql(_) => Vec::new(),
        };
        let qualifies = exists(ctx, &format!("SELECT 1 FROM {RAW} WHERE {this}"), params).await?;
        let held_back_by = held_back_by(ctx, &this, params).await?;
        let group = engine::first_row(
            ctx,
            "explain",
            &format!("SELECT \"group\" FROM {MEMBERS} WHERE {this}"),
            params,
        )
        .await?
        .map(|row| engine::format_value(&row, 0));
        let published_member = match published_run {
            Some(run) => {
                let audience = run.join(format!("audiences/segment={}", segment.name));
                Some(published_in(ctx, &audience, key, key_literal, params).await?)
            }
            None => None,
        };
        list.push(SegmentExplanation {
            name: segment.name.clone(),
            description: segment.description.clone(),
            qualifies,
            held_back_by,
            member: group.is_some(),
            group,
            published_member,
            conditions,
        });
    }
    Ok(list)
}

async fn exists(ctx: &SessionContext, sql: &str, params: &Params) -> Result<bool, EngineError> {
    Ok(engine::first_row(ctx, "explain", sql, params)
        .await?
        .is_some())
}

/// `rule` for a rule holding back the whole segment, `rule (on email, sms)` for one holding
/// back some of its channels.
async fn held_back_by(
    ctx: &SessionContext,
    this: &str,
    params: &Params,
) -> Result<Vec<String>, EngineError> {
    let sql = format!(
        "SELECT suppression, COALESCE(string_agg(NULLIF(channel, '*'), ', ' ORDER BY channel), '') \
         FROM {HELD} WHERE {this} GROUP BY suppression ORDER BY suppression"
    );
    let rows = engine::count_rows(ctx, "explain", &sql, params).await?;
    Ok(rows
        .into_iter()
        .map(|r| match r.labels.get(1).filter(|c| !c.is_empty()) {
            Some(channels) => format!("{} (on {channels})", r.labels[0]),
            None => r.labels[0].clone(),
        })
        .collect())
}

/// Whether a published table (a folder of Parquet) lists the key.
pub(crate) async fn published_in(
    ctx: &SessionContext,
    dir: &Path,
    key: &str,
    key_literal: &str,
    params: &Params,
) -> Result<bool, EngineError> {
    if !dir.is_dir() {
        return Ok(false);
    }
    let table = "__segflow_published";
    engine::register_parquet(ctx, table, dir).await?;
    exists(
        ctx,
        &format!("SELECT 1 FROM {table} WHERE {} = {key_literal}", ident(key)),
        params,
    )
    .await
}
