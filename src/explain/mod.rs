//! `segflow explain`: why customers are or are not in each segment and offer on a date.
//!
//! It runs the same steps as a run — suppressions, segment membership, offer eligibility —
//! restricted to the customers asked about, in a scratch folder: the verdicts come from the
//! very SQL a run executes, so the two cannot disagree. The models run as views, so DataFusion
//! pushes the key filter down where it can. What only a whole run can decide (who lost an offer
//! to capacity) and what was published are read from that date's published run.

mod text;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::engine::{self, EngineError, EngineOptions};
use crate::offers::{self, OfferExplanation};
use crate::pipeline::Pipeline;
use crate::report::Manifest;
use crate::run::RunError;
use crate::segments::{self, SegmentExplanation};
use crate::sql::{KeyFilter, Params, ident, literal};
use crate::store::PipelineStore;
use crate::{erasure, models, sources, suppressions};

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
pub struct SuppressionExplanation {
    pub name: String,
    pub reason: String,
    /// What the rule holds back: everything, or the segments, offers and channels named.
    pub scope: String,
    /// The rule's own account of the data that matched (e.g. the technician visit).
    pub detail: Option<String>,
}

/// A scratch folder for the tables explain computes; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, EngineError> {
        let dir = std::env::temp_dir().join(format!(
            "segflow-explain-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::Write {
            what: "explain".into(),
            source: crate::store::StoreError::io(&dir, "creating a scratch folder")(e),
        })?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Explains each of `keys` on `date`, in the order given.
pub async fn explain(
    pipeline: &Pipeline,
    keys: &[String],
    date: NaiveDate,
    overrides: &[(String, String)],
) -> Result<Vec<Explanation>, RunError> {
    let params = pipeline.params.bind(date, overrides)?;
    let (ctx, _) = engine::session(&EngineOptions::default())?;
    sources::register_all(&ctx, pipeline.sources.values()).await?;
    for model in &pipeline.models {
        models::register_view(&ctx, model, &params).await?;
    }
    let store = PipelineStore::new(&pipeline.output, &pipeline.name)?;
    let published_run = store
        .published_dates()?
        .contains(&date)
        .then(|| store.run_dir(date));
    let run_id = match &published_run {
        Some(_) => Some(store.read_manifest::<Manifest>(date)?.run_id),
        None => None,
    };
    let mut explanations: Vec<Explanation> = keys
        .iter()
        .map(|key| Explanation {
            pipeline: pipeline.name.clone(),
            key: key.clone(),
            run_date: date,
            found: false,
            published_run: run_id.clone(),
            segments: Vec::new(),
            suppressions: Vec::new(),
            offers: Vec::new(),
        })
        .collect();
    let Some((key, profile)) = pipeline.audience() else {
        return Ok(explanations);
    };
    let literals = key_literals(&ctx, profile, key, keys).await?;
    let scratch = Scratch::new()?;
    // What a run of this date compares with: its own published state when there is one.
    let state = match &published_run {
        Some(dir) => Some(dir.clone()),
        None => store.previous_run(date)?.map(|d| store.run_dir(d)),
    };
    evaluate(
        &ctx,
        pipeline,
        &params,
        &literals,
        state.as_deref(),
        &scratch.0,
    )
    .await?;
    for (explanation, key_literal) in explanations.iter_mut().zip(&literals) {
        let published = published_run.as_deref();
        explain_one(&ctx, pipeline, &params, key_literal, published, explanation).await?;
    }
    Ok(explanations)
}

/// The same steps as a run, for the keys explained only.
async fn evaluate(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
    literals: &[String],
    state: Option<&Path>,
    scratch: &Path,
) -> Result<(), RunError> {
    let Some((key, profile)) = pipeline.audience() else {
        return Ok(());
    };
    let only = KeyFilter::new(literals.to_vec());
    let erasure = pipeline.erasure.as_ref();
    erasure::register(ctx, key, erasure, state, scratch, params).await?;
    let rules = &pipeline.suppressions;
    suppressions::evaluate(ctx, rules, key, profile, params, Some(&only), scratch).await?;
    if let Some(segments) = &pipeline.segments {
        segments::evaluate(ctx, key, segments, rules, params, Some(&only), scratch).await?;
    }
    if let Some(offers) = &pipeline.offers {
        offers::evaluate(ctx, key, offers, rules, params, Some(&only), scratch).await?;
    }
    Ok(())
}

async fn explain_one(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
    key_literal: &str,
    published: Option<&Path>,
    explanation: &mut Explanation,
) -> Result<(), RunError> {
    let Some((key, profile)) = pipeline.audience() else {
        return Ok(());
    };
    let sql = format!(
        "SELECT 1 FROM {} WHERE {} = {key_literal}",
        ident(profile),
        ident(key)
    );
    explanation.found = engine::first_row(ctx, "explain", &sql, params)
        .await?
        .is_some();
    let matched = suppressions::matches_for(ctx, key, key_literal, params).await?;
    explanation.suppressions = pipeline
        .suppressions
        .iter()
        .filter_map(|rule| {
            let (_, detail) = matched.iter().find(|(name, _)| *name == rule.name)?;
            Some(SuppressionExplanation {
                name: rule.name.clone(),
                reason: rule.reason.clone(),
                scope: rule.scope.describe(),
                detail: detail.clone(),
            })
        })
        .collect();
    if let Some(offers) = &pipeline.offers {
        explanation.offers =
            offers::explain(ctx, key, key_literal, offers, params, published).await?;
    }
    if let Some(segments) = &pipeline.segments {
        explanation.segments =
            segments::explain(ctx, key, key_literal, segments, params, published).await?;
    }
    Ok(())
}

/// Each key as a SQL literal of the key column's type (a number stays a number so filters
/// push down to the sources).
async fn key_literals(
    ctx: &SessionContext,
    profile: &str,
    key: &str,
    keys: &[String],
) -> Result<Vec<String>, EngineError> {
    let numeric = ctx
        .table(ident(profile).as_str())
        .await
        .map_err(|e| EngineError::execution("explain", e))?
        .schema()
        .field_with_unqualified_name(key)
        .map(|f| f.data_type().is_integer())
        .unwrap_or(false);
    Ok(keys
        .iter()
        .map(|k| match (numeric, k.parse::<i64>()) {
            (true, Ok(n)) => n.to_string(),
            // Text can never equal a numeric key: that customer is not found.
            (true, Err(_)) => "NULL".to_string(),
            (false, _) => literal(k),
        })
        .collect())
}
