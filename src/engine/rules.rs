//! Planning the rules of segments, suppressions and offers against the profile, before any row
//! is read: conditions must name real columns and be true/false, SQL rules must return the key.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::{PlanError, plan_query, plan_sql, replace_table};
use crate::location::Location;
use crate::sql::{Condition, KeyFilter, Params, SqlQuery, ident};

/// Plans each condition alone over the profile: its columns must exist and it must be true or
/// false, so a typo or a non-boolean expression is reported at the condition's line. `what`
/// names the rule (e.g. `segment champions`).
pub(crate) async fn check_conditions(
    ctx: &SessionContext,
    profile: &str,
    conditions: &[Condition],
    what: &str,
    params: &Params,
) -> Result<(), PlanError> {
    for condition in conditions {
        let what = format!("{what}, condition {}", condition.name);
        let sql = format!("SELECT ({}) AS c FROM {}", condition.expr, ident(profile));
        let df = super::plan_located(ctx, &sql, params, &condition.at, &what).await?;
        if let Some(careless) = careless(ctx, &df) {
            return Err(PlanError::Invalid {
                at: condition.at.clone(),
                what,
                problem: format!("`{}` {}", condition.text, careless.problem()),
            });
        }
        let data_type = df.schema().field(0).data_type().clone();
        if !matches!(data_type, DataType::Boolean | DataType::Null) {
            return Err(PlanError::Invalid {
                at: condition.at.clone(),
                what,
                problem: format!(
                    "`{}` is {data_type}, not true/false; write a comparison such as `{} > 0`",
                    condition.text, condition.text
                ),
            });
        }
    }
    Ok(())
}

/// A comparison SQL plans without complaint that does not say what it was meant to: found in
/// the analyzed plan (types coerced), reported at the condition or the number.
pub(super) enum Careless {
    /// A number read as a date or a time (`signup_date >= 20261101` is 20,261,101 days after
    /// 1970): a date written without quotes; holds for nobody or everybody.
    NumberAsDate(String),
    /// A fraction compared with a division of whole numbers (`opens / sends >= 0.5`): SQL rounds
    /// the quotient down, so it holds only at 1 and above — a ratio meant, written as DuckDB or
    /// Snowflake would divide.
    WholeQuotient(String),
}

impl Careless {
    /// The number to point at in the query's text.
    pub(super) fn number(&self) -> &str {
        match self {
            Careless::NumberAsDate(n) | Careless::WholeQuotient(n) => n,
        }
    }

    /// What is wrong, after the expression or query it is said of.
    pub(super) fn problem(&self) -> String {
        match self {
            Careless::NumberAsDate(number) => format!(
                "compares a date or time with the number {number}, which SQL reads as that many days (or seconds) after 1970; write the date as DATE '2026-11-01' or compare with $run_date"
            ),
            Careless::WholeQuotient(fraction) => format!(
                "compares a division of whole numbers with {fraction}, but SQL rounds such a division down (3 / 4 is 0); divide as decimals: CAST(a AS DOUBLE) / b"
            ),
        }
    }
}

/// The first [`Careless`] comparison of the planned `df`, if any.
pub(super) fn careless(
    ctx: &SessionContext,
    df: &datafusion::prelude::DataFrame,
) -> Option<Careless> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let state = ctx.state();
    let analyzed = (state.analyzer())
        .execute_and_check(df.logical_plan().clone(), state.config_options(), |_, _| {})
        .ok()?;
    let mut found = None;
    let _ = analyzed.apply_with_subqueries(|node| {
        let input = node.inputs().first().map(|input| input.schema().clone());
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let hit = number_as_date(e).or_else(|| {
                    (input.as_ref()).and_then(|input| whole_quotient_against_fraction(e, input))
                });
                if hit.is_none() {
                    return Ok(TreeNodeRecursion::Continue);
                }
                found = hit;
                Ok(TreeNodeRecursion::Stop)
            })
        })
    });
    found
}

/// `e` is a number literal cast to a date or a time.
fn number_as_date(e: &datafusion::logical_expr::Expr) -> Option<Careless> {
    use datafusion::logical_expr::{Cast, Expr, TryCast};
    let (inner, to) = match e {
        Expr::Cast(Cast { expr, field }) => (expr, field.data_type()),
        Expr::TryCast(TryCast { expr, field }) => (expr, field.data_type()),
        _ => return None,
    };
    let temporal = matches!(
        to,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    );
    match number_literal(inner) {
        Some(value) if temporal && value.data_type().is_numeric() && !value.is_null() => {
            Some(Careless::NumberAsDate(value.to_string()))
        }
        _ => None,
    }
}

/// The literal `e` is, also through casts to numbers: a parameter is bound as its type's cast
/// of the value (`CAST(20260131 AS BIGINT)`).
fn number_literal(e: &datafusion::logical_expr::Expr) -> Option<&datafusion::common::ScalarValue> {
    use datafusion::logical_expr::{Cast, Expr, TryCast};
    match e {
        Expr::Literal(value, _) => Some(value),
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field })
            if field.data_type().is_numeric() =>
        {
            number_literal(expr)
        }
        _ => None,
    }
}

/// `e` compares a division of whole numbers (of columns of `input`) with a fraction.
fn whole_quotient_against_fraction(
    e: &datafusion::logical_expr::Expr,
    input: &datafusion::common::DFSchema,
) -> Option<Careless> {
    use datafusion::logical_expr::{BinaryExpr, Cast, Expr, ExprSchemable, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let comparison = matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    );
    let whole_quotient = |side: &Expr| match side {
        Expr::Cast(Cast { expr, .. }) => {
            matches!(
                expr.as_ref(),
                Expr::BinaryExpr(BinaryExpr {
                    op: Operator::Divide,
                    ..
                })
            ) && expr.get_type(input).is_ok_and(|t| t.is_integer())
        }
        _ => false,
    };
    let fraction = |side: &Expr| {
        let value = number_literal(side)?;
        (value.to_string().parse::<f64>().ok())
            .filter(|f| f.fract() != 0.0)
            .map(|_| Careless::WholeQuotient(value.to_string()))
    };
    match (comparison, whole_quotient(left), whole_quotient(right)) {
        (true, true, _) => fraction(right),
        (true, _, true) => fraction(left),
        _ => None,
    }
}

/// Plans an offer's score over the profile: it must be a number, so a text column is reported
/// at the score's line rather than failing (and quoting a customer's value) while running.
pub(crate) async fn check_score(
    ctx: &SessionContext,
    profile: &str,
    score: &Condition,
    what: &str,
    params: &Params,
) -> Result<(), PlanError> {
    let what = format!("{what}, score");
    let sql = format!("SELECT ({}) AS s FROM {}", score.expr, ident(profile));
    let df = super::plan_located(ctx, &sql, params, &score.at, &what).await?;
    let data_type = df.schema().field(0).data_type().clone();
    if data_type.is_numeric() || data_type == DataType::Null {
        return Ok(());
    }
    Err(PlanError::Invalid {
        at: score.at.clone(),
        what,
        problem: format!(
            "`{}` is {data_type}, not a number; a score ranks offers, e.g. `spend_365d / 10`",
            score.text
        ),
    })
}

/// A profile segments and offers read must have one row per key: a second row for a customer
/// would put them twice in an audience and give them an offer twice, and a row without a key
/// reaches nobody (every rule joins by the key). Counts the keys with more than one row and
/// the rows without one, in one pass (never shows keys: they are customer data).
pub(crate) async fn check_one_row_per_key(
    ctx: &SessionContext,
    (profile, file): (&str, &std::path::Path),
    key: &str,
    params: &Params,
) -> Result<(), super::EngineError> {
    let k = ident(key);
    let sql = format!(
        "SELECT COUNT(*) FILTER (WHERE k IS NOT NULL) AS keys, \
                COALESCE(SUM(n) FILTER (WHERE k IS NOT NULL), 0) AS n, \
                COALESCE(SUM(n) FILTER (WHERE k IS NULL), 0) AS without FROM ( \
           SELECT {k} AS k, COUNT(*) AS n FROM {} GROUP BY {k} HAVING COUNT(*) > 1 OR {k} IS NULL)",
        ident(profile)
    );
    let what = format!("{profile}: one row per {key}");
    let rows = super::count_rows(ctx, &what, &sql, params).await?;
    let (file, profile, key) = (file.to_path_buf(), profile.to_string(), key.to_string());
    match rows.first().map(|row| &row.counts[..]) {
        Some(&[keys, rows, ..]) if keys > 0 => Err(super::EngineError::DuplicateKeys {
            file,
            profile,
            key,
            keys,
            rows,
        }),
        Some(&[_, _, rows, ..]) if rows > 0 => Err(super::EngineError::NullKeys {
            file,
            profile,
            key,
            rows,
        }),
        _ => Ok(()),
    }
}

/// When a step over many rules failed while reading rows, finds the rule expression that fails
/// on its own (a division by zero, an impossible cast) and points at it; otherwise returns the
/// step's error. `rules` are each expression with what it belongs to (`segment x, condition y`).
pub(crate) async fn locate_failure(
    ctx: &SessionContext,
    profile: &str,
    rules: Vec<(String, &Condition)>,
    params: &Params,
    err: super::EngineError,
) -> super::EngineError {
    if !matches!(err, super::EngineError::Execution { .. }) {
        return err;
    }
    for (what, condition) in rules {
        // An aggregate of the value itself, which no optimizer rule can skip evaluating.
        let sql = format!(
            "SELECT MIN(CAST(({}) AS VARCHAR)) FROM {}",
            condition.expr,
            ident(profile)
        );
        let Ok(df) = plan_sql(ctx, &sql, params).await else {
            continue;
        };
        if let Err(source) = df.collect().await {
            return super::EngineError::Located {
                at: condition.at.clone(),
                what,
                source: super::QueryError::from_data(source),
            };
        }
    }
    err
}

/// `err` located at the first of `queries` (what it is, where it is written, its SQL) that
/// fails on its own, when a query over all of them failed on the data: a SQL rule's own query
/// (a cast of a value, a function given what it cannot take) otherwise fails naming no rule.
/// Each is read to its end, a batch at a time; only on the way to an error.
pub(crate) async fn locate_query_failure(
    ctx: &SessionContext,
    queries: Vec<(String, &Location, String)>,
    params: &Params,
    err: super::EngineError,
) -> super::EngineError {
    use futures::StreamExt;
    if !matches!(err, super::EngineError::Execution { .. }) {
        return err;
    }
    for (what, at, sql) in queries {
        let Ok(df) = plan_sql(ctx, &sql, params).await else {
            continue;
        };
        let failed = match df.execute_stream().await {
            Err(source) => Some(source),
            Ok(mut stream) => {
                let mut failed = None;
                while let Some(batch) = stream.next().await {
                    if let Err(source) = batch {
                        failed = Some(source);
                        break;
                    }
                }
                failed
            }
        };
        if let Some(source) = failed {
            return super::EngineError::Located {
                at: at.clone(),
                what,
                source: super::QueryError::from_data(source),
            };
        }
    }
    err
}

/// The table `table` (a profile, an erasure source) must have the pipeline's key column;
/// `at` is where the pipeline names the table.
pub(crate) async fn check_key(
    ctx: &SessionContext,
    table: &str,
    key: &str,
    at: &Location,
    what: &str,
) -> Result<(), PlanError> {
    let df = ctx.table(ident(table).as_str()).await;
    let has_key = df.is_ok_and(|df| df.schema().field_with_unqualified_name(key).is_ok());
    if has_key {
        return Ok(());
    }
    Err(PlanError::Invalid {
        at: at.clone(),
        what: what.to_string(),
        problem: format!(
            "{table} has no column {key}, the pipeline's key; return it from {table} or change key:"
        ),
    })
}

/// `table`'s key has the kind of `profile`'s (both whole numbers, or both text): keys are
/// matched as text, so an erasure list whose keys read as decimals (`2272.0`, an export with
/// gaps) or as text with leading zeros (`02272`) would match no customer, erasing nobody.
pub(crate) async fn check_key_kind(
    ctx: &SessionContext,
    (table, at, what): (&str, &Location, &str),
    key: &str,
    profile: &str,
) -> Result<(), PlanError> {
    let type_of = |df: datafusion::prelude::DataFrame| {
        (df.schema().field_with_unqualified_name(key).ok()).map(|f| f.data_type().clone())
    };
    let found = ctx
        .table(ident(table).as_str())
        .await
        .ok()
        .and_then(type_of);
    let expected = ctx
        .table(ident(profile).as_str())
        .await
        .ok()
        .and_then(type_of);
    let (Some(found), Some(expected)) = (found, expected) else {
        return Ok(());
    };
    if same_key_kind(&found, &expected) {
        return Ok(());
    }
    let declared = if expected.is_integer() {
        "int"
    } else {
        "string"
    };
    Err(PlanError::Invalid {
        at: at.clone(),
        what: what.to_string(),
        problem: format!(
            "{table} has {key} as {}, where {profile} has {}: its keys would match no customer; declare `columns: {{ {key}: {declared} }}` on the source",
            sql_type(&found),
            sql_type(&expected),
        ),
    })
}

/// Whether keys of type `found` match keys of type `expected` as text (keys are joined and
/// hashed as text): the same type, whole numbers of any width, or text of any kind.
fn same_key_kind(found: &DataType, expected: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    found == expected
        || (found.is_integer() && expected.is_integer())
        || (text(found) && text(expected))
}

/// The optional columns a SQL rule may return besides the key.
pub(crate) struct RuleColumns<'a> {
    /// Columns that split a key's rows (e.g. a suppression's `offer`): one row per key and
    /// value, where NULL is every value (the rule's whole scope): a key's row with NULL leaves
    /// out its other rows, which it covers.
    pub(crate) grouped: &'a [&'a str],
    /// Columns explaining each row (e.g. `reason`, `detail`): the first value in order.
    pub(crate) first: &'a [&'a str],
}

/// Plans a rule's query and registers it as `view`: one row per key (and grouped column), the
/// key column named like the pipeline's key, each optional column as `__segflow_<name>` text
/// (NULL when the query does not return it). Keys that are NULL are dropped. The key must
/// have the type of the profile's (`audience` is the key and the profile).
pub(crate) async fn register_rule_query(
    ctx: &SessionContext,
    what: &str,
    query: &SqlQuery,
    (key, profile): (&str, &str),
    view: &str,
    columns: RuleColumns<'_>,
    params: &Params,
) -> Result<(), PlanError> {
    let df = plan_query(ctx, what, query, params).await?;
    let Ok(returned) = df.schema().field_with_unqualified_name(key) else {
        return Err(PlanError::Invalid {
            at: Location::file(&query.path),
            what: what.to_string(),
            problem: format!("the query must return the key column {key}"),
        });
    };
    // Its keys join the profile's, and join them in the published tables: `'05'` is no key
    // of a profile keyed by numbers, and a text key would turn every audience's key to text.
    let of_profile = match ctx.table(ident(profile).as_str()).await {
        Ok(table) => {
            (table.schema().field_with_unqualified_name(key).ok()).map(|f| f.data_type().clone())
        }
        Err(_) => None,
    };
    if let Some(expected) = of_profile {
        let found = returned.data_type();
        if !same_key_kind(found, &expected) {
            return Err(PlanError::Invalid {
                at: Location::file(&query.path),
                what: what.to_string(),
                problem: format!(
                    "the query returns {key} as {}, where {profile} has {}; return it as {profile} does (e.g. CAST({key} AS {}))",
                    sql_type(found),
                    sql_type(&expected),
                    sql_type(&expected),
                ),
            });
        }
    }
    // Only a query that returns a grouped column can split a key's rows.
    let split: Vec<&str> = (columns.grouped.iter().copied())
        .filter(|c| df.schema().field_with_unqualified_name(c).is_ok())
        .collect();
    let text = |column: &str| {
        if df.schema().field_with_unqualified_name(column).is_ok() {
            format!("CAST({} AS VARCHAR)", ident(column))
        } else {
            "CAST(NULL AS VARCHAR)".to_string()
        }
    };
    let k = ident(key);
    let mut select = vec![k.clone()];
    let mut group = vec![k.clone()];
    for column in columns.grouped {
        select.push(format!("{} AS __segflow_{column}", text(column)));
        group.push(text(column));
    }
    for column in columns.first {
        select.push(format!("MIN({}) AS __segflow_{column}", text(column)));
    }
    let inner = format!("{view}_query");
    let failed = |source| PlanError::Query {
        at: Location::file(&query.path),
        what: what.to_string(),
        source,
    };
    replace_table(ctx, &inner, df).map_err(failed)?;
    let mut sql = format!(
        "SELECT {} FROM {inner} WHERE {k} IS NOT NULL GROUP BY {}",
        select.join(", "),
        group.join(", ")
    );
    if !split.is_empty() {
        let whole = (split.iter())
            .map(|c| format!("__segflow_{c} IS NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let kept: Vec<String> = std::iter::once(k.clone())
            .chain((columns.grouped.iter().chain(columns.first)).map(|c| format!("__segflow_{c}")))
            .collect();
        sql = format!(
            "SELECT {kept} FROM (SELECT *, bool_or({whole}) OVER (PARTITION BY {k}) AS __segflow_covered \
             FROM ({sql})) WHERE ({whole}) OR NOT __segflow_covered",
            kept = kept.join(", "),
        );
    }
    let grouped = plan_sql(ctx, &sql, params).await.map_err(failed)?;
    replace_table(ctx, view, grouped).map_err(failed)
}

/// The SQL name of a key's type, for advice.
fn sql_type(data_type: &DataType) -> String {
    match data_type {
        t if t.is_integer() => "BIGINT".into(),
        t if t.is_floating() => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        other => other.to_string(),
    }
}

/// One condition evaluated for one customer, with the profile values it reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConditionExplanation {
    pub name: String,
    pub sql: String,
    /// true / false, or null when the expression is NULL (counts as not holding).
    pub holds: Option<bool>,
    /// The profile columns the condition reads, with this customer's values.
    pub values: Vec<(String, String)>,
}

/// The profile columns an expression reads.
fn columns_of(expr: &datafusion::sql::sqlparser::ast::Expr) -> Vec<String> {
    use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
    // Unquoted names are case-insensitive (DataFusion lower-cases them); quoted ones are not.
    let column = |ident: &datafusion::sql::sqlparser::ast::Ident| match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    };
    let mut columns = Vec::new();
    let _ = visit_expressions(expr, |e| {
        let name = match e {
            Expr::Identifier(ident) => Some(column(ident)),
            Expr::CompoundIdentifier(parts) => parts.last().map(column),
            _ => None,
        };
        if let Some(name) = name
            && !columns.contains(&name)
        {
            columns.push(name);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    columns
}

/// Evaluates conditions over the profile rows of the keys `only` selects: for each key (by
/// its text), each condition with the values behind it. Keys without a profile row are absent.
pub(crate) async fn explain_conditions(
    ctx: &SessionContext,
    profile: &str,
    conditions: &[Condition],
    key: &str,
    only: &KeyFilter,
    params: &Params,
) -> Result<HashMap<String, Vec<ConditionExplanation>>, super::EngineError> {
    let k = ident(key);
    let mut select = vec![k.clone()];
    let mut columns = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        select.push(format!("({}) AS __c{i}", condition.expr));
        let cols = columns_of(&condition.expr);
        let values = cols.iter().enumerate();
        select.extend(values.map(|(j, c)| format!("{} AS __v{i}_{j}", ident(c))));
        columns.push(cols);
    }
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        select.join(", "),
        ident(profile),
        only.predicate(&k)
    );
    let mut explained = HashMap::new();
    for row in super::text_rows(ctx, "explain", &sql, params).await? {
        let mut cells = row.into_iter();
        let Some(Some(key)) = cells.next() else {
            continue;
        };
        let mut list = Vec::new();
        for (condition, cols) in conditions.iter().zip(&columns) {
            let holds = cells.next().flatten().map(|v| v == "true");
            let values = cols
                .iter()
                .map(|c| {
                    (
                        c.clone(),
                        cells.next().flatten().unwrap_or_else(|| "NULL".into()),
                    )
                })
                .collect();
            list.push(ConditionExplanation {
                name: condition.name.clone(),
                sql: condition.text.clone(),
                holds,
                values,
            });
        }
        explained.insert(key, list);
    }
    Ok(explained)
}
