//! `segflow validate`: everything a run would plan, planned against the sources' schemas, with
//! no data row read.

use super::RunError;
use crate::engine::{self, EngineOptions};
use crate::pipeline::Pipeline;
use crate::{checks, erasure, models, offers, segments, sources, suppressions};

/// Registers sources and plans every model, segment, suppression, offer and check.
pub async fn validate(pipeline: &Pipeline) -> Result<(), RunError> {
    let options = EngineOptions::default();
    let stores = pipeline.open_stores(options.store_timeout)?;
    let (ctx, _) = engine::session(&options, &stores).await?;
    sources::register_all(&ctx, pipeline.sources.values()).await?;
    let params = pipeline.params.bind(chrono::Utc::now().date_naive(), &[])?;
    for model in &pipeline.models {
        models::register_view(&ctx, model, &params).await?;
    }
    if let (Some(key), Some(segments)) = (pipeline.key(), &pipeline.segments) {
        let (columns, at) = (&pipeline.activation_columns, &pipeline.output_at);
        segments::plan(&ctx, key, segments, columns, at, &params).await?;
    }
    if let (Some(key), Some(offers)) = (pipeline.key(), &pipeline.offers) {
        offers::plan(&ctx, key, offers, &params).await?;
    }
    checks::plan(&ctx, &pipeline.checks, &params).await?;
    if let (Some(key), Some(erasure)) = (pipeline.key(), &pipeline.erasure) {
        erasure::plan(&ctx, key, erasure).await?;
        if let Some((_, profile)) = pipeline.audience() {
            erasure::check_key_kind(&ctx, key, erasure, profile).await?;
        }
    }
    if let Some((key, _)) = pipeline.audience() {
        suppressions::plan(
            &ctx,
            &pipeline.suppressions,
            key,
            &pipeline.profiles(),
            &params,
        )
        .await?;
    }
    Ok(())
}
