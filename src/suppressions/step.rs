//! The suppression steps of a run: plan every rule, evaluate them once into a table of
//! matches, and write `suppressed/` with per-rule counts once segments and offers applied them.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::Suppression;
pub(crate) use super::sql::Held;
use super::sql::{DETAIL, all_matches, matched, matches_query, rule_view, rules, suppressed};
use crate::engine::{self, EngineError, Observer, PlanError, RuleColumns, TableLayout};
use crate::erasure::Keep;
use crate::objects::Folder;
use crate::sql::{KeyFilter, Params, Rule, ident, literal};
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
    /// Its rows of `suppressed/`: a (customer, segment or offer) it held back whole, or one of
    /// the channels it held one back on.
    pub held_back: u64,
}

/// Registers SQL rules as views and plans every rule against the profiles (see
/// [`all_matches`]), reading no rows.
pub(crate) async fn plan(
    ctx: &SessionContext,
    suppressions: &[Suppression],
    key: &str,
    profiles: &[&str],
    params: &Params,
) -> Result<(), PlanError> {
    for suppression in suppressions {
        let what = format!("suppression {}", suppression.name);
        match &suppression.rule {
            Rule::Conditions(conditions) => {
                for profile in profiles {
                    // With two profiles, which one lacks what a condition reads.
                    let what = match profiles.len() {
                        1 => what.clone(),
                        _ => format!("{what} (over {profile})"),
                    };
                    engine::check_conditions(ctx, profile, conditions, &what, params).await?;
                    let sql = matches_query(key, profile, suppression);
                    engine::plan_located(ctx, &sql.sql, params, &suppression.at, &what).await?;
                }
            }
            Rule::Sql(query) => {
                let columns = RuleColumns {
                    grouped: &["offer"],
                    first: &["detail"],
                };
                let view = rule_view(suppression);
                let audience = (key, profiles[0]);
                engine::register_rule_query(ctx, &what, query, audience, &view, columns, params)
                    .await?;
                let sql = matches_query(key, profiles[0], suppression);
                engine::plan_located(ctx, &sql.sql, params, &suppression.at, &what).await?;
            }
        }
    }
    Ok(())
}

/// Evaluates every rule once into [`MATCHES`] (scratch space), for the keys `keep` keeps.
pub(crate) async fn evaluate(
    ctx: &SessionContext,
    suppressions: &[Suppression],
    key: &str,
    profiles: &[&str],
    params: &Params,
    keep: Keep<'_>,
    work_dir: &Folder,
) -> Result<(), SuppressionsError> {
    plan(ctx, suppressions, key, profiles, params).await?;
    let sql = all_matches(key, profiles, suppressions, keep);
    if let Err(mut err) =
        engine::materialize(ctx, "suppressions", &sql, params, work_dir, MATCHES).await
    {
        for profile in profiles {
            let mut rules = Vec::new();
            for s in suppressions {
                for c in s.rule.conditions() {
                    rules.push((format!("suppression {}, condition {}", s.name, c.name), c));
                }
            }
            err = engine::locate_failure(ctx, profile, rules, params, err).await;
        }
        let queries = (suppressions.iter())
            .filter(|s| matches!(s.rule, Rule::Sql(_)))
            .map(|s| {
                let sql = matches_query(key, profiles[0], s).sql;
                (format!("suppression {}", s.name), &s.at, sql)
            })
            .collect();
        err = engine::locate_query_failure(ctx, queries, params, err).await;
        return Err(err.into());
    }
    Ok(())
}

/// What a SQL rule's `offer` column named today, in rows: ones naming an offer of the
/// pipeline, and ones naming none (a renamed offer code, a typo), which hold back nothing.
#[derive(Debug, PartialEq)]
pub(crate) struct OffersNamed {
    pub(crate) rule: String,
    pub(crate) known: u64,
    pub(crate) unknown: u64,
}

/// [`OffersNamed`] for each SQL rule whose matches name offers (read from [`MATCHES`]).
pub(crate) async fn offers_named(
    ctx: &SessionContext,
    suppressions: &[Suppression],
    offers: &[&str],
    params: &Params,
) -> Result<Vec<OffersNamed>, EngineError> {
    if !suppressions.iter().any(|s| matches!(s.rule, Rule::Sql(_))) {
        return Ok(Vec::new());
    }
    let listed = offers.iter().map(|o| literal(o)).collect::<Vec<_>>();
    let known = match listed.is_empty() {
        true => "false".to_string(),
        false => format!("offer IN ({})", listed.join(", ")),
    };
    let sql = format!(
        "SELECT suppression, COUNT(*) FILTER (WHERE {known}) AS known, \
         COUNT(*) FILTER (WHERE NOT ({known})) AS unknown \
         FROM {MATCHES} WHERE offer IS NOT NULL GROUP BY suppression"
    );
    let rows = engine::count_rows(ctx, "suppression offers", &sql, params).await?;
    Ok(rows
        .into_iter()
        .map(|row| OffersNamed {
            rule: row.labels.into_iter().next().unwrap_or_default(),
            known: row.counts[0],
            unknown: row.counts[1],
        })
        .collect())
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
    let what = "suppressed";
    let (written, held_back) = engine::write_query_observed(
        ctx,
        what,
        &suppressed(key, held, suppressions),
        params,
        &run_dir.join(what),
        run_dir,
        TableLayout::published(Some(key), params.run_date()),
        RowsPerRule::default(),
    )
    .await?;
    let output = written.into_output(what, OutputKind::Suppressed, what);
    let sql = matched(key, MATCHES);
    let matched = engine::count_rows(ctx, "suppression counts", &sql, params).await?;
    let stats = suppressions
        .iter()
        .map(|s| SuppressionStats {
            name: s.name.clone(),
            reason: s.reason.clone(),
            scope: s.scope.describe(),
            matched: matched
                .iter()
                .find(|row| row.labels[0] == s.name)
                .map_or(0, |row| row.counts[0]),
            held_back: held_back.0.get(&s.name).copied().unwrap_or(0),
        })
        .collect();
    Ok((output, stats))
}

/// Rows of `suppressed/` per rule, counted as the table is written instead of reading it
/// again (at 1M customers, 5.1M rows).
#[derive(Debug, Default)]
struct RowsPerRule(HashMap<String, u64>);

impl Observer for RowsPerRule {
    fn observe(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError> {
        let column = batch.column_by_name("suppression").ok_or_else(|| {
            DataFusionError::Internal("suppressed/ has no column suppression".into())
        })?;
        // The rules' names come as a dictionary (see `sql::suppressed`): count its keys.
        if let Some(names) = column.as_dictionary_opt::<Int32Type>() {
            let mut per_key = vec![0; names.values().len()];
            for key in names.keys().iter().flatten() {
                per_key[key as usize] += 1;
            }
            let values = cast(names.values(), &DataType::Utf8View)?;
            let values = values.as_string_view();
            for (i, rows) in per_key.into_iter().enumerate() {
                if rows > 0 && values.is_valid(i) {
                    self.add(values.value(i), rows);
                }
            }
        } else {
            let values = cast(column, &DataType::Utf8View)?;
            let values = values.as_string_view();
            for name in values.iter().flatten() {
                self.add(name, 1);
            }
        }
        Ok(())
    }
}

impl RowsPerRule {
    fn add(&mut self, name: &str, rows: u64) {
        match self.0.get_mut(name) {
            Some(n) => *n += rows,
            None => {
                self.0.insert(name.to_string(), rows);
            }
        }
    }
}

/// A rule's match of a key, for `explain`.
pub(crate) struct Match {
    pub(crate) key: String,
    pub(crate) rule: String,
    /// The offer a SQL rule's row named (it holds back that offer only).
    pub(crate) offer: Option<String>,
    pub(crate) detail: Option<String>,
}

/// Every rule's matches of the keys `only` selects, in [`MATCHES`]: one per offer a SQL rule's
/// rows name, in rule and offer order.
pub(crate) async fn matches_for(
    ctx: &SessionContext,
    key: &str,
    suppressions: &[Suppression],
    only: &KeyFilter,
    params: &Params,
) -> Result<Vec<Match>, EngineError> {
    let k = ident(key);
    let sql = format!(
        "SELECT h.{k}, h.suppression, h.offer, MIN({DETAIL}) FROM {MATCHES} h \
         JOIN ({rules}) r ON r.suppression = h.suppression \
         WHERE {mine} GROUP BY h.{k}, h.suppression, h.offer \
         ORDER BY h.suppression, h.offer NULLS FIRST",
        rules = rules(suppressions),
        mine = only.predicate(&format!("h.{k}")),
    );
    let rows = engine::text_rows(ctx, "explain suppressions", &sql, params).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match <[_; 4]>::try_from(row) {
            Ok([Some(key), Some(rule), offer, detail]) => Some(Match {
                key,
                rule,
                offer,
                detail,
            }),
            _ => None,
        })
        .collect())
}

/// What holds back each key of a held `table` (of segments or offers) that `filter` keeps, for
/// `explain`: per key, `rule` (the whole segment or offer) or `rule (on email, sms)`, in name
/// order.
pub(crate) async fn held_back_by(
    ctx: &SessionContext,
    key: &str,
    table: &str,
    filter: &str,
    params: &Params,
) -> Result<HashMap<String, Vec<String>>, EngineError> {
    let k = ident(key);
    let sql = format!(
        "SELECT {k}, suppression, string_agg(NULLIF(channel, '*'), ', ' ORDER BY channel) \
         FROM {table} WHERE {filter} GROUP BY {k}, suppression ORDER BY suppression"
    );
    let mut held: HashMap<String, Vec<String>> = HashMap::new();
    for row in engine::text_rows(ctx, "explain", &sql, params).await? {
        let [Some(key), Some(rule), channels] = <[_; 3]>::try_from(row).unwrap_or_default() else {
            continue;
        };
        let text = match channels {
            Some(channels) => format!("{rule} (on {channels})"),
            None => rule,
        };
        held.entry(key).or_default().push(text);
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{DictionaryArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(names: Arc<dyn Array>) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(
            "suppression",
            names.data_type().clone(),
            true,
        )]);
        RecordBatch::try_new(Arc::new(schema), vec![names]).unwrap()
    }

    #[test]
    fn rows_are_counted_per_rule_from_a_dictionary_or_from_text() {
        let mut rows = RowsPerRule::default();
        let names: DictionaryArray<Int32Type> = vec![Some("b"), Some("a"), None, Some("b")]
            .into_iter()
            .collect();
        rows.observe(&batch(Arc::new(names))).unwrap();
        // A dictionary with a value no row uses.
        let unused = DictionaryArray::<Int32Type>::try_new(
            vec![0, 0].into(),
            Arc::new(StringArray::from(vec!["a", "c"])),
        )
        .unwrap();
        rows.observe(&batch(Arc::new(unused))).unwrap();
        rows.observe(&batch(Arc::new(StringArray::from(vec![Some("b"), None]))))
            .unwrap();
        let mut counted: Vec<_> = rows.0.into_iter().collect();
        counted.sort();
        assert_eq!(counted, [("a".into(), 3), ("b".into(), 3)]);
    }
}
