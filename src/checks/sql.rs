//! The SQL of row checks: the query returning a check's failing rows.

use super::{Check, CheckKind};
use crate::sql::{ident, idents};

/// The registered view of a SQL check's query.
pub(super) fn sql_view(check: &Check) -> String {
    format!("__segflow_check_{}", check.name)
}

/// The query returning a row check's failing rows over `table`; `None` for checks that do not
/// look at rows.
pub(super) fn failing_rows(check: &Check, table: &str) -> Option<String> {
    let table = ident(table);
    let join_on = |cols: &[String]| {
        cols.iter()
            .map(|c| format!("t.{c} = d.{c}", c = ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let duplicates = |cols: &[String]| {
        format!(
            "SELECT {list} FROM {table} GROUP BY {list} HAVING COUNT(*) > 1",
            list = idents(cols)
        )
    };
    let any_null = |prefix: &str, cols: &[String]| {
        cols.iter()
            .map(|c| format!("{prefix}{} IS NULL", ident(c)))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    Some(match &check.kind {
        CheckKind::NotNull(cols) => {
            format!("SELECT * FROM {table} WHERE {}", any_null("", cols))
        }
        CheckKind::Unique(cols) => format!(
            "SELECT t.* FROM {table} t JOIN ({}) d ON {}",
            duplicates(cols),
            join_on(cols)
        ),
        CheckKind::PrimaryKey(cols) => format!(
            "SELECT t.* FROM {table} t LEFT JOIN ({}) d ON {} WHERE d.{} IS NOT NULL OR {}",
            duplicates(cols),
            join_on(cols),
            ident(&cols[0]),
            any_null("t.", cols)
        ),
        CheckKind::AcceptedValues { column, values } => format!(
            "SELECT * FROM {table} WHERE {c} IS NOT NULL AND {c} NOT IN ({})",
            values.join(", "),
            c = ident(column)
        ),
        CheckKind::Relationships { column, to, field } => format!(
            "SELECT t.* FROM {table} t LEFT JOIN (SELECT DISTINCT {} AS __v FROM {}) d ON d.__v = t.{c} \
             WHERE t.{c} IS NOT NULL AND d.__v IS NULL",
            ident(field),
            ident(to),
            c = ident(column)
        ),
        CheckKind::Sql(_) => format!("SELECT * FROM {}", sql_view(check)),
        _ => return None,
    })
}

/// The newest date of `column` on or before the run date.
pub(super) fn newest(table: &str, column: &str) -> String {
    let c = ident(column);
    format!(
        "SELECT CAST(MAX({c}) AS DATE) FROM {} WHERE CAST({c} AS DATE) <= $run_date",
        ident(table)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Target;
    use crate::location::Location;
    use crate::spec::Severity;

    fn check(kind: CheckKind) -> Check {
        Check {
            name: "c".into(),
            target: Target::Model("m".into()),
            kind,
            severity: Severity::Error,
            max_failed_percent: 0.0,
            at: Location::file("p.yaml"),
        }
    }

    #[test]
    fn column_names_keep_their_case() {
        let sql = failing_rows(
            &check(CheckKind::NotNull(vec!["T".into(), "Order".into()])),
            "m",
        );
        assert_eq!(
            sql.as_deref(),
            Some("SELECT * FROM \"m\" WHERE \"T\" IS NULL OR \"Order\" IS NULL")
        );
    }
}
