//! Why customers get (or do not get) each offer: eligibility and suppressions from the same SQL
//! a run executes ([`super::evaluate`] with a key filter), the decision as published.
//! Set-based: a few queries per offer, however many customers.

use std::collections::HashMap;

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::sql::{ELIGIBLE, HELD};
use super::{Offer, Offers};
use crate::engine::{self, ConditionExplanation, EngineError};
use crate::objects::Folder;
use crate::sql::{KeyFilter, Params, ident, literal};
use crate::suppressions;

#[derive(Debug, Serialize)]
pub struct OfferExplanation {
    pub name: String,
    pub description: String,
    /// Every eligibility condition holds.
    pub eligible: bool,
    pub conditions: Vec<ConditionExplanation>,
    pub score: Option<String>,
    /// Suppressions holding the offer back: `rule` (the whole offer) or `rule (on email)`.
    pub held_back_by: Vec<String>,
    /// In the published run: assigned, suppressed, capacity (lost to customers it scores
    /// higher for), outranked (better offers filled max_per_customer), or not eligible.
    pub published_status: Option<String>,
    pub published_rank: Option<String>,
}

const PUBLISHED_DECISIONS: &str = "__segflow_published_decisions";

/// A published run whose decisions are explained.
pub(crate) struct PublishedRun<'a> {
    pub(crate) folder: &'a Folder,
    /// The offers it decided: one added to the pipeline since has no decision in it.
    pub(crate) offers: Vec<&'a str>,
}

/// Explains every offer for the customers `only` selects, from the tables
/// [`super::evaluate`] computed for them, and the decisions of that date's published run, if
/// any. Returns each key's (by its text) explanations in offer order.
pub(crate) async fn explain(
    ctx: &SessionContext,
    key: &str,
    only: &KeyFilter,
    offers: &Offers,
    params: &Params,
    published_run: Option<&PublishedRun<'_>>,
) -> Result<HashMap<String, Vec<OfferExplanation>>, EngineError> {
    // A run published before the pipeline had offers has no decisions.
    let mut decided: &[&str] = published_run.map_or(&[], |run| &run.offers);
    if let Some(run) = published_run {
        let dir = run.folder.join("decisions");
        match engine::table_exists("explain", &dir).await? {
            true => engine::register_parquet(ctx, PUBLISHED_DECISIONS, &dir).await?,
            false => decided = &[],
        }
    }
    let mut explained: HashMap<String, Vec<OfferExplanation>> = HashMap::new();
    for offer in &offers.list {
        let mut facts = Facts::gather(ctx, key, only, offers, offer, params).await?;
        let published = match decided.contains(&offer.name.as_str()) {
            true => Some(published(ctx, key, only, offer, params).await?),
            false => None,
        };
        for key in only.texts() {
            let (status, rank) = match &published {
                Some(decided) => match decided.get(key) {
                    Some((status, rank)) => (Some(status.clone()), rank.clone()),
                    None => (Some("not eligible".to_string()), None),
                },
                None => (None, None),
            };
            let eligible_score = facts.eligible.remove(key);
            explained
                .entry(key.clone())
                .or_default()
                .push(OfferExplanation {
                    name: offer.name.clone(),
                    description: offer.description.clone(),
                    eligible: eligible_score.is_some(),
                    conditions: facts.conditions.remove(key).unwrap_or_default(),
                    // An eligible customer's score may be NULL (it then ranks last).
                    score: eligible_score
                        .flatten()
                        .or_else(|| facts.scores.remove(key).flatten()),
                    held_back_by: facts.held.remove(key).unwrap_or_default(),
                    published_status: status,
                    published_rank: rank,
                });
        }
    }
    Ok(explained)
}

/// What the run's tables say about one offer, for the keys explained.
struct Facts {
    /// Eligible keys and their score.
    eligible: HashMap<String, Option<String>>,
    /// The score for every key with a profile row (shown when not eligible too).
    scores: HashMap<String, Option<String>>,
    held: HashMap<String, Vec<String>>,
    conditions: HashMap<String, Vec<ConditionExplanation>>,
}

impl Facts {
    async fn gather(
        ctx: &SessionContext,
        key: &str,
        only: &KeyFilter,
        offers: &Offers,
        offer: &Offer,
        params: &Params,
    ) -> Result<Self, EngineError> {
        let k = ident(key);
        let mine = only.predicate(&k);
        let this = format!("offer = {} AND {mine}", literal(&offer.name));
        let rows =
            |sql: String| async move { engine::text_rows(ctx, "explain", &sql, params).await };
        let conditions =
            engine::explain_conditions(ctx, &offers.from, &offer.eligible, key, only, params)
                .await?;
        let eligible = engine::first_two(
            rows(format!("SELECT {k}, score FROM {ELIGIBLE} WHERE {this}")).await?,
        );
        let scores = engine::first_two(
            rows(format!(
                "SELECT {k}, {} FROM {} WHERE {mine}",
                offer.score_sql(),
                ident(&offers.from)
            ))
            .await?,
        );
        let held = suppressions::held_back_by(ctx, key, HELD, &this, params).await?;
        Ok(Self {
            eligible,
            scores,
            held,
            conditions,
        })
    }
}

/// The published decision for each (customer, offer): status and rank.
async fn published(
    ctx: &SessionContext,
    key: &str,
    only: &KeyFilter,
    offer: &Offer,
    params: &Params,
) -> Result<HashMap<String, (String, Option<String>)>, EngineError> {
    let k = ident(key);
    let sql = format!(
        "SELECT {k}, status, rank FROM {PUBLISHED_DECISIONS} WHERE offer = {} AND {}",
        literal(&offer.name),
        only.predicate(&k)
    );
    let rows = engine::text_rows(ctx, "explain", &sql, params).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(key), Some(status), rank] => Some((key.clone(), (status.clone(), rank.clone()))),
            _ => None,
        })
        .collect())
}
