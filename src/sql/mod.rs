//! SQL as segflow reads and writes it: the user's query files (parsed with DataFusion's parser,
//! placeholders typed), the typed parameters bound to them, the rules (named conditions or a
//! query) that segments, suppressions and offers share, and the quoting of names and values in
//! SQL that segflow generates.

use datafusion::arrow::datatypes::DataType;

mod params;
mod query;
mod rule;

pub use params::ParamError;
pub(crate) use params::{
    Params, RUN_DATE, Value, days_since_epoch, iso_date, parse_param, supported_date,
};
pub(crate) use query::{SqlQuery, parse_query, volatile_function};
pub(crate) use rule::{Condition, Rule, all_hold, parse_condition};

/// `text` as a SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` as a quoted SQL identifier, so names from the pipeline keep their case and may be
/// reserved words (`"Order"`, `"T"`).
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `expr` as the Arrow type `to`, exactly (DataFusion's `arrow_cast`): for types SQL cannot
/// name, such as a timestamp's unit or a dictionary.
pub(crate) fn arrow_cast(expr: &str, to: &DataType) -> String {
    format!("arrow_cast({expr}, {})", literal(&to.to_string()))
}

/// A string column of a few distinct texts as a dictionary: a large table sorted or joined
/// then holds each row's key into the dictionary instead of a copy of its text. Published
/// tables store plain strings again (see `store::parquet`).
pub(crate) fn dictionary(column: &str) -> String {
    let texts = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    arrow_cast(column, &texts)
}

/// A comma-separated list of quoted identifiers.
pub(crate) fn idents<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|n| ident(n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A restriction of a step to some keys: `explain` evaluates the same SQL as a run, for the
/// customers it explains only.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyFilter {
    /// The keys as SQL literals of the key column's type.
    literals: Vec<String>,
    /// The same keys as the key column's values print (`042` given for a number is `42`).
    texts: Vec<String>,
}

impl KeyFilter {
    /// Keys as `(SQL literal, text)` pairs; a key given twice (`7` and `007` for a number)
    /// is kept once, in the place it was first given.
    pub(crate) fn new(keys: Vec<(String, String)>) -> Self {
        let mut filter = Self {
            literals: Vec::new(),
            texts: Vec::new(),
        };
        for (literal, text) in keys {
            if !filter.texts.contains(&text) {
                filter.literals.push(literal);
                filter.texts.push(text);
            }
        }
        filter
    }

    pub(crate) fn texts(&self) -> &[String] {
        &self.texts
    }

    /// A predicate on `column` (already quoted and qualified as needed).
    pub(crate) fn predicate(&self, column: &str) -> String {
        if self.literals.is_empty() {
            return "false".into();
        }
        format!("{column} IN ({})", self.literals.join(", "))
    }
}

/// A table of string rows as SQL (`VALUES`), or an empty table with those columns.
pub(crate) fn values(rows: Vec<String>, columns: &[&str]) -> String {
    if rows.is_empty() {
        let nulls: Vec<String> = columns
            .iter()
            .map(|c| format!("CAST(NULL AS VARCHAR) AS {c}"))
            .collect();
        return format!("SELECT {} WHERE false", nulls.join(", "));
    }
    let named: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("column{} AS {c}", i + 1))
        .collect();
    format!(
        "SELECT {} FROM (VALUES {})",
        named.join(", "),
        rows.join(", ")
    )
}

/// One `VALUES` row of string literals.
pub(crate) fn row(cells: &[&str]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| literal(c)).collect();
    format!("({})", cells.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_keep_their_case_and_escape_quotes() {
        assert_eq!(ident("T"), "\"T\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn an_empty_values_table_keeps_its_columns() {
        assert_eq!(
            values(Vec::new(), &["a", "b"]),
            "SELECT CAST(NULL AS VARCHAR) AS a, CAST(NULL AS VARCHAR) AS b WHERE false"
        );
        assert_eq!(
            values(vec![row(&["x", "y"])], &["a", "b"]),
            "SELECT column1 AS a, column2 AS b FROM (VALUES ('x', 'y'))"
        );
    }
}
