//! The decisioning steps of a run: plan every offer, evaluate eligibility and suppressions,
//! decide under capacity, then publish offers, decisions and changes.

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::Offers;
use super::counts::{ChangeCounts, DecisionCounts};
pub(crate) use super::sql::HELD;
use super::sql::{self, ASSIGNED, CANDIDATES, ELIGIBLE, Status};
use crate::engine::{self, EngineError, PlanError, TableLayout};
use crate::erasure::Keep;
use crate::holdouts::Holdout;
use crate::objects::Folder;
use crate::sql::Params;
use crate::store::{Output, OutputKind, RunDirs};
use crate::suppressions::{self, Suppression};

/// Deferred acceptance settles in a few rounds on real data; this only guards the loop.
const MAX_ROUNDS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum OffersError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("offer decision: capacity allocation did not settle in {0} rounds")]
    Unsettled(usize),
}

/// What the manifest records for one offer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OfferStats {
    pub name: String,
    pub description: String,
    /// Customers for whom every eligibility condition holds.
    pub eligible: u64,
    /// Eligible customers the offer was held back from on every channel.
    pub suppressed: u64,
    /// Customers who wanted it but lost it to capacity.
    pub capped: u64,
    /// Customers for whom better offers filled `max_per_customer`.
    pub outranked: u64,
    pub assigned: u64,
    /// Customers assigned the offer who did not have it in the previous run, and customers
    /// who had it and do not now (none without a previous run; absent from older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    /// The offer's capacity in this run (`null`: no limit; absent from older manifests).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub capacity: Option<Option<u64>>,
}

/// A field that is present, `null` included (`Some(None)`), as told from one that is absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// Plans every offer's eligibility and score against the profile, reading no rows.
pub(crate) async fn plan(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    params: &Params,
) -> Result<(), PlanError> {
    engine::check_key(ctx, &offers.from, key, &offers.from_at, "offers.from").await?;
    for offer in &offers.list {
        let what = format!("offer {}", offer.name);
        engine::check_conditions(ctx, &offers.from, &offer.eligible, &what, params).await?;
        if let Some(score) = &offer.score {
            engine::check_score(ctx, &offers.from, score, &what, params).await?;
        }
        let sql = sql::eligible_for(key, &offers.from, offer);
        engine::plan_located(ctx, &sql, params, &offer.at, &what).await?;
    }
    Ok(())
}

/// Eligibility, suppressions and the channels left, for the keys `keep` keeps: what the
/// decision chooses from. Reads the suppressions' matches, which must be evaluated first.
pub(crate) async fn evaluate(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    suppressions: &[Suppression],
    params: &Params,
    keep: Keep<'_>,
    work_dir: &Folder,
) -> Result<(), OffersError> {
    plan(ctx, key, offers, params).await?;
    let eligible = sql::eligible(key, offers, keep);
    let evaluated = engine::materialize(
        ctx,
        "offer eligibility",
        &eligible,
        params,
        work_dir,
        ELIGIBLE,
    )
    .await;
    if let Err(err) = evaluated {
        let mut rules = Vec::new();
        for o in &offers.list {
            for c in o.eligible.iter().chain(&o.score) {
                rules.push((format!("offer {}, {}", o.name, c.name), c));
            }
        }
        return Err(
            engine::locate_failure(ctx, &offers.from, rules, params, err)
                .await
                .into(),
        );
    }
    let held = suppressions::held_from_offers(
        key,
        ELIGIBLE,
        suppressions::MATCHES,
        suppressions,
        &offers.reach(),
    );
    engine::materialize(ctx, "offer suppressions", &held, params, work_dir, HELD).await?;
    let candidates = sql::candidates(key, offers);
    engine::materialize(
        ctx,
        "offer candidates",
        &candidates,
        params,
        work_dir,
        CANDIDATES,
    )
    .await?;
    Ok(())
}

/// The decision under capacity, by deferred acceptance, one set-based round at a time; returns
/// the table of refusals it settled on.
pub(crate) async fn decide(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    params: &Params,
    work_dir: &Folder,
) -> Result<String, OffersError> {
    let what = "offer decision";
    let mut refused = "__segflow_refused_0".to_string();
    engine::materialize(
        ctx,
        what,
        &sql::no_refusals(key),
        params,
        work_dir,
        &refused,
    )
    .await?;
    let mut refusals = 0;
    for round in 1..=MAX_ROUNDS {
        let next = format!("__segflow_refused_{round}");
        let sql = sql::refusals_after_round(key, offers, &refused);
        let rows = engine::materialize(ctx, what, &sql, params, work_dir, &next).await?;
        refused = next;
        // Refusals only accumulate: no new row means nobody was refused this round.
        if std::mem::replace(&mut refusals, rows) == rows {
            let assigned = sql::assigned(key, offers, &refused);
            engine::materialize(ctx, what, &assigned, params, work_dir, ASSIGNED).await?;
            return Ok(refused);
        }
    }
    Err(OffersError::Unsettled(MAX_ROUNDS))
}

/// What publishing the decisions wrote, and the counts per offer.
pub(crate) struct OffersRun {
    pub(crate) outputs: Vec<Output>,
    pub(crate) stats: Vec<OfferStats>,
}

/// Writes `offers/`, `decisions/` and `offer_changes/` into the staged run. `global` is the
/// segments' global holdout, `refused` the table [`decide`] settled on.
pub(crate) async fn publish(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    global: Option<&Holdout>,
    refused: &str,
    params: &Params,
    dirs: RunDirs<'_>,
) -> Result<OffersRun, OffersError> {
    let run_dir = dirs.run_dir;
    let write = |what: &'static str, sql: String, kind: OutputKind| async move {
        let target = run_dir.join(what);
        let layout = TableLayout::published(Some(key), params.run_date());
        let written =
            engine::write_query(ctx, what, &sql, params, &target, run_dir, layout).await?;
        Ok::<_, EngineError>(written.into_output(what, kind, what))
    };
    let mut outputs = vec![
        write(
            "offers",
            sql::published(key, offers, global),
            OutputKind::Offers,
        )
        .await?,
    ];
    let what = "decisions";
    let (decisions, counts) = engine::write_query_observed(
        ctx,
        what,
        &sql::decisions(key, refused),
        params,
        &run_dir.join(what),
        run_dir,
        TableLayout::published(Some(key), params.run_date()),
        DecisionCounts::new(key),
    )
    .await?;
    outputs.push(decisions.into_output(what, OutputKind::Decisions, what));
    let before = dirs
        .previous("offers")
        .await
        .map_err(|source| EngineError::Write {
            what: "offer changes".into(),
            source,
        })?;
    let previous = match before {
        Some(dir) => {
            engine::register_parquet(ctx, "__segflow_previous_offers", &dir).await?;
            Some(sql::previous(key, "__segflow_previous_offers"))
        }
        None => None,
    };
    // With a previous run, who gained and lost each offer is counted as the changes are
    // written (for the circuit breakers); a first run's changes are all new.
    let what = "offer_changes";
    let (changes, moved) = engine::write_query_observed(
        ctx,
        what,
        &sql::changes(key, previous.as_deref()),
        params,
        &run_dir.join(what),
        run_dir,
        TableLayout::published(Some(key), params.run_date()),
        previous.as_ref().map(|_| ChangeCounts::new(key)),
    )
    .await?;
    outputs.push(changes.into_output(what, OutputKind::Changes, what));
    Ok(OffersRun {
        outputs,
        stats: stats(offers, &counts, moved.as_ref()),
    })
}

fn stats(
    offers: &Offers,
    counts: &DecisionCounts,
    moved: Option<&ChangeCounts>,
) -> Vec<OfferStats> {
    offers
        .list
        .iter()
        .map(|o| {
            let tally = counts.tallies.get(&o.name).copied().unwrap_or_default();
            OfferStats {
                name: o.name.clone(),
                description: o.description.clone(),
                eligible: tally.eligible,
                suppressed: tally.of(Status::Suppressed),
                capped: tally.of(Status::Capacity),
                outranked: tally.of(Status::Outranked),
                assigned: tally.of(Status::Assigned),
                added: moved.map(|m| m.moved.get(&o.name).map_or(0, |c| c.0)),
                removed: moved.map(|m| m.moved.get(&o.name).map_or(0, |c| c.1)),
                capacity: Some(o.capacity),
            }
        })
        .collect()
}
