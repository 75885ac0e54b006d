//! Running source and model checks: plan each against the data's schemas, count failing rows,
//! keep a sample of them.

use std::collections::HashMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use super::sql::{failing_and_total, failing_rows, newest, sql_view};
use super::{Check, CheckKind, SAMPLE_ROWS};
use crate::engine::{self, EngineError, PlanError};
use crate::erasure::not_erased;
use crate::objects::Folder;
use crate::spec::Severity;
use crate::sql::{Params, ident};

#[derive(Debug, thiserror::Error)]
pub enum ChecksError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

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
    pub(crate) fn new(check: &Check, target: String) -> Self {
        Self {
            name: check.name.clone(),
            target,
            kind: check.kind.label().to_string(),
            severity: check.severity,
            status: Status::Passed,
            failing: None,
            total: None,
            failing_percent: None,
            threshold: String::new(),
            message: String::new(),
            sample: None,
        }
    }

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

    fn fail_if(&mut self, failed: bool) {
        self.status = if failed {
            Status::Failed
        } else {
            Status::Passed
        };
    }
}

/// Plans every source and model check against the schemas (reading no rows), for `validate`
/// and before a run.
pub(crate) async fn plan(
    ctx: &SessionContext,
    checks: &[Check],
    params: &Params,
) -> Result<(), PlanError> {
    for check in checks {
        let Some(table) = check.target.table() else {
            continue;
        };
        let what = format!("check {}", check.name);
        let located = |source| PlanError::Query {
            at: check.at.clone(),
            what: what.clone(),
            source,
        };
        if let CheckKind::Sql(query) = &check.kind {
            let df = engine::plan_query(ctx, &what, query, params).await?;
            engine::replace_table(ctx, &sql_view(check), df).map_err(located)?;
        }
        let sql = match &check.kind {
            CheckKind::Freshness { column, .. } => {
                let column_type = check_date_column(ctx, check, table, column, params).await?;
                newest(table, column, &column_type)
            }
            _ => failing_rows(check, table, checked_type(ctx, check, table).await.as_ref())
                .unwrap_or_else(|| format!("SELECT COUNT(*) FROM {}", ident(table))),
        };
        let df = engine::plan_sql(ctx, &sql, params).await.map_err(located)?;
        if let Some(problem) = incomparable(ctx, check, table).await {
            return Err(PlanError::Invalid {
                at: check.at.clone(),
                what,
                problem,
            });
        }
        // Other types are compared when the plan is analyzed and optimized, not when it is
        // built.
        df.into_optimized_plan().map_err(|e| located(e.into()))?;
    }
    Ok(())
}

/// Why a check of values (`accepted_values`, `relationships`) cannot compare them with its
/// column: SQL would cast one side to the other's type, and fail on the rows (text that is not
/// a number) or match none.
async fn incomparable(ctx: &SessionContext, check: &Check, table: &str) -> Option<String> {
    use crate::spec::ColumnType::{self, *};
    let kind_of = async |table: &str, column: &str| {
        let df = ctx.table(table).await.ok()?;
        let field = df.schema().field_with_unqualified_name(column).ok()?;
        crate::sources::column_type(field.data_type())
    };
    // Numbers compare with numbers, dates and times with each other.
    let family = |kind: ColumnType| match kind {
        Int | Double => Double,
        Date | Timestamp => Date,
        other => other,
    };
    match &check.kind {
        CheckKind::AcceptedValues { column, values } => {
            let kind = kind_of(table, column).await?;
            let other = values.iter().find(|value| {
                let value_kind = match value.as_str() {
                    "true" | "false" => Boolean,
                    v if v.starts_with('\'') => String,
                    _ => Double,
                };
                // A date is written as text ('2026-11-01').
                let date_text = family(kind) == Date && value_kind == String;
                family(value_kind) != family(kind) && !date_text
            })?;
            let fix = match kind {
                String => format!("quote it (\"{other}\") to list it as text"),
                _ => "list values of its type".to_string(),
            };
            Some(format!(
                "accepted_values: {column} is {kind}, and {other} is not a value of that kind; {fix}"
            ))
        }
        CheckKind::Relationships { column, to, field } => {
            let (kind, to_kind) = (kind_of(table, column).await?, kind_of(to, field).await?);
            (family(kind) != family(to_kind)).then(|| format!(
                "relationships: {column} is {kind} and {to}.{field} is {to_kind}: they do not compare; name a field of the column's kind"
            ))
        }
        _ => None,
    }
}

/// Freshness needs a date or timestamp column: its type.
async fn check_date_column(
    ctx: &SessionContext,
    check: &Check,
    table: &str,
    column: &str,
    params: &Params,
) -> Result<DataType, PlanError> {
    let what = format!("check {}", check.name);
    let sql = format!("SELECT {} FROM {}", ident(column), ident(table));
    let df = engine::plan_located(ctx, &sql, params, &check.at, &what).await?;
    let data_type = df.schema().field(0).data_type().clone();
    if matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)
    ) {
        return Ok(data_type);
    }
    Err(PlanError::Invalid {
        at: check.at.clone(),
        what,
        problem: format!("freshness needs a date or timestamp column; {column} is {data_type}"),
    })
}

/// Runs the source and model checks; failing rows are sampled into `run_dir/checks/<name>/`.
/// `key` is the pipeline's key, whose erased values are registered: a sample of a table with
/// that column leaves erased customers out, as every table a run writes does.
pub(crate) async fn run_table_checks(
    ctx: &SessionContext,
    checks: &[Check],
    key: Option<&str>,
    params: &Params,
    run_dir: &Folder,
) -> Result<Vec<CheckResult>, ChecksError> {
    plan(ctx, checks, params).await?;
    let mut results = Vec::new();
    let mut totals = Totals::default();
    for check in checks {
        let Some(table) = check.target.table() else {
            continue;
        };
        let mut result = CheckResult::new(check, check.target.describe());
        match &check.kind {
            CheckKind::Contract => {
                // Sources are registered under their contract; reaching this point means it held.
                result.threshold = "the columns and types the source declares".into();
                result.message = "the data matches the contract".into();
            }
            CheckKind::RowCount { min, max } => {
                let rows = totals.rows(ctx, check, table, params).await?;
                row_count(&mut result, rows, *min, *max);
            }
            CheckKind::Freshness {
                column,
                max_age_days,
            } => {
                freshness(
                    ctx,
                    check,
                    table,
                    column,
                    *max_age_days,
                    params,
                    &mut result,
                )
                .await?
            }
            _ => {
                let at = Sample { key, run_dir };
                row_check(ctx, check, table, params, at, &mut totals, &mut result).await?
            }
        }
        if result.status == Status::Failed {
            tracing::warn!(check = %result.name, severity = ?result.severity, "{}", result.message);
        }
        results.push(result);
    }
    Ok(results)
}

/// Row counts of the checked tables, each counted once however many checks read it.
#[derive(Default)]
struct Totals(HashMap<String, u64>);

impl Totals {
    /// Keeps a table's row count that a check counted on the way.
    fn counted(&mut self, table: &str, rows: u64) {
        self.0.entry(table.to_string()).or_insert(rows);
    }

    async fn rows(
        &mut self,
        ctx: &SessionContext,
        check: &Check,
        table: &str,
        params: &Params,
    ) -> Result<u64, EngineError> {
        if let Some(rows) = self.0.get(table) {
            return Ok(*rows);
        }
        let sql = format!("SELECT COUNT(*) FROM {}", ident(table));
        let rows = count(&collect(ctx, check, &sql, params).await?);
        self.0.insert(table.to_string(), rows);
        Ok(rows)
    }
}

fn count(batches: &[RecordBatch]) -> u64 {
    number(batches, 0)
}

/// The `BIGINT` in column `column` of a query's one row (0 without a row).
fn number(batches: &[RecordBatch], column: usize) -> u64 {
    batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| b.column(column).as_primitive::<Int64Type>().value(0) as u64)
        .unwrap_or(0)
}

async fn collect(
    ctx: &SessionContext,
    check: &Check,
    sql: &str,
    params: &Params,
) -> Result<Vec<RecordBatch>, EngineError> {
    engine::collect(ctx, &format!("check {}", check.name), sql, params).await
}

fn row_count(result: &mut CheckResult, rows: u64, min: Option<u64>, max: Option<u64>) {
    result.total = Some(rows);
    result.threshold = match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b} rows"),
        (Some(a), None) => format!("at least {a} rows"),
        (None, Some(b)) => format!("at most {b} rows"),
        (None, None) => "any number of rows".into(),
    };
    result.fail_if(!(min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m)));
    result.message = format!("{rows} rows, expected {}", result.threshold);
}

async fn freshness(
    ctx: &SessionContext,
    check: &Check,
    table: &str,
    column: &str,
    max_age_days: u32,
    params: &Params,
    result: &mut CheckResult,
) -> Result<(), ChecksError> {
    let run_date = params.run_date();
    let column_type = check_date_column(ctx, check, table, column, params).await?;
    let batches = collect(ctx, check, &newest(table, column, &column_type), params).await?;
    let newest: Option<NaiveDate> = batches.first().filter(|b| b.num_rows() > 0).and_then(|b| {
        let array = b.column(0);
        (array.data_type() == &DataType::Date32 && !array.is_null(0)).then(|| {
            let days = array.as_primitive::<Date32Type>().value(0);
            NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                + chrono::Duration::days(days.into())
        })
    });
    result.threshold = format!("newest {column} at most {max_age_days} days before {run_date}");
    match newest {
        Some(newest) => {
            let age = (run_date - newest).num_days();
            result.failing = Some(age.max(0) as u64);
            result.fail_if(age > i64::from(max_age_days));
            result.message = format!(
                "newest {column} is {newest}, {age} days before the run date (limit {max_age_days})"
            );
        }
        None => {
            result.fail_if(true);
            result.message = format!(
                "no {column} on or before {run_date}: the table is empty, or none of its rows has one"
            );
        }
    }
    Ok(())
}

/// Where a check's failing rows are sampled, and the key whose erased values it leaves out.
#[derive(Clone, Copy)]
struct Sample<'a> {
    key: Option<&'a str>,
    run_dir: &'a Folder,
}

/// The type of the column an `accepted_values` check reads, which its values take.
async fn checked_type(ctx: &SessionContext, check: &Check, table: &str) -> Option<DataType> {
    let CheckKind::AcceptedValues { column, .. } = &check.kind else {
        return None;
    };
    let df = ctx.table(table).await.ok()?;
    let field = df.schema().field_with_unqualified_name(column).ok()?;
    Some(field.data_type().clone())
}

async fn row_check(
    ctx: &SessionContext,
    check: &Check,
    table: &str,
    params: &Params,
    Sample { key, run_dir }: Sample<'_>,
    totals: &mut Totals,
    result: &mut CheckResult,
) -> Result<(), EngineError> {
    let checked = checked_type(ctx, check, table).await;
    let failing_sql =
        failing_rows(check, table, checked.as_ref()).expect("every other kind is a row check");
    let (failing, total) = match failing_and_total(check, table) {
        Some(sql) => {
            let batches = collect(ctx, check, &sql, params).await?;
            let (failing, total) = (number(&batches, 0), number(&batches, 1));
            totals.counted(table, total);
            (failing, Some(total))
        }
        None => {
            let sql = format!("SELECT COUNT(*) FROM ({failing_sql})");
            let failing = count(&collect(ctx, check, &sql, params).await?);
            let total = match check.kind {
                CheckKind::Sql(_) => None,
                _ => Some(totals.rows(ctx, check, table, params).await?),
            };
            (failing, total)
        }
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
    result.fail_if(match percent {
        Some(p) if check.max_failed_percent > 0.0 => p > check.max_failed_percent,
        _ => failing > 0,
    });
    result.message = match (total, percent) {
        (Some(total), Some(p)) => format!(
            "{failing} of {total} rows fail ({p:.2}%), allowed: {}",
            result.threshold
        ),
        _ => format!("{failing} rows returned, allowed: {}", result.threshold),
    };
    if failing > 0 {
        let relative = format!("checks/{}", check.name);
        let what = format!("check {}", check.name);
        let mut sample = format!("SELECT * FROM ({failing_sql}) __failing");
        if let Some(key) = key {
            let failing = engine::plan_step(ctx, &what, &sample, params).await?;
            if failing.schema().field_with_unqualified_name(key).is_ok() {
                let k = format!("__failing.{}", ident(key));
                sample += &format!(" WHERE {}", not_erased(&k));
            }
        }
        sample += &format!(" LIMIT {SAMPLE_ROWS}");
        engine::write_query(
            ctx,
            &what,
            &sample,
            params,
            &run_dir.join(&relative),
            run_dir,
            engine::TableLayout::default(),
        )
        .await?;
        result.sample = Some(relative);
    }
    Ok(())
}
