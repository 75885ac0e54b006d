//! One SQL file: parsed with DataFusion's parser, its table references found, its `$name`
//! placeholders checked against the pipeline's parameters and given their types.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use datafusion::common::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::{
    self, CastKind, Expr as SqlExpr, SetExpr, Value, visit_expressions_mut,
};

use super::Params;
use crate::location::{Diagnostic, Location, find_identifier};

/// A parsed, parameter-checked query from a `.sql` file.
#[derive(Debug, Clone)]
pub(crate) struct SqlQuery {
    /// The file as the pipeline names it (relative to the project root), for messages.
    pub(crate) path: PathBuf,
    pub(crate) text: String,
    /// The statement with every placeholder wrapped in a CAST to its parameter's type, so
    /// DataFusion can plan expressions like `$run_date - INTERVAL '30 days'` before binding.
    pub(crate) statement: Statement,
    /// The tables the query reads (CTE names excluded), lower-cased.
    pub(crate) tables: BTreeSet<String>,
}

impl SqlQuery {
    /// The location of `word` in this file (or its start), for errors DataFusion reports
    /// without a position.
    pub(crate) fn locate(&self, word: &str) -> Location {
        match find_identifier(&self.text, word) {
            Some(offset) => Location::at_offset(&self.path, &self.text, offset),
            None => Location::file(&self.path),
        }
    }
}

/// Parses `text` (the content of `path`) as one query over the pipeline's tables.
pub(crate) fn parse_query(
    path: &Path,
    text: &str,
    params: &Params,
) -> Result<SqlQuery, Vec<Diagnostic>> {
    let mut statement = one_query(path, text).map_err(|d| vec![d])?;
    type_placeholders(path, &mut statement, params)?;
    let tables = tables_read(path, text, &statement)?;
    Ok(SqlQuery {
        path: path.to_owned(),
        text: text.to_owned(),
        statement,
        tables,
    })
}

/// The file's single statement, which must be a query (no DDL, DML or COPY).
fn one_query(path: &Path, text: &str) -> Result<Statement, Diagnostic> {
    let mut statements = DFParserBuilder::new(text)
        .build()
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| parse_error(path, text, &err))?;
    let statement = match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => statement,
        (None, _) => {
            return Err(Diagnostic::new(
                Location::file(path),
                "the file holds no query; write one SELECT statement",
            ));
        }
        (Some(_), false) => {
            return Err(Diagnostic::new(
                Location::file(path),
                "the file holds several statements; a model is exactly one SELECT query",
            ));
        }
    };
    let Statement::Statement(inner) = &statement else {
        return Err(not_a_query(path));
    };
    let ast::Statement::Query(query) = inner.as_ref() else {
        return Err(not_a_query(path));
    };
    if !matches!(
        *query.body,
        SetExpr::Select(_) | SetExpr::SetOperation { .. } | SetExpr::Query(_) | SetExpr::Values(_)
    ) {
        return Err(not_a_query(path));
    }
    Ok(statement)
}

/// Wraps every `$name` placeholder in a CAST to its parameter's type, so DataFusion can plan
/// expressions like `$run_date - INTERVAL '30 days'` before the values are bound. Unknown
/// parameters are problems at their line and column.
fn type_placeholders(
    path: &Path,
    statement: &mut Statement,
    params: &Params,
) -> Result<(), Vec<Diagnostic>> {
    let Statement::Statement(inner) = statement else {
        return Ok(());
    };
    let mut problems = Vec::new();
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let SqlExpr::Value(value) = expr
            && let Value::Placeholder(name) = &value.value
        {
            let start = value.span.start;
            let at = Location::new(path, start.line as usize, start.column as usize);
            match type_placeholder(name, params) {
                Ok(data_type) => {
                    let placeholder = std::mem::replace(expr, SqlExpr::value(Value::Null));
                    *expr = SqlExpr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new(placeholder),
                        data_type,
                        array: false,
                        format: None,
                    };
                }
                Err(message) => problems.push(Diagnostic::new(at, message)),
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The tables the query reads (CTE names excluded), lower-cased; qualified names are problems.
fn tables_read(
    path: &Path,
    text: &str,
    statement: &Statement,
) -> Result<BTreeSet<String>, Vec<Diagnostic>> {
    let (tables, _ctes) = resolve_table_references(statement, true)
        .map_err(|err| vec![Diagnostic::new(Location::file(path), err.strip_backtrace())])?;
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for table in tables {
        if table.schema().is_some() {
            let at = match find_identifier(text, table.table()) {
                Some(offset) => Location::at_offset(path, text, offset),
                None => Location::file(path),
            };
            problems.push(Diagnostic::new(
                at,
                format!(
                    "\"{table}\" is a qualified name; read sources and models by their plain name"
                ),
            ));
        } else {
            names.insert(table.table().to_ascii_lowercase());
        }
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(problems)
    }
}

/// The expression of a `SELECT <expr>` query without FROM (how conditions are parsed).
/// Functions whose value changes from one run to the next (the clock, chance).
const VOLATILE: [&str; 9] = [
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "today",
    "random",
    "uuid",
];

/// The first function in `expr` whose value changes from run to run, if any.
pub(crate) fn volatile_function(expr: &SqlExpr) -> Option<String> {
    let mut found = None;
    let _ = ast::visit_expressions(expr, |e| {
        if let SqlExpr::Function(function) = e {
            // The function's own name, quoted (`"now"()`) or not, schema aside.
            let last = function.name.0.last().and_then(|part| part.as_ident());
            let name = last.map_or_else(String::new, |i| i.value.to_ascii_lowercase());
            if VOLATILE.contains(&name.as_str()) {
                found = Some(name);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    found
}

pub(crate) fn select_expression(query: &SqlQuery) -> Option<SqlExpr> {
    let Statement::Statement(inner) = &query.statement else {
        return None;
    };
    let ast::Statement::Query(q) = inner.as_ref() else {
        return None;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1 || !select.from.is_empty() {
        return None;
    }
    match &select.projection[0] {
        ast::SelectItem::UnnamedExpr(expr) => Some(expr.clone()),
        _ => None,
    }
}

fn type_placeholder(name: &str, params: &Params) -> Result<ast::DataType, String> {
    let bare = name.trim_start_matches('$');
    if bare.is_empty() || bare.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "positional parameter {name}: use a named one like $run_date ({})",
            params.describe_names()
        ));
    }
    match params.get(bare) {
        Some(param) => Ok(param.sql_type()),
        None => Err(format!(
            "unknown parameter {name}; {} (add it under `params:` in the pipeline)",
            params.describe_names()
        )),
    }
}

fn not_a_query(path: &Path) -> Diagnostic {
    Diagnostic::new(
        Location::file(path),
        "a model must be a SELECT query (DDL, DML and COPY are not allowed)",
    )
}

/// Turns a parser error into a diagnostic at the line and column sqlparser names.
fn parse_error(path: &Path, text: &str, err: &DataFusionError) -> Diagnostic {
    let message = err.strip_backtrace();
    let message = message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_start_matches("TokenizerError(\"")
        .trim_end_matches("\")")
        .to_string();
    let at = line_column_in(&message)
        .map(|(line, column)| Location::new(path, line, column))
        .unwrap_or_else(|| Location::at_offset(path, text, 0));
    let message = match message.find(" at Line: ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    };
    Diagnostic::new(at, format!("SQL syntax error: {message}"))
}

fn line_column_in(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("Line: ")? + 6..];
    let line: usize = rest[..rest.find(',')?].trim().parse().ok()?;
    let rest = &rest[rest.find("Column: ")? + 8..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SqlQuery, Vec<Diagnostic>> {
        let params = Params::from_spec(&indexmap::IndexMap::new()).unwrap();
        parse_query(Path::new("sql/m.sql"), text, &params)
    }

    #[test]
    fn finds_tables_but_not_ctes() {
        let q = parse(
            "with recent as (select * from Events where x > 1)\n\
             select * from customers c join recent r using (id)",
        )
        .unwrap();
        assert_eq!(q.tables.iter().collect::<Vec<_>>(), ["customers", "events"]);
    }

    #[test]
    fn types_placeholders_with_a_cast() {
        let q = parse("select * from t where d <= $run_date").unwrap();
        assert!(
            q.statement.to_string().contains("CAST($run_date AS DATE)"),
            "{}",
            q.statement
        );
    }

    #[test]
    fn unknown_parameters_point_at_the_placeholder() {
        let err = parse("select *\nfrom t where a > $threshold").unwrap_err();
        assert_eq!(err[0].at.to_string(), "sql/m.sql:2:18");
        assert!(err[0].message.contains("unknown parameter $threshold"));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("select a,\nfrom t wher x").unwrap_err();
        assert!(
            err[0].at.to_string().starts_with("sql/m.sql:2:"),
            "{}",
            err[0]
        );
        assert!(
            err[0].message.starts_with("SQL syntax error:"),
            "{}",
            err[0]
        );
    }

    #[test]
    fn rejects_statements_that_are_not_queries() {
        let err = parse("drop table customers").unwrap_err();
        assert!(err[0].message.contains("must be a SELECT query"));
        let err = parse("select 1; select 2").unwrap_err();
        assert!(err[0].message.contains("several statements"));
    }
}
