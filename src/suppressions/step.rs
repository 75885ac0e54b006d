//! The suppression steps of a run: plan every rule, evaluate them once into a table of
//! matches, and write `suppressed/` with per-rule counts once segments and offers applied them.

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::Suppression;
pub(crate) use super::sql::Held;
use super::sql::{DETAIL, all_matches, counts, matches_query, rule_view, rules, suppressed};
use crate::engine::{self, EngineError, PlanError, RuleColumns, TableLayout};
use crate::erasure::Keep;
use crate::objects::Folder;
use crate::sql::{KeyFilter, Params, Rule, ident};
use crate::store::{Output, OutputKind};

/// Every rule's matches today: `(key, suppression, detail, offer)`.
pub(crate) const MATCHES: &str = "__segflow_suppressions";

#[derive(Debug, thiserror::Error)]
pub enum SuppressionsError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the manifest records for one suppression rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SuppressionStats {
    pub name: String,
    pub reason: String,
    pub scope: String,
    /// Customers the rule matched today.
    pub matched: u64,
    /// (customer, segment or offer) pairs it held back.
    pub held_back: u64,
}

/// Registers SQL rules as views and plans every rule against the profile, reading no rows.
pub(crate) async fn plan(
    ctx: &SessionContext,
    suppressions: &[Suppression],
    key: &str,
    profile: &str,
    params: &Params,
) -> Result<(), PlanError> {
    for suppression in suppressions {
        let what = format!("suppression {}", suppression.name);
        match &suppression.rule {
            Rule::Conditions(conditions) => {
                engine::check_conditions(ctx, profile, conditions, &what, params).await?
            }
            Rule::Sql(query) => {
                let columns = RuleColumns {
                    grouped: &["offer"],
                    first: &["detail"],
                };
                let view = rule_view(suppression);
                engine::register_rule_query(ctx, &what, query, key, &view, columns, params).await?
            }
        }
        let sql = matches_query(key, profile, suppression);
        engine::plan_located(ctx, &sql.sql, params, &suppression.at, &what).await?;
    }
    Ok(())
}

/// Evaluates every rule once into [`MATCHES`] (scratch space), for the keys `keep` keeps.
pub(crate) async fn evaluate(
    ctx: &SessionContext,
    suppressions: &[Suppression],
    key: &str,
    profile: &str,
    params: &Params,
    keep: Keep<'_>,
    work_dir: &Folder,
) -> Result<(), SuppressionsError> {
    plan(ctx, suppressions, key, profile, params).await?;
    let sql = all_matches(key, profile, suppressions, keep);
    if let Err(err) =
        engine::materialize(ctx, "suppressions", &sql, params, work_dir, MATCHES).await
    {
        let mut rules = Vec::new();
        for s in suppressions {
            for c in s.rule.conditions() {
                rules.push((format!("suppression {}, condition {}", s.name, c.name), c));
            }
        }
        return Err(engine::locate_failure(ctx, profile, rules, params, err)
            .await
            .into());
    }
    Ok(())
}

/// Writes `suppressed/` from the held tables of segments and offers (`key, segment or offer,
/// channel, suppression, detail`): every (customer, segment or offer) held back, by which rule
/// and why. Returns the output and the per-rule counts for the manifest.
pub(crate) async fn write_suppressed(
    ctx: &SessionContext,
    key: &str,
    suppressions: &[Suppression],
    held: &[Held<'_>],
    params: &Params,
    run_dir: &Folder,
) -> Result<(Output, Vec<SuppressionStats>), SuppressionsError> {
    let relative = "suppressed";
    let written = engine::write_query(
        ctx,
        "suppressed",
        &suppressed(key, held, suppressions),
        params,
        &run_dir.join(relative),
        run_dir,
        TableLayout::published(Some(key), params.run_date()),
    )
    .await?;
    let output = written.into_output("suppressed", OutputKind::Suppressed, relative);
    let sql = counts(key, MATCHES, held);
    let counts = engine::count_rows(ctx, "suppression counts", &sql, params).await?;
    let mut stats: Vec<SuppressionStats> = suppressions
        .iter()
        .map(|s| SuppressionStats {
            name: s.name.clone(),
            reason: s.reason.clone(),
            scope: s.scope.describe(),
            ..Default::default()
        })
        .collect();
    for row in counts {
        if let (Some(s), &[matched, held_back]) = (
            stats.iter_mut().find(|s| s.name == row.labels[0]),
            &row.counts[..],
        ) {
            (s.matched, s.held_back) = (matched, held_back);
        }
    }
    Ok((output, stats))
}

/// `(key, rule, detail)` for every rule that matched a key `only` selects, in [`MATCHES`]
/// (`explain`).
pub(crate) async fn matches_for(
    ctx: &SessionContext,
    key: &str,
    suppressions: &[Suppression],
    only: &KeyFilter,
    params: &Params,
) -> Result<Vec<(String, String, Option<String>)>, EngineError> {
    let k = ident(key);
    let sql = format!(
        "SELECT h.{k}, h.suppression, MIN({DETAIL}) FROM {MATCHES} h \
         JOIN ({rules}) r ON r.suppression = h.suppression \
         WHERE {mine} GROUP BY h.{k}, h.suppression ORDER BY h.suppression",
        rules = rules(suppressions),
        mine = only.predicate(&format!("h.{k}")),
    );
    let rows = engine::text_rows(ctx, "explain suppressions", &sql, params).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match <[_; 3]>::try_from(row) {
            Ok([Some(key), Some(rule), detail]) => Some((key, rule, detail)),
            _ => None,
        })
        .collect())
}
