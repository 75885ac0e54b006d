//! `segflow explain`: why customers are or are not in each segment and offer on a date.
//!
//! It runs the same steps as a run — suppressions, segment membership, offer eligibility —
//! restricted to the customers asked about, in a scratch folder: the verdicts come from the
//! very SQL a run executes, so the two cannot disagree. The models run as views, so DataFusion
//! pushes the key filter down where it can. What only a whole run can decide (who lost an offer
//! to capacity) and what was published are read from that date's published run.

mod text;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::engine::{self, Engine, EngineError, EngineOptions};
use crate::objects::Folder;
use crate::offers::{self, OfferExplanation};
use crate::pipeline::Pipeline;
use crate::report::Manifest;
use crate::run::RunError;
use crate::segments::{self, SegmentExplanation};
use crate::sql::{KeyFilter, Params, ident, literal};
use crate::{erasure, models, sources, suppressions};

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub pipeline: String,
    pub key: String,
    pub run_date: NaiveDate,
    /// Whether the key exists in the profile model on that date (never for an erased key).
    pub found: bool,
    /// Whether the customer asked to be forgotten: nothing else is told about them.
    pub erased: bool,
    /// Erased by a request no run has carried out yet: the runs published so far still hold
    /// them, until the next run removes them from every one.
    pub erasure_pending: bool,
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
    /// The offer the rule's row named, for a SQL rule returning one: of its scope, it holds
    /// back that offer only (a rule may match a customer once per offer).
    pub offer: Option<String>,
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

    /// The folder's name, unique to this explanation.
    fn name(&self) -> String {
        self.0
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
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
    engine: Engine,
) -> Result<Vec<Explanation>, RunError> {
    let options = EngineOptions {
        engine,
        ..EngineOptions::default()
    };
    let stores = pipeline.open_stores(options.store_timeout)?;
    let store = pipeline.store(&stores);
    let published_run = store.published_run(date).await?;
    let manifest = match &published_run {
        Some(_) => Some(store.read_manifest::<Manifest>(date).await?),
        None => None,
    };
    let run_id = manifest.as_ref().map(|m| m.run_id.clone());
    // The published run's parameters (a run given `--param` publishes what they decide), then
    // the ones given here.
    let mut given = (manifest.as_ref())
        .map(|m| pipeline.params.recorded(&m.parameters))
        .unwrap_or_default();
    given.extend(overrides.iter().cloned());
    let params = pipeline.params.bind(date, &given)?;
    let (ctx, _) = engine::session(&options, &stores).await?;
    sources::register_all(&ctx, pipeline.sources.values()).await?;
    for model in &pipeline.models {
        models::register_view(&ctx, model, &params).await?;
    }
    let Some((key, profile)) = pipeline.audience() else {
        let texts: Vec<String> = keys.to_vec();
        return Ok(texts
            .iter()
            .map(|k| Explanation::empty(pipeline, k, date, run_id.clone()))
            .collect());
    };
    let only = key_filter(&ctx, profile, key, keys).await?;
    let scratch = Scratch::new()?;
    // On a cluster whose output is on an object store, the executors write and read the
    // scratch tables there: they may not share this machine's disk.
    let on_store =
        matches!(options.engine, Engine::Ballista(_)) && store.root().local_path().is_none();
    let scratch_folder = match on_store {
        true => store.root().join(&format!(".scratch/{}", scratch.name())),
        false => Folder::local(&scratch.0),
    };
    engine::share_scratch(&ctx, &scratch_folder);
    let facts = async {
        // What a run of this date compares with: its own published state when there is one.
        let state = match (&published_run, store.previous_run(date).await?) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(previous)) => store.published_run(previous).await?,
            (None, None) => None,
        };
        evaluate(
            &ctx,
            pipeline,
            &params,
            &only,
            state.as_ref(),
            &scratch_folder,
        )
        .await?;
        // The newest run says whether an erasure was carried out already.
        let newest = match store.published_dates().await?.last() {
            Some(date) => store.published_run(*date).await?,
            None => None,
        };
        let published = published_run
            .as_ref()
            .zip(manifest.as_ref())
            .map(|(folder, manifest)| offers::PublishedRun {
                folder,
                offers: manifest.offers.iter().map(|o| o.name.as_str()).collect(),
            });
        let runs = (published.as_ref(), newest.as_ref());
        Facts::gather(&ctx, pipeline, &params, &only, runs).await
    }
    .await;
    if on_store {
        let _ = crate::store::delete_folder(&scratch_folder).await;
    }
    let mut facts = facts?;
    Ok(only
        .texts()
        .iter()
        .map(|text| {
            let mut e = Explanation::empty(pipeline, text, date, run_id.clone());
            if facts.erased.contains(text) {
                e.erased = true;
                e.erasure_pending = facts.erasure_pending.contains(text);
                return e;
            }
            e.found = facts.found.contains(text);
            e.suppressions = facts.suppressions.remove(text).unwrap_or_default();
            e.segments = facts.segments.remove(text).unwrap_or_default();
            e.offers = facts.offers.remove(text).unwrap_or_default();
            e
        })
        .collect())
}

impl Explanation {
    fn empty(pipeline: &Pipeline, key: &str, date: NaiveDate, run: Option<String>) -> Self {
        Explanation {
            pipeline: pipeline.name.clone(),
            key: key.to_string(),
            run_date: date,
            found: false,
            erased: false,
            erasure_pending: false,
            published_run: run,
            segments: Vec::new(),
            suppressions: Vec::new(),
            offers: Vec::new(),
        }
    }
}

/// The same steps as a run, for the keys explained only.
async fn evaluate(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
    only: &KeyFilter,
    state: Option<&Folder>,
    scratch: &Folder,
) -> Result<(), RunError> {
    let Some((key, _)) = pipeline.audience() else {
        return Ok(());
    };
    let erasure = pipeline.erasure.as_ref();
    erasure::register(ctx, key, erasure, &Vec::from_iter(state), scratch, params).await?;
    let rules = &pipeline.suppressions;
    // Every rule's keys are filtered: for the few keys explained, hashing them costs nothing.
    let keep = erasure::Keep {
        only: Some(only),
        clean: &[],
    };
    suppressions::evaluate(ctx, rules, key, &pipeline.profiles(), params, keep, scratch).await?;
    if let Some(segments) = &pipeline.segments {
        segments::evaluate(ctx, key, segments, rules, params, keep, scratch).await?;
    }
    if let Some(offers) = &pipeline.offers {
        offers::evaluate(ctx, key, offers, rules, params, keep, scratch).await?;
    }
    Ok(())
}

/// Every verdict for the keys explained, by key text.
struct Facts {
    found: HashSet<String>,
    /// Keys explained that were erased: their rows are in the sources still, not in any run.
    erased: HashSet<String>,
    /// Of those, the ones the newest published run has not erased yet.
    erasure_pending: HashSet<String>,
    suppressions: HashMap<String, Vec<SuppressionExplanation>>,
    segments: HashMap<String, Vec<SegmentExplanation>>,
    offers: HashMap<String, Vec<OfferExplanation>>,
}

impl Facts {
    async fn gather(
        ctx: &SessionContext,
        pipeline: &Pipeline,
        params: &Params,
        only: &KeyFilter,
        (published, newest): (Option<&offers::PublishedRun<'_>>, Option<&Folder>),
    ) -> Result<Self, RunError> {
        let mut facts = Facts {
            found: HashSet::new(),
            erased: HashSet::new(),
            erasure_pending: HashSet::new(),
            suppressions: HashMap::new(),
            segments: HashMap::new(),
            offers: HashMap::new(),
        };
        let Some((key, profile)) = pipeline.audience() else {
            return Ok(facts);
        };
        let k = ident(key);
        let sql = format!(
            "SELECT {k} FROM {} WHERE {}",
            ident(profile),
            only.predicate(&k)
        );
        facts.found = engine::first_column(engine::text_rows(ctx, "explain", &sql, params).await?);
        let sql = format!("{sql} AND NOT ({})", erasure::not_erased(&k));
        facts.erased = engine::first_column(engine::text_rows(ctx, "explain", &sql, params).await?);
        if !facts.erased.is_empty()
            && let Some(newest) = newest
        {
            let done = newest.join(erasure::STATE);
            facts.erasure_pending = if engine::table_exists("explain", &done).await? {
                let table = "__segflow_explain_erased_before";
                engine::register_parquet(ctx, table, &done).await?;
                let hash = erasure::key_sha256(&k);
                let sql = format!("{sql} AND {hash} NOT IN (SELECT key_sha256 FROM {table})");
                engine::first_column(engine::text_rows(ctx, "explain", &sql, params).await?)
            } else {
                facts.erased.clone()
            };
        }
        for found in
            suppressions::matches_for(ctx, key, &pipeline.suppressions, only, params).await?
        {
            let Some(rule) = pipeline.suppressions.iter().find(|r| r.name == found.rule) else {
                continue;
            };
            facts
                .suppressions
                .entry(found.key)
                .or_default()
                .push(SuppressionExplanation {
                    name: found.rule,
                    reason: rule.reason.clone(),
                    scope: rule.scope.describe(),
                    offer: found.offer,
                    detail: found.detail,
                });
        }
        // In the pipeline's order of rules.
        let position = |name: &str| pipeline.suppressions.iter().position(|r| r.name == name);
        for list in facts.suppressions.values_mut() {
            list.sort_by_key(|s| position(&s.name));
        }
        if let Some(offers) = &pipeline.offers {
            facts.offers = offers::explain(ctx, key, only, offers, params, published).await?;
        }
        if let Some(segments) = &pipeline.segments {
            let published = published.map(|run| run.folder);
            facts.segments = segments::explain(ctx, key, only, segments, params, published).await?;
        }
        Ok(facts)
    }
}

/// The keys as SQL literals of the key column's type (a number stays a number so filters push
/// down to the sources) with the text the key column prints them as.
async fn key_filter(
    ctx: &SessionContext,
    profile: &str,
    key: &str,
    keys: &[String],
) -> Result<KeyFilter, RunError> {
    let numeric = ctx
        .table(profile)
        .await
        .map_err(|e| EngineError::execution("explain", e))?
        .schema()
        .field_with_unqualified_name(key)
        .map(|f| f.data_type().is_integer())
        .unwrap_or(false);
    let filter = keys
        .iter()
        .map(|k| match (numeric, k.trim().parse::<i64>()) {
            (true, Ok(n)) => Ok((n.to_string(), n.to_string())),
            (true, Err(_)) => Err(RunError::NotAKey {
                given: k.clone(),
                key: key.to_string(),
                profile: profile.to_string(),
            }),
            (false, _) => Ok((literal(k), k.clone())),
        });
    Ok(KeyFilter::new(filter.collect::<Result<_, _>>()?))
}
