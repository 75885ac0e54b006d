//! Rules: who a segment, a suppression or an offer applies to, given as named conditions over a
//! profile or as a query returning keys.

use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use super::{Params, SqlQuery, parse_query, query::select_expression};
use crate::location::Location;

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    /// All conditions must hold (NULL counts as not holding).
    Conditions(Vec<Condition>),
    /// A query returning keys, optionally with columns that explain each (e.g. `reason`).
    Sql(Box<SqlQuery>),
}

impl Rule {
    /// The conditions of a rule given as conditions; none for a SQL rule.
    pub(crate) fn conditions(&self) -> &[Condition] {
        match self {
            Rule::Conditions(conditions) => conditions,
            Rule::Sql(_) => &[],
        }
    }

    /// The rule in words, for the manifest and `explain`.
    pub(crate) fn describe(&self) -> Vec<String> {
        match self {
            Rule::Conditions(conditions) => conditions
                .iter()
                .map(|c| format!("{}: {}", c.name, c.text))
                .collect(),
            Rule::Sql(query) => vec![format!("members returned by {}", query.path.display())],
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) name: String,
    /// The expression as written.
    pub(crate) text: String,
    /// The expression with placeholders typed, ready to embed in generated SQL.
    pub(crate) expr: SqlExpr,
    /// What a member is told: the condition's own sentence, or `name: expression`.
    pub(crate) reason: String,
    pub(crate) at: Location,
}

/// The predicate "every condition holds", NULL counting as not holding; `true` for none.
pub(crate) fn all_hold(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        return "true".into();
    }
    conditions
        .iter()
        .map(|c| format!("COALESCE(({}), false)", c.expr))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Parses a condition as a SQL expression, typing its placeholders like a model's.
pub(crate) fn parse_condition(
    at: &Location,
    text: &str,
    params: &Params,
) -> Result<SqlExpr, String> {
    // Parse inside a query so the same placeholder typing applies.
    let wrapped = format!("SELECT {text}");
    let query = parse_query(&at.file, &wrapped, params).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                p.message
                    .replace("SQL syntax error: ", "not a SQL expression: ")
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Reject anything beyond a single expression (`a, b` or `a FROM t`).
    let mut parser = DFParserBuilder::new(text)
        .build()
        .map_err(|e| e.strip_backtrace())?;
    parser
        .parse_into_expr()
        .map_err(|e| format!("not a single SQL expression: {}", e.strip_backtrace()))?;
    if !query.tables.is_empty() {
        return Err(
            "a condition reads the profile's columns only; use a SQL segment to read other tables"
                .into(),
        );
    }
    select_expression(&query).ok_or_else(|| "expected one expression".to_string())
}
