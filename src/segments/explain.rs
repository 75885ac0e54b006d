//! Why customers are or are not in each segment: the same membership SQL a run executes,
//! evaluated for those customers ([`super::evaluate`] with a key filter), with the values
//! behind each condition. Set-based: a few queries per segment, however many customers.

use std::collections::{HashMap, HashSet};

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::sql::{HELD, MEMBERS, RAW};
use super::{Segment, Segments};
use crate::engine::{self, ConditionExplanation, EngineError};
use crate::objects::Folder;
use crate::sql::{KeyFilter, Params, Rule, ident, literal};
use crate::suppressions;

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

/// Explains every segment for the customers `only` selects, from the tables
/// [`super::evaluate`] computed for them; `published_run` is the folder of that date's
/// published run, if any. Returns each key's (by its text) explanations in segment order.
pub(crate) async fn explain(
    ctx: &SessionContext,
    key: &str,
    only: &KeyFilter,
    segments: &Segments,
    params: &Params,
    published_run: Option<&Folder>,
) -> Result<HashMap<String, Vec<SegmentExplanation>>, EngineError> {
    let mut explained: HashMap<String, Vec<SegmentExplanation>> = HashMap::new();
    for segment in &segments.list {
        let facts = Facts::gather(ctx, key, only, segments, segment, params, published_run).await?;
        for key in only.texts() {
            let group = facts.groups.get(key).cloned().flatten();
            explained
                .entry(key.clone())
                .or_default()
                .push(SegmentExplanation {
                    name: segment.name.clone(),
                    description: segment.description.clone(),
                    qualifies: facts.qualifying.contains(key),
                    held_back_by: facts.held.get(key).cloned().unwrap_or_default(),
                    member: group.is_some(),
                    group,
                    published_member: facts.published.as_ref().map(|p| p.contains(key)),
                    conditions: facts.conditions.get(key).cloned().unwrap_or_default(),
                });
        }
    }
    Ok(explained)
}

/// What the run's tables say about one segment, for the keys explained.
struct Facts {
    qualifying: HashSet<String>,
    held: HashMap<String, Vec<String>>,
    groups: HashMap<String, Option<String>>,
    published: Option<HashSet<String>>,
    conditions: HashMap<String, Vec<ConditionExplanation>>,
}

impl Facts {
    async fn gather(
        ctx: &SessionContext,
        key: &str,
        only: &KeyFilter,
        segments: &Segments,
        segment: &Segment,
        params: &Params,
        published_run: Option<&Folder>,
    ) -> Result<Self, EngineError> {
        let k = ident(key);
        let this = format!(
            "segment = {} AND {}",
            literal(&segment.name),
            only.predicate(&k)
        );
        let conditions = match &segment.rule {
            Rule::Conditions(conditions) => {
                engine::explain_conditions(ctx, &segments.from, conditions, key, only, params)
                    .await?
            }
            Rule::Sql(_) => HashMap::new(),
        };
        let rows =
            |sql: String| async move { engine::text_rows(ctx, "explain", &sql, params).await };
        let qualifying =
            engine::first_column(rows(format!("SELECT {k} FROM {RAW} WHERE {this}")).await?);
        let groups = engine::first_two(
            rows(format!(
                "SELECT {k}, test_group FROM {MEMBERS} WHERE {this}"
            ))
            .await?,
        );
        let held = suppressions::held_back_by(ctx, key, HELD, &this, params).await?;
        let published = match published_run {
            Some(run) => {
                let audience = run.join(&format!("audiences/segment={}", segment.name));
                published_keys(ctx, &audience, key, only, params).await?
            }
            None => None,
        };
        Ok(Self {
            qualifying,
            held,
            groups,
            published,
            conditions,
        })
    }
}

/// The keys a published table (a folder of Parquet) lists, among those explained; `None` when
/// the run has no such table (the segment was added to the pipeline after it).
async fn published_keys(
    ctx: &SessionContext,
    dir: &Folder,
    key: &str,
    only: &KeyFilter,
    params: &Params,
) -> Result<Option<HashSet<String>>, EngineError> {
    if !engine::table_exists("explain", dir).await? {
        return Ok(None);
    }
    let table = "__segflow_published";
    engine::register_parquet(ctx, table, dir).await?;
    let k = ident(key);
    let sql = format!(
        "SELECT DISTINCT {k} FROM {table} WHERE {}",
        only.predicate(&k)
    );
    let keys = engine::text_rows(ctx, "explain", &sql, params).await?;
    Ok(Some(engine::first_column(keys)))
}
