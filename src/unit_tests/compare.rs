//! Expected and actual rows compared as multisets of displayed values, and the row diff shown
//! when they differ.
//!
//! Values compare as the text DataFusion displays (`2026-11-01`, `true`, `700.0`), except that
//! in a numeric column two numbers compare as numbers (`700` matches `700.0`; values written
//! with a decimal point or exponent match within a relative tolerance of 1e-9, which absorbs
//! floating-point noise such as `0.1 + 0.2`) and in a column of timestamps two timestamps
//! compare as instants (`2026-10-01 10:00:00` matches `2026-10-01T10:00:00`). Text compares
//! as written: `+33612345678` is not `33612345678`.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::NaiveDateTime;
use datafusion::arrow::datatypes::DataType;

/// How a column's values compare.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Number,
    Instant,
    Text,
}

impl Kind {
    pub fn of(data_type: &DataType) -> Self {
        match data_type {
            t if t.is_numeric() => Kind::Number,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Kind::Instant,
            _ => Kind::Text,
        }
    }
}

/// One value as displayed; `None` is NULL.
pub type Cell = Option<String>;

/// Relative difference under which two numbers written with decimals are equal.
pub const RELATIVE_TOLERANCE: f64 = 1e-9;

/// Above this many rows, a diff shows only the rows that differ.
const MAX_ROWS_SHOWN: usize = 50;

pub fn cells_match(expected: &Cell, actual: &Cell, kind: Kind) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => match kind {
            _ if e == a => true,
            Kind::Number => numbers_match(e, a),
            Kind::Instant => timestamps_match(e, a),
            Kind::Text => false,
        },
        _ => false,
    }
}

fn number(text: &str) -> Option<f64> {
    let t = text.trim();
    // Only plain numerals: "nan" or "inf" in a text column are words.
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
        return None;
    }
    t.parse().ok()
}

fn numbers_match(expected: &str, actual: &str) -> bool {
    // Whole numbers are exact, beyond 2^53 too, where doubles no longer tell them apart.
    let whole = |t: &str| t.trim().parse::<i128>().ok();
    if let (Some(x), Some(y)) = (whole(expected), whole(actual)) {
        return x == y;
    }
    let (Some(x), Some(y)) = (number(expected), number(actual)) else {
        return false;
    };
    if x == y {
        return true;
    }
    let fractional = |t: &str| t.contains(['.', 'e', 'E']);
    // Whole numbers are exact: 1000000 and 1000001 differ.
    (fractional(expected) || fractional(actual))
        && (x - y).abs() <= RELATIVE_TOLERANCE * x.abs().max(y.abs())
}

/// A timestamp as written: without an offset (wall-clock time), or with one (an instant).
enum Written {
    Local(NaiveDateTime),
    Instant(chrono::DateTime<chrono::FixedOffset>),
}

fn timestamp(text: &str) -> Option<Written> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    let t = text.trim();
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(Written::Local)
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(Written::Instant)
        })
}

/// A value of a column with a time zone is shown with its offset (`12:00:00+01:00`); an
/// expected time written without one is that zone's wall-clock time, as given rows are read.
/// One written with an offset is the instant it names.
fn timestamps_match(expected: &str, actual: &str) -> bool {
    use Written::*;
    match (timestamp(expected), timestamp(actual)) {
        (Some(Local(e)), Some(Local(a))) => e == a,
        (Some(Instant(e)), Some(Instant(a))) => e == a,
        (Some(Local(e)), Some(Instant(a))) => e == a.naive_local(),
        (Some(Instant(e)), Some(Local(a))) => e.naive_utc() == a,
        _ => false,
    }
}

fn rows_match(expected: &[Cell], actual: &[Cell], kinds: &[Kind]) -> bool {
    expected.len() == actual.len()
        && (expected.iter().zip(actual).zip(kinds)).all(|((e, a), k)| cells_match(e, a, *k))
}

/// How a row of the diff relates the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// Expected and found.
    Same,
    /// Expected but not found: `-`.
    Missing,
    /// Found but not expected: `+`.
    Unexpected,
}

impl Mark {
    fn symbol(self) -> char {
        match self {
            Mark::Same => ' ',
            Mark::Missing => '-',
            Mark::Unexpected => '+',
        }
    }
}

/// Every expected and actual row, matched up.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub rows: Vec<(Mark, Vec<Cell>)>,
    pub expected: usize,
    pub actual: usize,
}

impl Diff {
    pub fn missing(&self) -> usize {
        self.rows
            .iter()
            .filter(|(m, _)| *m == Mark::Missing)
            .count()
    }

    pub fn unexpected(&self) -> usize {
        self.rows
            .iter()
            .filter(|(m, _)| *m == Mark::Unexpected)
            .count()
    }

    pub fn matches(&self) -> bool {
        self.rows.iter().all(|(m, _)| *m == Mark::Same)
    }

    /// "1 expected row missing (-), 2 unexpected rows (+)".
    pub fn summary(&self) -> String {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut parts = Vec::new();
        let missing = self.missing();
        if missing > 0 {
            parts.push(format!(
                "{missing} expected row{} missing (-)",
                plural(missing)
            ));
        }
        let unexpected = self.unexpected();
        if unexpected > 0 {
            parts.push(format!(
                "{unexpected} unexpected row{} (+)",
                plural(unexpected)
            ));
        }
        format!(
            "{}; expected {} row{}, got {}",
            parts.join(", "),
            self.expected,
            plural(self.expected),
            self.actual
        )
    }

    /// The rows as a table, like a unified diff: ` ` found as expected, `-` expected but
    /// missing, `+` not expected. Sorted by value, so a changed row's two versions sit together.
    pub fn render(&self, columns: &[String]) -> String {
        let differing = self.rows.iter().filter(|(m, _)| *m != Mark::Same).count();
        let show_same = self.rows.len() <= MAX_ROWS_SHOWN;
        let mut shown: Vec<&(Mark, Vec<Cell>)> = self
            .rows
            .iter()
            .filter(|(m, _)| show_same || *m != Mark::Same)
            .collect();
        let cut = shown.len().saturating_sub(MAX_ROWS_SHOWN);
        shown.truncate(MAX_ROWS_SHOWN);

        let texts: Vec<(Mark, Vec<String>)> = shown
            .iter()
            .map(|(m, cells)| (*m, cells.iter().map(cell_text).collect()))
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                texts
                    .iter()
                    .map(|(_, cells)| cells[i].chars().count())
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |mark: char, cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {mark} {}", padded.join(" | "))
                .trim_end()
                .to_string()
        };
        let mut out = vec![line(' ', columns)];
        out.extend(texts.iter().map(|(m, cells)| line(m.symbol(), cells)));
        if !show_same {
            out.push(format!(
                "  ({} matching rows not shown)",
                self.rows.len() - differing
            ));
        }
        if cut > 0 {
            out.push(format!("  ({cut} more differing rows not shown)"));
        }
        out.join("\n")
    }
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        None => "NULL".into(),
        Some(text) if text.is_empty() => "\"\"".into(),
        Some(text) => text.clone(),
    }
}

fn compare_cells(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => match (number(x), number(y)) {
            (Some(nx), Some(ny)) => nx
                .partial_cmp(&ny)
                .unwrap_or(Ordering::Equal)
                .then(x.cmp(y)),
            _ => x.cmp(y),
        },
    }
}

fn compare_rows(a: &[Cell], b: &[Cell]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| compare_cells(x, y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Matches expected rows with actual rows, each actual row used once: identical rows first,
/// then rows equal within the rules of [`cells_match`] for each column's `kinds`.
pub fn compare(expected: &[Vec<Cell>], actual: &[Vec<Cell>], kinds: &[Kind]) -> Diff {
    let mut unused: HashMap<&[Cell], Vec<usize>> = HashMap::new();
    for (i, row) in actual.iter().enumerate().rev() {
        unused.entry(row.as_slice()).or_default().push(i);
    }
    let mut used = vec![false; actual.len()];
    let mut matched: Vec<Option<usize>> = expected
        .iter()
        .map(|row| {
            let i = unused.get_mut(row.as_slice()).and_then(Vec::pop)?;
            used[i] = true;
            Some(i)
        })
        .collect();
    for (e, slot) in expected.iter().zip(matched.iter_mut()) {
        if slot.is_none()
            && let Some(i) =
                (0..actual.len()).find(|&i| !used[i] && rows_match(e, &actual[i], kinds))
        {
            used[i] = true;
            *slot = Some(i);
        }
    }
    let mut rows: Vec<(Mark, Vec<Cell>)> = expected
        .iter()
        .zip(&matched)
        .map(|(e, m)| match m {
            Some(i) => (Mark::Same, actual[*i].clone()),
            None => (Mark::Missing, e.clone()),
        })
        .collect();
    rows.extend(
        actual
            .iter()
            .zip(&used)
            .filter(|(_, used)| !**used)
            .map(|(a, _)| (Mark::Unexpected, a.clone())),
    );
    // By the first column (usually the key), then `-` before `+`, like a unified diff.
    rows.sort_by(|(ma, a), (mb, b)| {
        compare_rows(&a[..a.len().min(1)], &b[..b.len().min(1)])
            .then(ma.cmp(mb))
            .then_with(|| compare_rows(a, b))
    });
    Diff {
        rows,
        expected: expected.len(),
        actual: actual.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Vec<Cell> {
        cells.iter().map(|c| c.map(str::to_string)).collect()
    }

    #[test]
    fn whole_and_decimal_numbers_match() {
        let cells_match = |e: &Cell, a: &Cell| cells_match(e, a, Kind::Number);
        assert!(cells_match(&Some("700".into()), &Some("700.0".into())));
        assert!(cells_match(
            &Some("0.3".into()),
            &Some("0.30000000000000004".into())
        ));
        assert!(cells_match(&Some("1e3".into()), &Some("1000".into())));
        assert!(!cells_match(&Some("700".into()), &Some("700.5".into())));
        assert!(!cells_match(
            &Some("233.33".into()),
            &Some("233.33333333333334".into())
        ));
    }

    #[test]
    fn the_tolerance_is_relative_and_whole_numbers_are_exact() {
        let cells_match = |e: &Cell, a: &Cell| cells_match(e, a, Kind::Number);
        assert!(cells_match(
            &Some("1000000.0".into()),
            &Some("1000000.0000001".into())
        ));
        assert!(!cells_match(
            &Some("1000000.0".into()),
            &Some("1000000.01".into())
        ));
        assert!(!cells_match(
            &Some("1000000".into()),
            &Some("1000001".into())
        ));
        assert!(!cells_match(&Some("nan".into()), &Some("NaN".into())));
        assert!(!cells_match(
            &Some("9007199254740992".into()),
            &Some("9007199254740993".into())
        ));
        assert!(cells_match(&Some("700".into()), &Some("700.0".into())));
    }

    #[test]
    fn nulls_only_match_nulls() {
        let cells_match = |e: &Cell, a: &Cell| cells_match(e, a, Kind::Text);
        assert!(cells_match(&None, &None));
        assert!(!cells_match(&None, &Some("".into())));
        assert!(!cells_match(&Some("NULL".into()), &None));
    }

    #[test]
    fn timestamps_match_with_either_separator() {
        let cells_match = |e: &Cell, a: &Cell| cells_match(e, a, Kind::Instant);
        assert!(cells_match(
            &Some("2026-10-01 10:00:00".into()),
            &Some("2026-10-01T10:00:00".into())
        ));
        assert!(cells_match(
            &Some("2026-10-01T10:00".into()),
            &Some("2026-10-01T10:00:00.000".into())
        ));
        assert!(!cells_match(
            &Some("2026-10-01".into()),
            &Some("2026-10-01T00:00:00".into())
        ));
    }

    #[test]
    fn a_time_without_an_offset_is_the_columns_wall_clock_time() {
        let cells_match =
            |e: &str, a: &str| cells_match(&Some(e.into()), &Some(a.into()), Kind::Instant);
        // A value of a Europe/Paris column, as given rows are read: local noon.
        let paris = "2026-11-10T12:00:00+01:00";
        assert!(cells_match("2026-11-10T12:00:00", paris));
        assert!(!cells_match("2026-11-10T11:00:00", paris));
        // With an offset, the instant.
        assert!(cells_match("2026-11-10T11:00:00Z", paris));
        assert!(cells_match(
            "2026-11-10T11:00:00+00:00",
            "2026-11-10T11:00:00"
        ));
        assert!(!cells_match("2026-11-10T12:00:00Z", paris));
    }

    #[test]
    fn text_compares_as_written_whatever_it_looks_like() {
        for (expected, actual) in [
            ("33612345678", "+33612345678"),
            ("7", "007"),
            ("1000", "1e3"),
        ] {
            let (e, a) = (Some(expected.to_string()), Some(actual.to_string()));
            assert!(!cells_match(&e, &a, Kind::Text), "{expected} {actual}");
            assert!(cells_match(&e, &a, Kind::Number), "{expected} {actual}");
        }
    }

    #[test]
    fn rows_compare_as_multisets_in_any_order() {
        let kinds = [Kind::Number];
        let expected = vec![row(&[Some("1")]), row(&[Some("2")]), row(&[Some("2")])];
        let actual = vec![row(&[Some("2.0")]), row(&[Some("1")]), row(&[Some("2")])];
        assert!(compare(&expected, &actual, &kinds).matches());
        let actual = vec![row(&[Some("2")]), row(&[Some("1")])];
        let diff = compare(&expected, &actual, &kinds);
        assert_eq!((diff.missing(), diff.unexpected()), (1, 0));
    }

    #[test]
    fn the_diff_marks_missing_and_unexpected_rows_side_by_side() {
        let kinds = [Kind::Number, Kind::Number, Kind::Text];
        let columns = vec![
            "customer_id".to_string(),
            "spend".to_string(),
            "segment".to_string(),
        ];
        let expected = vec![
            row(&[Some("1"), Some("700"), Some("lapsing")]),
            row(&[Some("2"), Some("50"), None]),
        ];
        let actual = vec![
            row(&[Some("2"), Some("60.0"), None]),
            row(&[Some("1"), Some("700.0"), Some("lapsing")]),
            row(&[Some("10"), Some(""), Some("new")]),
        ];
        let diff = compare(&expected, &actual, &kinds);
        assert_eq!(
            diff.summary(),
            "1 expected row missing (-), 2 unexpected rows (+); expected 2 rows, got 3"
        );
        assert_eq!(
            diff.render(&columns),
            "    customer_id | spend | segment
    1           | 700.0 | lapsing
  - 2           | 50    | NULL
  + 2           | 60.0  | NULL
  + 10          | \"\"    | new"
        );
    }

    #[test]
    fn long_diffs_show_only_the_differing_rows() {
        let kinds = [Kind::Number];
        let expected: Vec<Vec<Cell>> = (0..100).map(|i| row(&[Some(&i.to_string())])).collect();
        let mut actual = expected.clone();
        actual[7] = row(&[Some("700")]);
        let diff = compare(&expected, &actual, &kinds);
        assert_eq!(
            diff.render(&["n".to_string()]),
            "    n\n  - 7\n  + 700\n  (99 matching rows not shown)"
        );
    }
}
