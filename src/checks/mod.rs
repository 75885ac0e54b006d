//! Quality gates and circuit breakers: nothing bad gets published.
//!
//! Source and model checks run after the models, before any audience is computed; circuit
//! breakers run once audiences and offers are known, against the previous published run. A
//! failed `error` check blocks the run (exit code 3) unless `--force`; a failed `warn` check is
//! recorded. Every result goes into the manifest, and up to [`SAMPLE_ROWS`] failing rows of a
//! row check are written to `checks/<name>/` for inspection.

use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::engine::{self, EngineError};
use crate::pipeline::{Breaker, Check, CheckKind, Params, Pipeline, Target};
use crate::report::Manifest;
use crate::run::{RunError, write_query};
use crate::spec::Severity;

/// Failing rows kept per check.
pub const SAMPLE_ROWS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
}

/// One check's outcome, as the manifest and the `--json` report record it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub target: String,
    pub kind: String,
    pub severity: Severity,
    pub status: Status,
    /// Failing rows (row checks) or the measured value's distance from the limit.
    pub failing: Option<u64>,
    pub total: Option<u64>,
    pub failing_percent: Option<f64>,
    /// What passing means, in words (e.g. "at most 0% of rows").
    pub threshold: String,
    /// What was found, in words.
    pub message: String,
    /// Folder of sampled failing rows, relative to the run folder.
    pub sample: Option<String>,
}

impl CheckResult {
    pub fn blocks(&self) -> bool {
        self.status == Status::Failed && self.severity == Severity::Error
    }

    /// One line for the terminal.
    pub fn line(&self) -> String {
        format!(
            "check {} ({}, {}): {}",
            self.name, self.target, self.kind, self.message
        )
    }
}

fn count(batches: &[datafusion::arrow::array::RecordBatch]) -> u64 {
    batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0) as u64)
        .unwrap_or(0)
}

async fn collect(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, RunError> {
    engine::plan_sql(ctx, sql, params)
        .await
        .map_err(|e| rename(e, what))?
        .collect()
        .await
        .map_err(|e| RunError::Engine(EngineError::execution(what, e)))
}

fn rename(err: EngineError, what: &str) -> RunError {
    RunError::Engine(match err {
        EngineError::Execution { message, .. } => EngineError::Execution {
            what: what.to_string(),
            message,
        },
        other => other,
    })
}

/// Row counts of the checked tables, each counted once however many checks read it.
#[derive(Default)]
struct Totals(std::collections::HashMap<String, u64>);

impl Totals {
    async fn rows(
        &mut self,
        ctx: &SessionContext,
        what: &str,
        table: &str,
        params: &Params,
    ) -> Result<u64, RunError> {
        if let Some(rows) = self.0.get(table) {
            return Ok(*rows);
        }
        let rows =
            count(&collect(ctx, what, &format!("SELECT COUNT(*) FROM {table}"), params).await?);
        self.0.insert(table.to_string(), rows);
        Ok(rows)
    }
}

/// The query returning a row check's failing rows.
fn failing_rows(check: &Check, table: &str) -> Option<String> {
    let join_on = |cols: &[String]| {
        cols.iter()
            .map(|c| format!("t.{c} = d.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let duplicates = |cols: &[String]| {
        format!(
            "SELECT {list} FROM {table} GROUP BY {list} HAVING COUNT(*) > 1",
            list = cols.join(", ")
        )
    };
    Some(match &check.kind {
        CheckKind::NotNull(cols) => format!(
            "SELECT * FROM {table} WHERE {}",
            cols.iter()
                .map(|c| format!("{c} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        CheckKind::Unique(cols) => format!(
            "SELECT t.* FROM {table} t JOIN ({}) d ON {}",
            duplicates(cols),
            join_on(cols)
        ),
        CheckKind::PrimaryKey(cols) => format!(
            "SELECT t.* FROM {table} t LEFT JOIN ({}) d ON {} WHERE d.{} IS NOT NULL OR {}",
            duplicates(cols),
            join_on(cols),
            cols[0],
            cols.iter()
                .map(|c| format!("t.{c} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
        CheckKind::AcceptedValues { column, values } => format!(
            "SELECT * FROM {table} WHERE {column} IS NOT NULL AND {column} NOT IN ({})",
            values.join(", ")
        ),
        CheckKind::Relationships { column, to, field } => format!(
            "SELECT t.* FROM {table} t LEFT JOIN (SELECT DISTINCT {field} AS __v FROM {to}) d ON d.__v = t.{column} \
             WHERE t.{column} IS NOT NULL AND d.__v IS NULL"
        ),
        CheckKind::Sql(_) => format!("SELECT * FROM __segflow_check_{}", check.name),
        _ => return None,
    })
}

/// Plans every source and model check (reading no rows), for `validate` and before a run.
pub async fn plan_checks(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
) -> Result<(), EngineError> {
    for check in &pipeline.checks {
        let Some(table) = check.target.table() else {
            continue;
        };
        let what = format!("check {}", check.name);
        let locate = |e: EngineError| match e {
            EngineError::Execution { message, .. } => EngineError::Plan {
                at: check.at.clone(),
                what: what.clone(),
                message,
            },
            other => other,
        };
        if let CheckKind::Sql(query) = &check.kind {
            let df = engine::plan_query(ctx, &what, query, params).await?;
            ctx.register_table(
                format!("__segflow_check_{}", check.name).as_str(),
                df.into_view(),
            )
            .map_err(|e| EngineError::execution(&what, e))?;
        }
        if let CheckKind::Freshness { column, .. } = &check.kind {
            let df = engine::plan_sql(ctx, &format!("SELECT {column} FROM {table}"), params)
                .await
                .map_err(locate)?;
            let data_type = df.schema().field(0).data_type().clone();
            if !matches!(
                data_type,
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
            ) {
                return Err(EngineError::Plan {
                    at: check.at.clone(),
                    what,
                    message: format!(
                        "freshness needs a date or timestamp column; {column} is {data_type}"
                    ),
                });
            }
        }
        let sql = match &check.kind {
            CheckKind::Freshness { column, .. } => {
                format!("SELECT CAST(MAX({column}) AS DATE) FROM {table}")
            }
            _ => failing_rows(check, table)
                .unwrap_or_else(|| format!("SELECT COUNT(*) FROM {table}")),
        };
        engine::plan_sql(ctx, &sql, params).await.map_err(locate)?;
    }
    Ok(())
}

/// Runs the source and model checks; failing rows are sampled into `run_dir/checks/<name>/`.
pub async fn run_table_checks(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &Params,
    run_dir: &Path,
) -> Result<Vec<CheckResult>, RunError> {
    plan_checks(ctx, pipeline, params).await?;
    let mut results = Vec::new();
    let mut totals = Totals::default();
    for check in &pipeline.checks {
        let Some(table) = check.target.table() else {
            continue;
        };
        let what = format!("check {}", check.name);
        let mut result = CheckResult {
            name: check.name.clone(),
            target: check.target.describe(),
            kind: check.kind.label().to_string(),
            severity: check.severity,
            status: Status::Passed,
            failing: None,
            total: None,
            failing_percent: None,
            threshold: String::new(),
            message: String::new(),
            sample: None,
        };
        match &check.kind {
            CheckKind::Contract => {
                // Sources are registered under their contract; reaching this point means it held.
                result.threshold = "the columns and types the source declares".into();
                result.message = "the data matches the contract".into();
            }
            CheckKind::RowCount { min, max } => {
                let rows = totals.rows(ctx, &what, table, params).await?;
                result.total = Some(rows);
                result.threshold = match (min, max) {
                    (Some(a), Some(b)) => format!("between {a} and {b} rows"),
                    (Some(a), None) => format!("at least {a} rows"),
                    (None, Some(b)) => format!("at most {b} rows"),
                    (None, None) => "any number of rows".into(),
                };
                let ok = min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m);
                result.status = if ok { Status::Passed } else { Status::Failed };
                result.message = format!("{rows} rows, expected {}", result.threshold);
            }
            CheckKind::Freshness {
                column,
                max_age_days,
            } => {
                let run_date = params.run_date();
                let sql = format!(
                    "SELECT CAST(MAX({column}) AS DATE) FROM {table} WHERE CAST({column} AS DATE) <= $run_date"
                );
                let batches = collect(ctx, &what, &sql, params).await?;
                let newest: Option<NaiveDate> =
                    batches.first().filter(|b| b.num_rows() > 0).and_then(|b| {
                        let array = b.column(0);
                        (array.data_type() == &DataType::Date32 && !array.is_null(0)).then(|| {
                            let days = array.as_primitive::<Date32Type>().value(0);
                            NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                                + chrono::Duration::days(days.into())
                        })
                    });
                result.threshold =
                    format!("newest {column} at most {max_age_days} days before {run_date}");
                match newest {
                    Some(newest) => {
                        let age = (run_date - newest).num_days();
                        result.failing = Some(age.max(0) as u64);
                        result.status = if age <= i64::from(*max_age_days) {
                            Status::Passed
                        } else {
                            Status::Failed
                        };
                        result.message = format!(
                            "newest {column} is {newest}, {age} days before the run date (limit {max_age_days})"
                        );
                    }
                    None => {
                        result.status = Status::Failed;
                        result.message =
                            format!("no {column} on or before {run_date}: the table is empty");
                    }
                }
            }
            _ => {
                let failing_sql = failing_rows(check, table).expect("row check");
                let failing = count(
                    &collect(
                        ctx,
                        &what,
                        &format!("SELECT COUNT(*) FROM ({failing_sql})"),
                        params,
                    )
                    .await?,
                );
                let total = if matches!(check.kind, CheckKind::Sql(_)) {
                    None
                } else {
                    Some(totals.rows(ctx, &what, table, params).await?)
                };
                let percent = total.map(|t| {
                    if t == 0 {
                        0.0
                    } else {
                        failing as f64 * 100.0 / t as f64
                    }
                });
                result.failing = Some(failing);
                result.total = total;
                result.failing_percent = percent;
                result.threshold = if check.max_failed_percent > 0.0 {
                    format!("at most {}% of rows failing", check.max_failed_percent)
                } else {
                    "no failing rows".into()
                };
                let over = match percent {
                    Some(p) if check.max_failed_percent > 0.0 => p > check.max_failed_percent,
                    _ => failing > 0,
                };
                result.status = if over { Status::Failed } else { Status::Passed };
                result.message = match (total, percent) {
                    (Some(total), Some(p)) => format!(
                        "{failing} of {total} rows fail ({p:.2}%), allowed: {}",
                        result.threshold
                    ),
                    _ => format!("{failing} rows returned, allowed: {}", result.threshold),
                };
                if failing > 0 {
                    let relative = format!("checks/{}", check.name);
                    write_query(
                        ctx,
                        &what,
                        &format!("SELECT * FROM ({failing_sql}) LIMIT {SAMPLE_ROWS}"),
                        params,
                        &run_dir.join(&relative),
                        run_dir,
                    )
                    .await?;
                    result.sample = Some(relative);
                }
            }
        }
        if result.status == Status::Failed {
            tracing::warn!(check = %result.name, severity = ?result.severity, "{}", result.message);
        }
        results.push(result);
    }
    Ok(results)
}

/// Circuit breakers on audiences and offers, against the previous published run.
pub fn run_breakers(
    pipeline: &Pipeline,
    manifest: &Manifest,
    previous: Option<&Manifest>,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in &pipeline.checks {
        let CheckKind::Breaker(breaker) = &check.kind else {
            continue;
        };
        // (name, size today, size before, added, removed)
        let measured: Vec<(String, u64, Option<u64>, u64, u64)> = match &check.target {
            Target::Audience(only) => manifest
                .segments
                .iter()
                .filter(|s| only.as_ref().is_none_or(|o| *o == s.name))
                .map(|s| {
                    let before = previous
                        .and_then(|p| p.segments.iter().find(|x| x.name == s.name))
                        .map(|x| x.size);
                    (
                        format!("audience {}", s.name),
                        s.size,
                        before,
                        s.added,
                        s.removed,
                    )
                })
                .collect(),
            Target::Offer(only) => manifest
                .offers
                .iter()
                .filter(|o| only.as_ref().is_none_or(|x| *x == o.name))
                .map(|o| {
                    let before = previous
                        .and_then(|p| p.offers.iter().find(|x| x.name == o.name))
                        .map(|x| x.assigned);
                    let (added, removed) = match before {
                        Some(b) if o.assigned >= b => (o.assigned - b, 0),
                        Some(b) => (0, b - o.assigned),
                        None => (0, 0),
                    };
                    (
                        format!("offer {}", o.name),
                        o.assigned,
                        before,
                        added,
                        removed,
                    )
                })
                .collect(),
            _ => continue,
        };
        for (target, size, before, added, removed) in measured {
            let problems = breaker_problems(breaker, size, before, added, removed);
            let name = if matches!(check.target, Target::Audience(None) | Target::Offer(None)) {
                format!(
                    "{}_{}",
                    check.name,
                    target.rsplit(' ').next().unwrap_or_default()
                )
            } else {
                check.name.clone()
            };
            results.push(CheckResult {
                name,
                target: target.clone(),
                kind: check.kind.label().to_string(),
                severity: check.severity,
                status: if problems.is_empty() {
                    Status::Passed
                } else {
                    Status::Failed
                },
                failing: None,
                total: Some(size),
                failing_percent: None,
                threshold: describe_breaker(breaker),
                message: if problems.is_empty() {
                    format!("{size} customers ({added} added, {removed} removed)")
                } else {
                    problems.join("; ")
                },
                sample: None,
            });
        }
    }
    results
}

fn describe_breaker(b: &Breaker) -> String {
    let mut parts = Vec::new();
    if let Some(p) = b.max_removed_percent {
        parts.push(format!("at most {p}% removed"));
    }
    if let Some(p) = b.max_added_percent {
        parts.push(format!("at most {p}% added"));
    }
    if let Some(n) = b.min_size {
        parts.push(format!("at least {n} customers"));
    }
    if let Some(n) = b.max_size {
        parts.push(format!("at most {n} customers"));
    }
    parts.join(", ")
}

fn breaker_problems(
    b: &Breaker,
    size: u64,
    before: Option<u64>,
    added: u64,
    removed: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(before) = before.filter(|b| *b > 0) {
        let removed_percent = removed as f64 * 100.0 / before as f64;
        let added_percent = added as f64 * 100.0 / before as f64;
        if let Some(limit) = b.max_removed_percent.filter(|l| removed_percent > *l) {
            problems.push(format!(
                "{removed} of {before} customers removed since the previous run ({removed_percent:.1}%, limit {limit}%)"
            ));
        }
        if let Some(limit) = b.max_added_percent.filter(|l| added_percent > *l) {
            problems.push(format!(
                "{added} customers added to {before} since the previous run ({added_percent:.1}%, limit {limit}%)"
            ));
        }
    }
    if let Some(min) = b.min_size.filter(|m| size < *m) {
        problems.push(format!("{size} customers, fewer than the minimum {min}"));
    }
    if let Some(max) = b.max_size.filter(|m| size > *m) {
        problems.push(format!("{size} customers, more than the maximum {max}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakers_compare_with_the_previous_size() {
        let b = Breaker {
            max_removed_percent: Some(40.0),
            max_added_percent: Some(50.0),
            min_size: Some(10),
            max_size: None,
        };
        assert!(breaker_problems(&b, 100, Some(100), 10, 10).is_empty());
        let p = breaker_problems(&b, 50, Some(100), 0, 50);
        assert_eq!(
            p,
            ["50 of 100 customers removed since the previous run (50.0%, limit 40%)"]
        );
        // The first run has nothing to compare with; sizes still apply.
        assert_eq!(
            breaker_problems(&b, 5, None, 5, 0),
            ["5 customers, fewer than the minimum 10"]
        );
    }
}
