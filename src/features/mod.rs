//! Features: counts, sums and latest or earliest times per key over sliding windows of days,
//! declared in the pipeline (`features:`) and kept up to date incrementally.
//!
//! A feature table is read by name like a model. Its rows are one per key; its columns are
//! `<aggregate>_<N>d` for every window of a `count` or `sum`, and `<aggregate>` for a `max` or
//! `min` (over all history).
//!
//! **How a day's run costs a day of events.** Each run keeps, under its `state/features/<name>/`,
//! the running totals per key (`totals/`) and one folder of per-day partial aggregates per day
//! of the longest window (`days/day=YYYY-MM-DD/`). The next run, for date D after the previous
//! run's date P:
//!
//! ```text
//!  changed days C = [P + 1 - late_days, D]                 read from the events: the only scan
//!  totals(D, w)   = totals(P, w)
//!                 + Σ partials(d) for d in C, inside D's window w
//!                 - Σ old partials(d) for d in P's window w that left it or were recomputed
//!  max / min      = greatest / least of the previous value and the changed days'
//!  days kept      = D's longest window: unchanged days carried over (hard links on a local disk,
//!                   copies on an object store), changed days written anew
//! ```
//!
//! Counts and sums add and subtract exactly (sums of `double` columns are kept as decimals with
//! the declared `decimals`), so the totals equal a recomputation from all events of the same
//! days, bit for bit. A first run, a run with `--full-refresh`, a changed definition, or a
//! previous run too far back to catch up from computes everything from the events instead.

mod compile;
mod state;

use chrono::NaiveDate;

pub(crate) use compile::compile;
pub use state::FeatureMaintenance;
pub(crate) use state::{FeatureError, Inputs, check_plan, days_beside, run, scrub_days};

use crate::location::Location;
use crate::sql::{ident, idents};

/// A compiled feature table.
#[derive(Debug, Clone)]
pub(crate) struct Feature {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) key: Vec<String>,
    pub(crate) time: String,
    pub(crate) late_days: u32,
    /// Only events for which this holds count at all.
    pub(crate) filter: Option<Piece>,
    pub(crate) aggregates: Vec<Aggregate>,
    /// The source is Hive-partitioned by integer `year` and `month`: scans of a range of days
    /// say which partitions they need.
    pub(crate) year_month_partitions: bool,
    /// Where the feature is declared.
    pub(crate) at: Location,
    /// Where `key` and `time` are declared.
    pub(crate) key_at: Location,
    pub(crate) time_at: Location,
}

/// A SQL expression from the pipeline file, with where it is written.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(crate) sql: String,
    pub(crate) at: Location,
}

#[derive(Debug, Clone)]
pub(crate) struct Aggregate {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The column aggregated; `None` for `count: "*"`.
    pub(crate) column: Option<Piece>,
    pub(crate) filter: Option<Piece>,
    /// Window lengths in days (none for `max` and `min`, which are over all history).
    pub(crate) windows: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Count,
    /// Sum of an integer column (exact as integers), or of a `double` column kept exactly as a
    /// decimal with this many places.
    Sum {
        decimals: Option<u32>,
    },
    Max,
    Min,
}

impl Aggregate {
    fn is_windowed(&self) -> bool {
        matches!(self.kind, Kind::Count | Kind::Sum { .. })
    }

    /// Output columns with the window each covers (`None` for all history).
    fn columns(&self) -> Vec<(String, Option<u32>)> {
        if self.is_windowed() {
            self.windows
                .iter()
                .map(|w| (format!("{}_{w}d", self.name), Some(*w)))
                .collect()
        } else {
            vec![(self.name.clone(), None)]
        }
    }

    /// The value one event contributes (NULL when it does not count).
    fn measure(&self) -> String {
        let condition = self.filter.as_ref().map(|f| format!("({})", f.sql));
        let column = self.column.as_ref().map(|c| ident(&c.sql));
        match self.kind {
            Kind::Count => {
                let mut when: Vec<String> = condition.into_iter().collect();
                if let Some(column) = column {
                    when.push(format!("{column} IS NOT NULL"));
                }
                if when.is_empty() {
                    "CAST(1 AS BIGINT)".to_string()
                } else {
                    format!(
                        "CASE WHEN {} THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END",
                        when.join(" AND ")
                    )
                }
            }
            Kind::Sum { decimals } => {
                let column = column.expect("a sum has a column");
                let value = match decimals {
                    Some(places) => format!("CAST({column} AS DECIMAL(38, {places}))"),
                    None => format!("CAST({column} AS BIGINT)"),
                };
                match condition {
                    Some(condition) => format!("CASE WHEN {condition} THEN {value} END"),
                    None => value,
                }
            }
            Kind::Max | Kind::Min => {
                let column = column.expect("max and min have a column");
                match condition {
                    Some(condition) => format!("CASE WHEN {condition} THEN {column} END"),
                    None => column,
                }
            }
        }
    }

    /// How partial values of this aggregate combine.
    fn combine(&self) -> &'static str {
        match self.kind {
            Kind::Count | Kind::Sum { .. } => "SUM",
            Kind::Max => "MAX",
            Kind::Min => "MIN",
        }
    }

    /// The published column: decimal sums are published as `double`.
    fn publish(&self, column: &str) -> String {
        match self.kind {
            Kind::Sum {
                decimals: Some(_), ..
            } => format!("CAST({c} AS DOUBLE) AS {c}", c = ident(column)),
            _ => ident(column),
        }
    }
}

/// Hidden totals column: events in the longest window (a key with none has no row).
const ROWS: &str = "__rows";
/// The partials' day column.
const DAY: &str = "day";

fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{date}'")
}

/// The start of day `date`, as a timestamp literal.
fn start_of(date: NaiveDate) -> String {
    format!("CAST(DATE '{date}' AS TIMESTAMP)")
}

impl Feature {
    /// The longest window in days (0 when there are only `max`/`min`).
    pub(crate) fn longest_window(&self) -> u32 {
        self.aggregates
            .iter()
            .flat_map(|a| a.windows.iter().copied())
            .max()
            .unwrap_or(0)
    }

    /// Whether some aggregate covers all history, so that a key keeps its row forever.
    fn has_all_time(&self) -> bool {
        self.aggregates.iter().any(|a| !a.is_windowed())
    }

    fn keys(&self) -> String {
        idents(&self.key)
    }

    /// Events that count: those with a time that meet the feature's own condition. A NULL key
    /// is a key like any other (`GROUP BY` puts NULLs together), e.g. a message tied to no offer.
    fn event_filter(&self) -> String {
        let mut parts = vec![format!("{} IS NOT NULL", ident(&self.time))];
        if let Some(filter) = &self.filter {
            parts.push(format!("({})", filter.sql));
        }
        parts.join(" AND ")
    }

    /// Events of the days `from..=to` (`from` None: all history up to `to`).
    fn events_between(&self, from: Option<NaiveDate>, to: NaiveDate) -> String {
        let time = ident(&self.time);
        let mut parts = vec![format!(
            "{time} < {}",
            start_of(to.succ_opt().unwrap_or(to))
        )];
        if let Some(from) = from {
            parts.push(format!("{time} >= {}", start_of(from)));
        }
        if self.year_month_partitions {
            let month = |d: NaiveDate| {
                use chrono::Datelike;
                d.year() * 100 + d.month() as i32
            };
            let upper = format!("\"year\" * 100 + \"month\" <= {}", month(to));
            parts.push(match from {
                Some(from) => format!("{upper} AND \"year\" * 100 + \"month\" >= {}", month(from)),
                None => upper,
            });
        }
        parts.push(self.event_filter());
        format!(
            "SELECT * FROM {} WHERE {}",
            ident(&self.source),
            parts.join(" AND ")
        )
    }

    /// Columns of the totals (state) table, in order, without the key.
    fn total_columns(&self) -> Vec<(&Aggregate, String, Option<u32>)> {
        self.aggregates
            .iter()
            .flat_map(|a| a.columns().into_iter().map(move |(c, w)| (a, c, w)))
            .collect()
    }

    /// Totals as of `date` from the events themselves: the whole computation in one query.
    /// `date` None writes `$run_date` (the feature as a query, for tests and `explain`).
    fn totals_from_events(&self, date: Option<NaiveDate>) -> String {
        let run_date = date.map_or("$run_date".to_string(), date_literal);
        let longest = self.longest_window();
        let since = |w: u32| format!("CAST({run_date} - {} AS TIMESTAMP)", w - 1);
        let time = ident(&self.time);
        let mut select = vec![self.keys()];
        for (aggregate, column, window) in self.total_columns() {
            let measure = aggregate.measure();
            select.push(match window {
                Some(w) => format!(
                    "COALESCE(SUM(CASE WHEN {time} >= {} THEN {measure} END), 0) AS {}",
                    since(w),
                    ident(&column)
                ),
                None => format!("{}({measure}) AS {}", aggregate.combine(), ident(&column)),
            });
        }
        if longest > 0 {
            select.push(format!(
                "SUM(CASE WHEN {time} >= {} THEN 1 ELSE 0 END) AS {ROWS}",
                since(longest)
            ));
        }
        let events = match date {
            Some(date) => {
                let from = (!self.has_all_time())
                    .then(|| date - chrono::Days::new(u64::from(longest.max(1)) - 1));
                self.events_between(from, date)
            }
            None => self.events_as_of_run_date((!self.has_all_time()).then_some(longest)),
        };
        format!(
            "SELECT {} FROM ({events}) AS events GROUP BY {}",
            select.join(",\n    "),
            self.keys()
        )
    }

    /// The published columns over a totals table.
    fn projection(&self, totals: &str) -> String {
        let mut select = vec![self.keys()];
        for (aggregate, column, _) in self.total_columns() {
            select.push(aggregate.publish(&column));
        }
        format!("SELECT {} FROM {totals}", select.join(", "))
    }

    /// The feature as one query over its source, as of `$run_date`: what `explain`, `test` and
    /// `validate` plan. A run maintains the same rows incrementally.
    pub(crate) fn query_text(&self) -> String {
        format!(
            "-- feature {}, computed from all its events\n{}",
            self.name,
            self.projection(&format!("({}) AS totals", self.totals_from_events(None)))
        )
    }

    /// Partial aggregates per key and day for the days `from..=to`.
    fn partials(&self, from: NaiveDate, to: NaiveDate) -> String {
        self.partials_of(&self.events_between(Some(from), to))
    }

    /// The per-day partials a first run writes into the feature's state (one folder per day),
    /// as one query over the longest window as of `$run_date`; `None` without windows. What
    /// `plan --format sql` prints beside the feature's query.
    pub(crate) fn state_query_text(&self) -> Option<String> {
        let longest = self.longest_window();
        if longest == 0 {
            return None;
        }
        Some(format!(
            "-- feature {}: its per-day partials over the longest window ({longest} days)\n{}",
            self.name,
            self.partials_of(&self.events_as_of_run_date(Some(longest)))
        ))
    }

    /// Events up to `$run_date` that count, of its last `days` days (`None`: all history).
    fn events_as_of_run_date(&self, days: Option<u32>) -> String {
        let time = ident(&self.time);
        let mut filter = vec![format!(
            "{time} < CAST($run_date + INTERVAL '1 day' AS TIMESTAMP)"
        )];
        if let Some(days) = days {
            filter.push(format!(
                "{time} >= CAST($run_date - {} AS TIMESTAMP)",
                days - 1
            ));
        }
        filter.push(self.event_filter());
        format!(
            "SELECT * FROM {} WHERE {}",
            ident(&self.source),
            filter.join(" AND ")
        )
    }

    /// Partial aggregates per key and day of `events`.
    fn partials_of(&self, events: &str) -> String {
        let mut select = vec![
            self.keys(),
            format!("CAST({} AS DATE) AS {DAY}", ident(&self.time)),
            format!("COUNT(*) AS {ROWS}"),
        ];
        for aggregate in &self.aggregates {
            select.push(format!(
                "{}({}) AS {}",
                aggregate.combine(),
                aggregate.measure(),
                ident(&aggregate.name)
            ));
        }
        format!(
            "SELECT {} FROM ({events}) AS events GROUP BY {}, CAST({} AS DATE)",
            select.join(", "),
            self.keys(),
            ident(&self.time)
        )
    }
}
