//! Why a customer gets (or does not get) each offer: eligibility and suppressions from the same
//! SQL a run executes ([`super::evaluate`] with a key filter), the decision as published.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::Serialize;

use super::Offers;
use super::sql::{ELIGIBLE, HELD};
use crate::engine::{self, ConditionExplanation, EngineError};
use crate::sql::{Params, ident, literal};

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

/// Explains every offer for one key (`key_literal`, a SQL literal of the key's type) from the
/// tables [`super::evaluate`] computed for it; `published_run` is the folder of that date's
/// published run, if any.
pub(crate) async fn explain(
    ctx: &SessionContext,
    key: &str,
    key_literal: &str,
    offers: &Offers,
    params: &Params,
    published_run: Option<&Path>,
) -> Result<Vec<OfferExplanation>, EngineError> {
    let k = ident(key);
    let decisions = published_run
        .map(|run| run.join("decisions"))
        .filter(|dir| dir.is_dir());
    if let Some(dir) = &decisions {
        engine::register_parquet(ctx, "__segflow_published_decisions", dir).await?;
    }
    let mut list = Vec::new();
    for offer in &offers.list {
        let this = format!("{k} = {key_literal} AND offer = {}", literal(&offer.name));
        let conditions = engine::explain_conditions(
            ctx,
            &offers.from,
            &offer.eligible,
            key,
            key_literal,
            params,
        )
        .await?
        .unwrap_or_default();
        let eligible = engine::first_row(
            ctx,
            "explain",
            &format!("SELECT score FROM {ELIGIBLE} WHERE {this}"),
            params,
        )
        .await?;
        let score_sql = format!(
            "SELECT {} FROM {} WHERE {k} = {key_literal}",
            offer.score_sql(),
            ident(&offers.from)
        );
        let score = match &eligible {
            Some(row) => Some(engine::format_value(row, 0)),
            None => engine::first_row(ctx, "explain", &score_sql, params)
                .await?
                .map(|row| engine::format_value(&row, 0)),
        };
        let held = format!(
            "SELECT suppression, string_agg(channel, ', ' ORDER BY channel) FROM {HELD} \
             WHERE {this} GROUP BY suppression ORDER BY suppression"
        );
        let held_back_by = engine::count_rows(ctx, "explain", &held, params)
            .await?
            .into_iter()
            .map(|r| format!("{} (on {})", r.labels[0], r.labels[1]))
            .collect();
        let (published_status, published_rank) = match &decisions {
            Some(_) => published(ctx, &this, params).await?,
            None => (None, None),
        };
        list.push(OfferExplanation {
            name: offer.name.clone(),
            description: offer.description.clone(),
            eligible: eligible.is_some(),
            conditions,
            score,
            held_back_by,
            published_status,
            published_rank,
        });
    }
    Ok(list)
}

/// The published decision for one (customer, offer): status and rank.
async fn published(
    ctx: &SessionContext,
    this: &str,
    params: &Params,
) -> Result<(Option<String>, Option<String>), EngineError> {
    let sql = format!("SELECT status, rank FROM __segflow_published_decisions WHERE {this}");
    Ok(
        match engine::first_row(ctx, "explain", &sql, params).await? {
            Some(row) => (
                Some(engine::format_value(&row, 0)),
                Some(engine::format_value(&row, 1)).filter(|r| r != "NULL"),
            ),
            None => (Some("not eligible".to_string()), None),
        },
    )
}
