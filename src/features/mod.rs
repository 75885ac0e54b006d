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
//! A day's partials are kept for what a later run takes away: an aggregate's while the day is
//! inside its longest window. A first run writes a year of days, most of them outside the
//! shorter windows: those keep only the longer windows' aggregates, and only the keys and days
//! with events that count for them (the others are NULL, and `max`/`min`, never taken away,
//! are NULL on every day it writes).
//!
//! Counts and sums add and subtract exactly (sums of `double` columns are kept as decimals with
//! the declared `decimals`), so the totals equal a recomputation from all events of the same
//! days, bit for bit. A first run, a run with `--full-refresh`, a changed definition, or a
//! previous run too far back to catch up from computes everything from the events instead.

mod compile;
mod state;

use chrono::{Days, NaiveDate, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::datatypes::{DataType, TimeUnit};

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
    /// How the source is declared (its uri as written, format and columns): a state made from
    /// another source is not continued from.
    pub(crate) source_declared: String,
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
    /// When a day starts for the time column: known once the source is read.
    pub(crate) clock: Clock,
}

/// When a day starts for a feature's time column. A day's events are those whose time falls
/// on that date as the column shows it: for a column of instants with a time zone, the date
/// in that zone, from the first instant of the day there — not midnight where a change of
/// daylight saving time skips it (America/Santiago, Cairo, Havana, …).
#[derive(Debug, Clone, Default)]
pub(crate) enum Clock {
    /// Timestamps without a zone, or dates: a day starts at its midnight.
    #[default]
    Naive,
    /// Timestamps of this type, whose zone is `zone`.
    Zoned { zone: Tz, data_type: DataType },
}

impl Clock {
    /// The clock of a time column of type `data_type`.
    pub(crate) fn of(data_type: &DataType) -> Self {
        match data_type {
            DataType::Timestamp(_, Some(zone)) => match zone.parse::<Tz>() {
                Ok(zone) => Clock::Zoned {
                    zone,
                    data_type: data_type.clone(),
                },
                Err(_) => Clock::Naive,
            },
            _ => Clock::Naive,
        }
    }

    /// The start of day `date`, as SQL of the time column's type.
    fn start_of(&self, date: NaiveDate) -> String {
        let Clock::Zoned { zone, data_type } = self else {
            return format!("CAST(DATE '{date}' AS TIMESTAMP)");
        };
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        // The first local time of the day that exists (a DST change may skip midnight, or a
        // whole day), its earliest instant where a change back repeats it.
        let first = (0..=2 * 24 * 4)
            .map(|quarter| midnight + chrono::Duration::minutes(15 * quarter))
            .find_map(|local| zone.from_local_datetime(&local).earliest())
            .map_or(midnight.and_utc(), |start| {
                start.with_timezone(&chrono::Utc)
            });
        let value = match data_type {
            DataType::Timestamp(TimeUnit::Second, _) => Some(first.timestamp()),
            DataType::Timestamp(TimeUnit::Millisecond, _) => Some(first.timestamp_millis()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Some(first.timestamp_micros()),
            _ => first.timestamp_nanos_opt(),
        };
        format!(
            "arrow_cast(CAST({} AS BIGINT), '{data_type}')",
            value.unwrap_or(i64::MAX)
        )
    }
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

    /// When an event counts for this aggregate (`None`: every event does).
    fn condition(&self) -> Option<String> {
        let mut when: Vec<String> = self.filter.iter().map(|f| format!("({})", f.sql)).collect();
        if let (Kind::Count, Some(column)) = (self.kind, &self.column) {
            when.push(format!("{} IS NOT NULL", ident(&column.sql)));
        }
        (!when.is_empty()).then(|| when.join(" AND "))
    }

    /// The value one event contributes (NULL when it does not count).
    fn measure(&self) -> String {
        let condition = self.condition();
        let column = self.column.as_ref().map(|c| ident(&c.sql));
        match self.kind {
            Kind::Count => match condition {
                Some(condition) => format!(
                    "CASE WHEN {condition} THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END"
                ),
                None => "CAST(1 AS BIGINT)".to_string(),
            },
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

    /// The longest window of a count or sum.
    fn longest_window(&self) -> Option<u32> {
        self.windows
            .iter()
            .copied()
            .max()
            .filter(|_| self.is_windowed())
    }

    /// Which days' partials of this aggregate a state keeps, among the days from `oldest` to
    /// `newest` days before the run date (`window_start` gives a window's first moment): those
    /// a later run takes away from a
    /// total when they leave the aggregate's longest window, i.e. the days still inside it. A
    /// later run never takes a `max` or `min` away (it takes the greatest or least of its total
    /// and the new days').
    fn kept(&self, oldest: u32, newest: u32, window_start: &dyn Fn(u32) -> String) -> Kept {
        match self.longest_window() {
            Some(window) if oldest < window => Kept::All,
            Some(window) if newest < window => Kept::Since(window_start(window)),
            _ => Kept::None,
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

/// Hidden column of the totals and partials of a feature without a `max` or `min`: events in
/// the longest window (a key with none has no row). With one, a key keeps its row forever and
/// nothing counts the events.
const ROWS: &str = "__rows";
/// The partials' day column.
const DAY: &str = "day";

/// Which of a range of days keep an aggregate's partials in a feature's state.
#[derive(Debug, Clone, PartialEq)]
enum Kept {
    All,
    None,
    /// The days from this time on (SQL of a timestamp).
    Since(String),
}

fn date_literal(date: NaiveDate) -> String {
    format!("DATE '{date}'")
}

/// The start of the first day of a window of `days` days ending on `$run_date`, as the query
/// a plan shows (a run's own queries name the day: [`Feature::window_start`]).
fn symbolic_window_start(days: u32) -> String {
    format!("CAST($run_date - {} AS TIMESTAMP)", days - 1)
}

impl Feature {
    /// The longest window in days (0 when there are only `max`/`min`).
    pub(crate) fn longest_window(&self) -> u32 {
        (self.aggregates.iter())
            .filter_map(Aggregate::longest_window)
            .max()
            .unwrap_or(0)
    }

    /// Whether some aggregate covers all history, so that a key keeps its row forever.
    fn has_all_time(&self) -> bool {
        self.aggregates.iter().any(|a| !a.is_windowed())
    }

    /// Whether totals and partials count each key's events in the longest window ([`ROWS`]),
    /// to drop a key once it has none.
    fn counts_rows(&self) -> bool {
        self.longest_window() > 0 && !self.has_all_time()
    }

    fn keys(&self) -> String {
        idents(&self.key)
    }

    /// The feature with the clock of its time column as its source is read.
    pub(crate) async fn with_clock(&self, ctx: &datafusion::prelude::SessionContext) -> Self {
        let mut feature = self.clone();
        if let Ok(table) = ctx.table_provider(self.source.as_str()).await
            && let Ok(field) = table.schema().field_with_name(&self.time)
        {
            feature.clock = Clock::of(field.data_type());
        }
        feature
    }

    /// The start of the first day of a window of `days` days ending on `date`.
    fn window_start(&self, date: NaiveDate, days: u32) -> String {
        let first = date - Days::new(u64::from(days.max(1)) - 1);
        self.clock.start_of(first)
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
            self.clock.start_of(to.succ_opt().unwrap_or(to))
        )];
        if let Some(from) = from {
            parts.push(format!("{time} >= {}", self.clock.start_of(from)));
        }
        if self.year_month_partitions {
            let month = |d: NaiveDate| {
                use chrono::Datelike;
                d.year() * 100 + d.month() as i32
            };
            // Partitions of zoned times may be cut by UTC months, or by the zone's: a day
            // more on each side covers both.
            let (from, to) = match self.clock {
                Clock::Naive => (from, to),
                Clock::Zoned { .. } => (
                    from.map(|d| d.pred_opt().unwrap_or(d)),
                    to.succ_opt().unwrap_or(to),
                ),
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
        let longest = self.longest_window();
        let since = |w: u32| match date {
            Some(date) => self.window_start(date, w),
            None => symbolic_window_start(w),
        };
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
        if self.counts_rows() {
            select.push(format!(
                "SUM(CASE WHEN {time} >= {} THEN 1 ELSE 0 END) AS {ROWS}",
                since(longest)
            ));
        }
        let events = match date {
            Some(date) => {
                let from =
                    (!self.has_all_time()).then(|| date - Days::new(u64::from(longest.max(1)) - 1));
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

    /// The feature as one query over its source, as of `$run_date`: what `plan --format sql`
    /// prints and what its state's definition is hashed from. A run maintains the same rows
    /// incrementally; `explain` and `test` run [`Feature::query_on`] their date.
    pub(crate) fn query_text(&self) -> String {
        format!(
            "-- feature {}, computed from all its events\n{}",
            self.name,
            self.projection(&format!("({}) AS totals", self.totals_from_events(None)))
        )
    }

    /// The feature as one query over its source, as of `date`: what `segflow test` runs.
    pub(crate) fn query_on(&self, date: NaiveDate) -> String {
        // Rows given to a test may leave partition columns out: there are no files to choose.
        let rows = Feature {
            year_month_partitions: false,
            ..self.clone()
        };
        rows.projection(&format!(
            "({}) AS totals",
            rows.totals_from_events(Some(date))
        ))
    }

    /// Partial aggregates per key and day for the days `from..=to`, whole: what a run's own
    /// update reads.
    fn partials(&self, from: NaiveDate, to: NaiveDate) -> String {
        self.partials_of(&self.events_between(Some(from), to), None)
    }

    /// The partials of the days `from..=to` as the state of a run dated `date` keeps them: only
    /// what a later run may take away from a total (see [`Aggregate::kept`]). A first run's
    /// days older than a feature's shorter windows then keep only the longer windows'
    /// aggregates, and only the keys and days with events that count for them: at 1M customers
    /// the example's days older than 90 days keep their purchases, 2% of their events.
    fn state_partials(&self, from: NaiveDate, to: NaiveDate, date: NaiveDate) -> String {
        let back = |day: NaiveDate| u32::try_from((date - day).num_days()).unwrap_or(0);
        let kept = self.kept(back(from), back(to), &|w| self.window_start(date, w));
        self.partials_of(&self.events_between(Some(from), to), Some(&kept))
    }

    /// [`Aggregate::kept`] of every aggregate.
    fn kept(&self, oldest: u32, newest: u32, window_start: &dyn Fn(u32) -> String) -> Vec<Kept> {
        (self.aggregates.iter())
            .map(|a| a.kept(oldest, newest, window_start))
            .collect()
    }

    /// The per-day partials a first run writes into the feature's state (one folder per day),
    /// as one query over the longest window as of `$run_date`; `None` without windows. What
    /// `plan --format sql` prints beside the feature's query.
    pub(crate) fn state_query_text(&self) -> Option<String> {
        let longest = self.longest_window();
        if longest == 0 {
            return None;
        }
        let kept = self.kept(longest - 1, 0, &symbolic_window_start);
        Some(format!(
            "-- feature {}: its per-day partials over the longest window ({longest} days)\n{}",
            self.name,
            self.partials_of(&self.events_as_of_run_date(Some(longest)), Some(&kept))
        ))
    }

    /// Events up to `$run_date` that count, of its last `days` days (`None`: all history).
    fn events_as_of_run_date(&self, days: Option<u32>) -> String {
        let time = ident(&self.time);
        let mut filter = vec![format!(
            "{time} < CAST($run_date + INTERVAL '1 day' AS TIMESTAMP)"
        )];
        if let Some(days) = days {
            filter.push(format!("{time} >= {}", symbolic_window_start(days)));
        }
        filter.push(self.event_filter());
        format!(
            "SELECT * FROM {} WHERE {}",
            ident(&self.source),
            filter.join(" AND ")
        )
    }

    /// Partial aggregates per key and day of `events`: whole, a row for every key and day with
    /// events; or as a state keeps them, each aggregate on the days `kept` says (NULL on the
    /// others) and of the events that count for a kept one. A key whose only events count for
    /// none still has a row in the totals (with zeros), so partials that add keys are whole.
    fn partials_of(&self, events: &str, kept: Option<&[Kept]>) -> String {
        let whole = vec![Kept::All; self.aggregates.len()];
        let time = ident(&self.time);
        let mut select = vec![self.keys(), format!("CAST({time} AS DATE) AS {DAY}")];
        if self.counts_rows() {
            select.push(format!("COUNT(*) AS {ROWS}"));
        }
        // When an event counts for each kept aggregate (`None`: every event does).
        let mut counted: Vec<Option<String>> = Vec::new();
        for (aggregate, kept) in self.aggregates.iter().zip(kept.unwrap_or(&whole)) {
            let measure = aggregate.measure();
            let (value, since) = match kept {
                Kept::All => (measure, None),
                Kept::None => (format!("CASE WHEN false THEN {measure} END"), None),
                Kept::Since(since) => (
                    format!("CASE WHEN {time} >= {since} THEN {measure} END"),
                    Some(format!("{time} >= {since}")),
                ),
            };
            select.push(format!(
                "{}({value}) AS {}",
                aggregate.combine(),
                ident(&aggregate.name)
            ));
            if *kept != Kept::None {
                let condition = since.into_iter().chain(aggregate.condition());
                counted.push(condition.reduce(|a, b| format!("{a} AND {b}")));
            }
        }
        // Whole partials, and those that count each key's events, keep every event; so do
        // partials with a kept aggregate that counts every event.
        let every_event = kept.is_none() || self.counts_rows();
        let only = match counted.into_iter().collect::<Option<Vec<String>>>() {
            Some(counted) if !every_event && counted.is_empty() => " WHERE false".to_string(),
            Some(counted) if !every_event => format!(" WHERE {}", counted.join(" OR ")),
            _ => String::new(),
        };
        format!(
            "SELECT {} FROM ({events}) AS events{only} GROUP BY {}, CAST({time} AS DATE)",
            select.join(", "),
            self.keys(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_starts_at_its_first_instant_in_the_time_columns_zone() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let zoned = |unit, zone: &str| Clock::of(&DataType::Timestamp(unit, Some(zone.into())));
        let santiago = zoned(TimeUnit::Microsecond, "America/Santiago");
        // Chile skips 2026-09-06 00:00-00:59: the day starts at 01:00 (-03), 04:00 UTC.
        assert_eq!(
            santiago.start_of(day("2026-09-06")),
            format!(
                "arrow_cast(CAST(1788667200000000 AS BIGINT), '{}')",
                DataType::Timestamp(TimeUnit::Microsecond, Some("America/Santiago".into()))
            )
        );
        // The next day starts at its midnight, 03:00 UTC.
        assert!(
            (santiago.start_of(day("2026-09-07"))).contains("CAST(1788750000000000 AS BIGINT)")
        );
        let seconds = zoned(TimeUnit::Second, "+02:00");
        assert!(
            seconds
                .start_of(day("1970-01-02"))
                .contains("CAST(79200 AS BIGINT)")
        );
        let naive = Clock::of(&DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(
            naive.start_of(day("2026-09-06")),
            "CAST(DATE '2026-09-06' AS TIMESTAMP)"
        );
    }
}
