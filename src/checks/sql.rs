//! The SQL of row checks: the query returning a check's failing rows.

use datafusion::arrow::datatypes::DataType;

use super::{Check, CheckKind};
use crate::sql::{arrow_cast, ident, idents};

/// The registered view of a SQL check's query.
pub(super) fn sql_view(check: &Check) -> String {
    format!("__segflow_check_{}", check.name)
}

/// The query returning a row check's failing rows over `table`; `None` for checks that do not
/// look at rows. `column_type` is the type of the column an `accepted_values` check reads.
pub(super) fn failing_rows(
    check: &Check,
    table: &str,
    column_type: Option<&DataType>,
) -> Option<String> {
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
        CheckKind::AcceptedValues { column, values } => {
            // Values are compared in the column's type: a FLOAT (32-bit) column's 0.1 is
            // 0.100000001… as a double, not the 0.1 written.
            let values: Vec<String> = match column_type {
                Some(t @ (DataType::Float16 | DataType::Float32)) => {
                    values.iter().map(|v| arrow_cast(v, t)).collect()
                }
                _ => values.clone(),
            };
            format!(
                "SELECT * FROM {table} WHERE {c} IS NOT NULL AND {c} NOT IN ({})",
                values.join(", "),
                c = ident(column)
            )
        }
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

/// For the checks of duplicates (`unique`, `primary_key`), a query of one row: how many rows
/// fail and how many the table has, from one pass that groups the rows by the checked columns.
/// The failing rows themselves ([`failing_rows`]) join each row to the duplicated keys, reading
/// the table twice, which is only worth it for a sample when some fail. A row fails when its
/// key is duplicated, or for `primary_key` also when a key column is NULL; `unique` does not
/// count NULL keys as duplicates (NULL equals nothing), as [`failing_rows`] does not join them.
pub(super) fn failing_and_total(check: &Check, table: &str) -> Option<String> {
    // The count's name is one no checked column can have (a column `n` made `n` ambiguous).
    let (cols, fails) = match &check.kind {
        CheckKind::Unique(cols) => (
            cols,
            format!("__segflow_n > 1 AND NOT ({})", any_null("", cols)),
        ),
        CheckKind::PrimaryKey(cols) => (cols, format!("__segflow_n > 1 OR {}", any_null("", cols))),
        _ => return None,
    };
    Some(format!(
        "SELECT COALESCE(SUM(CASE WHEN {fails} THEN __segflow_n ELSE 0 END), 0) AS failing, \
                COALESCE(SUM(__segflow_n), 0) AS total \
         FROM (SELECT {list}, COUNT(*) AS __segflow_n FROM {table} GROUP BY {list})",
        list = idents(cols),
        table = ident(table),
    ))
}

/// SQL that holds when one of `cols` (qualified by `prefix`) is NULL.
fn any_null(prefix: &str, cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("{prefix}{} IS NULL", ident(c)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The newest date of `column` (of type `column_type`) on or before the run date. Timestamps
/// without a time zone are compared with the start of the next day, of the column's own type
/// (a far sentinel such as 9999-12-31 cannot overflow it), rather than cast to a date row by
/// row: on a year of events a third of the time.
pub(super) fn newest(table: &str, column: &str, column_type: &DataType) -> String {
    let c = ident(column);
    let on_or_before = match column_type {
        DataType::Timestamp(_, None) => {
            format!("{c} < {}", arrow_cast("$run_date + 1", column_type))
        }
        _ => format!("CAST({c} AS DATE) <= $run_date"),
    };
    format!(
        "SELECT CAST(MAX({c}) AS DATE) FROM {} WHERE {on_or_before}",
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

    /// A freshness check on timestamps compares them with a literal, not a cast of each row, and
    /// finds the same newest date as the cast at the day's edges and with a far sentinel.
    #[tokio::test]
    async fn newest_timestamp_is_compared_without_casting_and_agrees_with_the_cast() {
        use datafusion::arrow::array::{Array, AsArray, RecordBatch, TimestampMicrosecondArray};
        use datafusion::arrow::datatypes::Date32Type;
        use datafusion::prelude::SessionContext;
        let micros = |text: &str| {
            let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            t.and_utc().timestamp_micros()
        };
        let ctx = SessionContext::new();
        let tables = [
            // The last microsecond of the run date, the next day's first, a far sentinel.
            (
                "t",
                vec![
                    "2026-11-19 12:00:00.0",
                    "2026-11-20 23:59:59.999999",
                    "2026-11-21 00:00:00.0",
                    "9999-12-31 00:00:00.0",
                ],
            ),
            (
                "later",
                vec!["2026-11-21 00:00:00.0", "9999-12-31 00:00:00.0"],
            ),
        ];
        for (name, times) in &tables {
            let column = TimestampMicrosecondArray::from(
                times.iter().map(|t| micros(t)).collect::<Vec<_>>(),
            );
            let batch =
                RecordBatch::try_from_iter([("at", std::sync::Arc::new(column) as _)]).unwrap();
            ctx.register_batch(*name, batch).unwrap();
        }
        let typed = ctx
            .table("t")
            .await
            .unwrap()
            .schema()
            .field(0)
            .data_type()
            .clone();
        for (name, expected) in [("t", Some(20_777)), ("later", None)] {
            let mut days = Vec::new();
            let compared = newest(name, "at", &typed);
            assert!(!compared.contains("AS DATE) <="), "{compared}");
            for column_type in [typed.clone(), DataType::Date32] {
                // Given a date column's type, the query casts each row (a no-op for dates).
                let sql =
                    newest(name, "at", &column_type).replace("$run_date", "DATE '2026-11-20'");
                let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
                let column = batches[0].column(0).as_primitive::<Date32Type>();
                days.push((!column.is_null(0)).then(|| column.value(0)));
            }
            assert_eq!(days, [expected, expected], "{name}");
        }
    }

    /// The one-pass count of `unique` and `primary_key` agrees with counting their failing
    /// rows, NULL keys and keys of two columns included.
    #[tokio::test]
    async fn duplicates_are_counted_as_their_failing_rows() {
        use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
        use datafusion::arrow::datatypes::Int64Type;
        use datafusion::prelude::SessionContext;
        let a = Int64Array::from(vec![
            Some(1),
            Some(1),
            Some(2),
            None,
            None,
            Some(3),
            Some(3),
        ]);
        let b = StringArray::from(vec![
            Some("x"),
            Some("x"),
            Some("y"),
            Some("z"),
            Some("z"),
            None,
            None,
        ]);
        let batch = RecordBatch::try_from_iter([
            ("a", std::sync::Arc::new(a) as _),
            ("b", std::sync::Arc::new(b) as _),
        ])
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("m", batch).unwrap();
        let ctx = &ctx;
        let row = |sql: String| async move {
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let columns = batches[0].columns().iter();
            columns
                .map(|c| c.as_primitive::<Int64Type>().value(0))
                .collect::<Vec<_>>()
        };
        let cases = [
            (CheckKind::Unique(vec!["a".into()]), 4),
            (CheckKind::PrimaryKey(vec!["a".into()]), 6),
            (CheckKind::Unique(vec!["a".into(), "b".into()]), 2),
            (CheckKind::PrimaryKey(vec!["a".into(), "b".into()]), 6),
        ];
        for (kind, expected) in cases {
            let check = check(kind);
            let rows = failing_rows(&check, "m", None).unwrap();
            let counted = row(format!("SELECT COUNT(*) FROM ({rows})")).await;
            let both = row(failing_and_total(&check, "m").unwrap()).await;
            assert_eq!(
                (counted[0], both[0], both[1]),
                (expected, expected, 7),
                "{:?}",
                check.kind
            );
        }
    }

    /// A FLOAT column's 0.1 widened to a double is 0.100000001…: every row failed.
    #[tokio::test]
    async fn accepted_values_compare_in_the_columns_type() {
        use datafusion::arrow::array::{Float32Array, RecordBatch};
        use datafusion::prelude::SessionContext;
        let f = Float32Array::from(vec![0.1, 0.2, 0.2, 0.3]);
        let batch = RecordBatch::try_from_iter([("f", std::sync::Arc::new(f) as _)]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("m", batch).unwrap();
        let check = check(CheckKind::AcceptedValues {
            column: "f".into(),
            values: vec!["0.1".into(), "0.2".into()],
        });
        let sql = failing_rows(&check, "m", Some(&DataType::Float32)).unwrap();
        let failing = ctx.sql(&sql).await.unwrap().count().await.unwrap();
        assert_eq!(failing, 1, "{sql}");
    }

    #[test]
    fn column_names_keep_their_case() {
        let sql = failing_rows(
            &check(CheckKind::NotNull(vec!["T".into(), "Order".into()])),
            "m",
            None,
        );
        assert_eq!(
            sql.as_deref(),
            Some("SELECT * FROM \"m\" WHERE \"T\" IS NULL OR \"Order\" IS NULL")
        );
    }
}
