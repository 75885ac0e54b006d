//! Zero-segment decisioning: every customer gets the best offers they are eligible for.
//!
//! 1. **Eligible**: per offer, the customers for whom every eligibility condition holds, with
//!    the offer's score (its score expression, or its priority).
//! 2. **Suppressed**: suppressions hold back an offer on the channels their scope covers (all
//!    of them for a rule scoped to everything or to the offer). An offer left with no channel
//!    is out for that customer.
//! 3. **Decided**: each customer ranks what is left by score (higher first), then priority
//!    (higher first), then offer name. Capacity is allocated by deferred acceptance: each
//!    customer proposes their best `max_per_customer` offers not yet refused; an offer with
//!    capacity keeps the proposals it scores highest (ties: lower `segflow_bucket(offer, key)`
//!    first, then key) and refuses the rest, who propose their next best offer in the next
//!    round. Rounds repeat until nobody is refused (at most one round per offer), so capacity
//!    goes to the customers an offer scores highest for, and a customer who loses an offer to
//!    capacity gets their next best one.
//! 4. **Grouped**: global holdout → `global_control`, the offer's holdout → `control`, else
//!    `treatment`; assigned after the decision, so control customers are comparable.
//!
//! Channels never re-decide: `offers/` holds one row per (customer, offer, channel) with the
//! rank from the single decision; an email tool filters `channel = 'email'`.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::engine::{self, EngineError};
use crate::pipeline::sql::literal;
use crate::pipeline::{Holdout, Offer, Offers, Params, Pipeline};
use crate::report::{Output, OutputKind};
use crate::run::{RunError, RunPaths, register_parquet_dir, write_query};
use crate::suppressions::{self, SUPPRESSIONS, values};

const ELIGIBLE: &str = "__segflow_offer_eligible";
const AVAILABLE: &str = "__segflow_offer_channels";
pub const HELD: &str = "__segflow_held_offers";
const CANDIDATES: &str = "__segflow_offer_candidates";
const ASSIGNED: &str = "__segflow_offers_assigned";
const DECISIONS: &str = "__segflow_offer_decisions";
/// Deferred acceptance settles in a few rounds on real data; this only guards the loop.
const MAX_ROUNDS: usize = 200;

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
}

fn bucket_below(holdout: &Holdout, key: &str) -> String {
    format!(
        "segflow_bucket({}, {key}) < {}",
        literal(&holdout.salt),
        holdout.below
    )
}

fn eligible_query(key: &str, profile: &str, offer: &Offer) -> String {
    let all: Vec<String> = offer
        .eligible
        .iter()
        .map(|c| format!("COALESCE(({}), false)", c.expr))
        .collect();
    let reasons: Vec<&str> = offer.eligible.iter().map(|c| c.reason.as_str()).collect();
    format!(
        "SELECT {key}, {name} AS offer, {score} AS score, CAST({priority} AS BIGINT) AS priority, {reasons} AS reasons \
         FROM {profile} WHERE {all}",
        name = literal(&offer.name),
        score = offer.score_sql(),
        priority = offer.priority,
        reasons = literal(&reasons.join("; ")),
        all = if all.is_empty() {
            "true".into()
        } else {
            all.join(" AND ")
        },
    )
}

/// Plans every offer's eligibility and score, reading no rows (`validate`).
pub async fn plan_offers(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    params: &Params,
) -> Result<(), EngineError> {
    for offer in &offers.list {
        let what = format!("offer {}", offer.name);
        crate::segments::check_conditions(ctx, &offers.from, &offer.eligible, &what, params)
            .await?;
        engine::plan_sql(ctx, &eligible_query(key, &offers.from, offer), params)
            .await
            .map_err(|e| match e {
                EngineError::Execution { message, .. } => EngineError::Plan {
                    at: offer.at.clone(),
                    what: format!("offer {}", offer.name),
                    message,
                },
                other => other,
            })?;
    }
    Ok(())
}

/// Decides every customer's offers and writes `offers/`, `offer_changes/` and
/// `decisions/` into the staged run.
pub async fn run_offers(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    offers: &Offers,
    params: &Params,
    paths: RunPaths<'_>,
    outputs: &mut Vec<Output>,
) -> Result<Vec<OfferStats>, RunError> {
    let key = pipeline
        .key
        .as_deref()
        .expect("compile requires a key with offers");
    let RunPaths {
        run_dir,
        work_dir,
        previous_run,
    } = paths;
    plan_offers(ctx, key, offers, params).await?;
    let scratch = |name: &str| work_dir.join(name);

    // 1. Eligible.
    let union: Vec<String> = offers
        .list
        .iter()
        .map(|o| eligible_query(key, &offers.from, o))
        .collect();
    let sql = format!(
        "SELECT * FROM ({}) WHERE {}",
        union.join(" UNION ALL "),
        suppressions::not_erased(key)
    );
    materialize(
        ctx,
        "offer eligibility",
        &sql,
        params,
        &scratch("eligible"),
        work_dir,
        ELIGIBLE,
    )
    .await?;

    // 2. Channels held back by suppressions; what is left is available.
    let offer_channels = values(
        offers
            .list
            .iter()
            .flat_map(|o| {
                o.channels
                    .iter()
                    .map(move |c| format!("({}, {})", literal(&o.name), literal(c)))
            })
            .collect(),
        &["offer", "channel"],
    );
    let scope = values(
        pipeline
            .suppressions
            .iter()
            .flat_map(|s| {
                offers.list.iter().flat_map(move |o| {
                    o.channels
                        .iter()
                        .filter(move |c| {
                            s.scope.covers_offer_channel(&o.name, c)
                                || o.suppressed_by.contains(&s.name)
                        })
                        .map(move |c| {
                            format!(
                                "({}, {}, {})",
                                literal(&s.name),
                                literal(&o.name),
                                literal(c)
                            )
                        })
                })
            })
            .collect(),
        &["suppression", "offer", "channel"],
    );
    // Each match spread over the (offer, channel) pairs its rule covers first, then joined to
    // the eligible offers on (key, offer): two equi-joins, whatever the number of rules.
    let held = format!(
        "WITH covered AS ( \
           SELECT s.{key}, sc.offer, sc.channel, s.suppression, s.reason, s.detail \
           FROM {SUPPRESSIONS} s JOIN ({scope}) sc ON sc.suppression = s.suppression \
           WHERE s.offer IS NULL OR s.offer = sc.offer) \
         SELECT e.{key}, 'offer' AS held_back_from, e.offer || ' via ' || h.channel AS target, \
                e.offer, h.channel, h.suppression, h.reason, h.detail \
         FROM {ELIGIBLE} e JOIN covered h ON h.{key} = e.{key} AND h.offer = e.offer"
    );
    materialize(
        ctx,
        "offer suppressions",
        &held,
        params,
        &scratch("held_offers"),
        work_dir,
        HELD,
    )
    .await?;
    let available = format!(
        "SELECT e.{key}, e.offer, oc.channel FROM {ELIGIBLE} e JOIN ({offer_channels}) oc ON oc.offer = e.offer \
         WHERE NOT EXISTS (SELECT 1 FROM {HELD} h WHERE h.{key} = e.{key} AND h.offer = e.offer AND h.channel = oc.channel)"
    );
    materialize(
        ctx,
        "offer channels",
        &available,
        params,
        &scratch("available"),
        work_dir,
        AVAILABLE,
    )
    .await?;

    // 3. Candidates in each customer's order of preference.
    let candidates = format!(
        "SELECT e.{key}, e.offer, e.score, e.priority, e.reasons, \
                ROW_NUMBER() OVER (PARTITION BY e.{key} ORDER BY e.score DESC, e.priority DESC, e.offer) AS preference, \
                segflow_bucket(e.offer, e.{key}) AS tie_break \
         FROM {ELIGIBLE} e WHERE EXISTS (SELECT 1 FROM {AVAILABLE} a WHERE a.{key} = e.{key} AND a.offer = e.offer)"
    );
    materialize(
        ctx,
        "offer candidates",
        &candidates,
        params,
        &scratch("candidates"),
        work_dir,
        CANDIDATES,
    )
    .await?;

    // Deferred acceptance over capacity, one set-based round at a time.
    let capacity = {
        let limited: Vec<String> = offers
            .list
            .iter()
            .filter_map(|o| {
                o.capacity
                    .map(|c| format!("WHEN {} THEN {c}", literal(&o.name)))
            })
            .collect();
        if limited.is_empty() {
            "CAST(NULL AS BIGINT)".to_string()
        } else {
            format!("CASE offer {} ELSE NULL END", limited.join(" "))
        }
    };
    let max = offers.max_per_customer;
    let mut refused_table = "__segflow_refused_0".to_string();
    let empty = format!("SELECT {key}, offer FROM {CANDIDATES} WHERE false");
    materialize(
        ctx,
        "offer decision",
        &empty,
        params,
        &scratch("refused_0"),
        work_dir,
        &refused_table,
    )
    .await?;
    let proposals = |refused: &str| {
        format!(
            "SELECT * FROM ( \
               SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.{key} ORDER BY c.preference) AS slot FROM {CANDIDATES} c \
               WHERE NOT EXISTS (SELECT 1 FROM {refused} r WHERE r.{key} = c.{key} AND r.offer = c.offer)) \
             WHERE slot <= {max}"
        )
    };
    let ranked = |refused: &str| {
        format!(
            "SELECT p.*, ROW_NUMBER() OVER (PARTITION BY p.offer ORDER BY p.score DESC, p.tie_break, p.{key}) AS position, \
                    {capacity} AS capacity FROM ({}) p",
            proposals(refused)
        )
    };
    let mut refused_rows = 0;
    let mut settled = false;
    for round in 1..=MAX_ROUNDS {
        let next = format!("__segflow_refused_{round}");
        let sql = format!(
            "SELECT {key}, offer FROM {refused_table} UNION ALL \
             SELECT {key}, offer FROM ({}) WHERE capacity IS NOT NULL AND position > capacity",
            ranked(&refused_table)
        );
        let written = materialize(
            ctx,
            "offer decision",
            &sql,
            params,
            &scratch(&format!("refused_{round}")),
            work_dir,
            &next,
        )
        .await?;
        refused_table = next;
        // Refusals only accumulate: no new row means nobody was refused this round.
        let before = std::mem::replace(&mut refused_rows, written);
        if written == before {
            settled = true;
            break;
        }
    }
    if !settled {
        return Err(RunError::Engine(EngineError::Execution {
            what: "offer decision".into(),
            message: format!("capacity allocation did not settle in {MAX_ROUNDS} rounds"),
        }));
    }
    let assigned = format!(
        "SELECT {key}, offer, score, reasons, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY preference) AS rank \
         FROM ({}) WHERE capacity IS NULL OR position <= capacity",
        ranked(&refused_table)
    );
    materialize(
        ctx,
        "offer decision",
        &assigned,
        params,
        &scratch("assigned"),
        work_dir,
        ASSIGNED,
    )
    .await?;

    // 4. Groups, and one row per channel the offer may still use.
    let mut group = String::from("CASE");
    if let Some(global) = pipeline.segments.as_ref().and_then(|s| s.holdout.as_ref()) {
        group += &format!(
            " WHEN {} THEN 'global_control'",
            bucket_below(global, &format!("a.{key}"))
        );
    }
    for offer in &offers.list {
        if let Some(holdout) = &offer.holdout {
            group += &format!(
                " WHEN a.offer = {} AND {} THEN 'control'",
                literal(&offer.name),
                bucket_below(holdout, &format!("a.{key}"))
            );
        }
    }
    let group = if group == "CASE" {
        "'treatment'".to_string()
    } else {
        group + " ELSE 'treatment' END"
    };
    let sql = format!(
        "SELECT a.{key}, a.rank, a.offer, a.score, c.channel, {group} AS \"group\", a.reasons \
         FROM {ASSIGNED} a JOIN {AVAILABLE} c ON c.{key} = a.{key} AND c.offer = a.offer \
         ORDER BY a.{key}, a.rank, c.channel"
    );
    let written = write_query(
        ctx,
        "offers",
        &sql,
        params,
        &run_dir.join("offers"),
        run_dir,
    )
    .await?;
    outputs.push(written.into_output("offers", OutputKind::Offers, "offers".into()));

    // Every eligible (customer, offer) and what became of it, for audits and `explain`.
    let decisions = format!(
        "SELECT e.{key}, e.offer, e.score, \
           CASE WHEN a.rank IS NOT NULL THEN 'assigned' \
                WHEN c.{key} IS NULL THEN 'suppressed' \
                WHEN r.{key} IS NOT NULL THEN 'capacity' \
                ELSE 'outranked' END AS status, \
           a.rank \
         FROM {ELIGIBLE} e LEFT JOIN {CANDIDATES} c ON c.{key} = e.{key} AND c.offer = e.offer \
         LEFT JOIN {ASSIGNED} a ON a.{key} = e.{key} AND a.offer = e.offer \
         LEFT JOIN (SELECT DISTINCT {key}, offer FROM {refused_table}) r ON r.{key} = e.{key} AND r.offer = e.offer \
         ORDER BY e.{key}, e.offer"
    );
    let written = write_query(
        ctx,
        "decisions",
        &decisions,
        params,
        &run_dir.join("decisions"),
        run_dir,
    )
    .await?;
    outputs.push(written.into_output("decisions", OutputKind::Decisions, "decisions".into()));
    register_parquet_dir(ctx, DECISIONS, &run_dir.join("decisions")).await?;

    // Changes since the previous run, by rank: new, dropped, swapped.
    let previous = previous_run
        .map(|d| d.join("offers"))
        .filter(|d| d.is_dir());
    let before = match &previous {
        Some(dir) => {
            register_parquet_dir(ctx, "__segflow_previous_offers", dir).await?;
            format!(
                "SELECT DISTINCT {key}, rank, offer FROM __segflow_previous_offers p WHERE {}",
                suppressions::not_erased(&format!("p.{key}"))
            )
        }
        None => format!("SELECT {key}, rank, offer FROM {ASSIGNED} WHERE false"),
    };
    let changes = format!(
        "SELECT COALESCE(t.{key}, y.{key}) AS {key}, COALESCE(t.rank, y.rank) AS rank, \
           CASE WHEN y.offer IS NULL THEN 'new' WHEN t.offer IS NULL THEN 'dropped' ELSE 'swapped' END AS change, \
           t.offer AS offer, y.offer AS previous_offer \
         FROM (SELECT {key}, rank, offer FROM {ASSIGNED}) t FULL OUTER JOIN ({before}) y ON y.{key} = t.{key} AND y.rank = t.rank \
         WHERE t.offer IS DISTINCT FROM y.offer ORDER BY 1, 2"
    );
    let written = write_query(
        ctx,
        "offer changes",
        &changes,
        params,
        &run_dir.join("offer_changes"),
        run_dir,
    )
    .await?;
    outputs.push(written.into_output("offer_changes", OutputKind::Changes, "offer_changes".into()));

    stats(ctx, key, offers, params).await
}

/// Streams `sql` into scratch Parquet and registers it as `table`; returns its row count.
async fn materialize(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    dir: &Path,
    work_dir: &Path,
    table: &str,
) -> Result<u64, RunError> {
    let written = write_query(ctx, what, sql, params, dir, work_dir).await?;
    register_parquet_dir(ctx, table, dir).await?;
    Ok(written.rows())
}

async fn stats(
    ctx: &SessionContext,
    key: &str,
    offers: &Offers,
    params: &Params,
) -> Result<Vec<OfferStats>, RunError> {
    let rows = engine::count_rows(
        ctx,
        "offer counts",
        &format!(
            "SELECT offer, COUNT(DISTINCT {key}) AS eligible, \
                    SUM(CASE WHEN status = 'suppressed' THEN 1 ELSE 0 END) AS suppressed, \
                    SUM(CASE WHEN status = 'capacity' THEN 1 ELSE 0 END) AS capped, \
                    SUM(CASE WHEN status = 'outranked' THEN 1 ELSE 0 END) AS outranked, \
                    SUM(CASE WHEN status = 'assigned' THEN 1 ELSE 0 END) AS assigned \
             FROM {DECISIONS} GROUP BY offer"
        ),
        params,
    )
    .await?;
    let mut list: Vec<OfferStats> = offers
        .list
        .iter()
        .map(|o| OfferStats {
            name: o.name.clone(),
            description: o.description.clone(),
            ..Default::default()
        })
        .collect();
    for row in rows {
        if let (Some(s), &[eligible, suppressed, capped, outranked, assigned]) = (
            list.iter_mut().find(|s| s.name == row.labels[0]),
            &row.counts[..],
        ) {
            (s.eligible, s.suppressed, s.capped, s.outranked, s.assigned) =
                (eligible, suppressed, capped, outranked, assigned);
        }
    }
    Ok(list)
}
