//! `features:` from the YAML into [`Feature`]s, every problem at its line.

use indexmap::IndexMap;

use super::{Aggregate, Feature, Kind, Piece};
use crate::compile::Compiler;
use crate::sources::Source;
use crate::spec::{AggregateSpec, ColumnType, FeatureSpec};
use crate::sql::{Params, parse_condition, volatile_function};

/// Window lengths beyond ten years are a typo.
const MAX_WINDOW: u32 = 3660;

/// Compiles `features:`; `models` are the declared model names (a feature may not share one).
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, FeatureSpec>,
    sources: &IndexMap<String, Source>,
    models: &[&str],
    params: &Params,
) -> Vec<Feature> {
    let mut features = Vec::new();
    for (name, spec) in specs {
        let field = format!("features.{name}");
        c.check_name(&["features", name], name);
        if sources.contains_key(name) || models.contains(&name.as_str()) {
            c.problem(
                &["features", name],
                format!("{field}: a source or model already has this name; rename one of them"),
            );
        }
        let Some(source) = sources.get(&spec.from) else {
            let names: Vec<&str> = sources.keys().map(String::as_str).collect();
            c.problem(
                &["features", name, "from"],
                format!(
                    "{field}.from: no source named \"{}\"; features are computed from a source: {}",
                    spec.from,
                    names.join(", ")
                ),
            );
            continue;
        };
        if let Some(feature) = compile_one(c, name, spec, source, params) {
            features.push(feature);
        }
    }
    features
}

fn compile_one(
    c: &mut Compiler,
    name: &str,
    spec: &FeatureSpec,
    source: &Source,
    params: &Params,
) -> Option<Feature> {
    let field = format!("features.{name}");
    let at = |c: &Compiler, rest: &[&str]| {
        let mut path = vec!["features", name];
        path.extend_from_slice(rest);
        c.at(&path)
    };
    let before = c.problem_count();
    let key = spec.key.to_vec();
    if key.is_empty() {
        c.problem_at(
            at(c, &["key"]),
            format!("{field}.key: name the column (or columns) features are kept per"),
        );
    }
    match column_type(source, &spec.time) {
        Some(ColumnType::Timestamp | ColumnType::Date) => {}
        Some(other) => c.problem_at(
            at(c, &["time"]),
            format!(
                "{field}.time: {} is declared {other:?} in source {}; the time must be a timestamp or date column",
                spec.time, source.name
            ),
        ),
        None => c.problem_at(
            at(c, &["time"]),
            format!(
                "{field}.time: declare {} under sources.{}.columns (timestamp or date) so that segflow knows how to cut it into days",
                spec.time, source.name
            ),
        ),
    }
    for window in &spec.windows {
        check_window(c, at(c, &["windows"]), &format!("{field}.windows"), *window);
    }
    if spec.late_days > MAX_WINDOW {
        c.problem_at(
            at(c, &["late_days"]),
            format!("{field}.late_days: at most {MAX_WINDOW} days"),
        );
    }
    let filter = spec.filter.as_ref().and_then(|sql| {
        let at = at(c, &["where"]);
        event_condition(c, at, &format!("{field}.where"), sql, params)
    });
    if spec.aggregates.is_empty() {
        c.problem_at(
            at(c, &["aggregates"]),
            format!("{field}.aggregates: declare at least one (count, sum, max or min)"),
        );
    }
    let mut aggregates: Vec<Aggregate> = Vec::new();
    for (agg_name, agg) in &spec.aggregates {
        let at_agg = at(c, &["aggregates", agg_name]);
        c.check_name(&["features", name, "aggregates", agg_name], agg_name);
        let what = format!("{field}.aggregates.{agg_name}");
        if let Some(a) = aggregate(c, at_agg, &what, agg_name, agg, spec, source, params) {
            aggregates.push(a);
        }
    }
    check_column_names(c, &field, &at, &key, &aggregates);
    if c.problem_count() > before {
        return None;
    }
    let partitions: Vec<&str> = source.partitions.iter().map(|(n, _)| n.as_str()).collect();
    let int_partition = |n: &str| {
        source
            .partitions
            .iter()
            .any(|(p, t)| p == n && *t == ColumnType::Int)
    };
    Some(Feature {
        name: name.to_string(),
        source: source.name.clone(),
        source_declared: format!(
            "{} {:?} {} {} {} {:?} {:?}",
            source.uri_text,
            source.format,
            source.extension,
            source.delimiter,
            source.header,
            source.partitions,
            source.contract
        ),
        key,
        time: spec.time.clone(),
        late_days: spec.late_days,
        filter,
        aggregates,
        year_month_partitions: partitions.contains(&"year")
            && partitions.contains(&"month")
            && int_partition("year")
            && int_partition("month"),
        at: at(c, &[]),
        key_at: at(c, &["key"]),
        time_at: at(c, &["time"]),
        clock: super::Clock::Naive,
    })
}

fn column_type(source: &Source, column: &str) -> Option<ColumnType> {
    source.contract.get(column).copied().or_else(|| {
        source
            .partitions
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, t)| *t)
    })
}

fn check_window(c: &mut Compiler, at: crate::location::Location, what: &str, window: u32) {
    if window == 0 || window > MAX_WINDOW {
        c.problem_at(
            at,
            format!("{what}: {window} is not a window; give days from 1 to {MAX_WINDOW}"),
        );
    }
}

/// A condition on one event: SQL over the source's columns, the same whatever the run date.
fn event_condition(
    c: &mut Compiler,
    at: crate::location::Location,
    what: &str,
    sql: &str,
    params: &Params,
) -> Option<Piece> {
    if sql.contains("$run_date") {
        c.problem_at(
            at,
            format!(
                "{what}: a feature's condition must hold for an event whatever the run date, so that a day's partial totals can be kept; windows already follow the run date — remove $run_date"
            ),
        );
        return None;
    }
    match parse_condition(&at, sql, params) {
        Ok(expr) if let Some(function) = volatile_function(&expr) => {
            c.problem_at(
                at,
                format!(
                    "{what}: a feature's condition must hold for an event whatever the day it is evaluated, so that a day's partial totals can be kept; {function}() changes from run to run — compare the event's own columns, and let windows follow the run date"
                ),
            );
            None
        }
        Ok(_) => Some(Piece {
            sql: sql.to_string(),
            at,
        }),
        Err(message) => {
            let message = message.replace(
                "a condition reads the profile's columns only; use a SQL segment to read other tables",
                "a feature's condition reads the event's columns only",
            );
            c.problem_at(at, format!("{what}: {message}"));
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn aggregate(
    c: &mut Compiler,
    at: crate::location::Location,
    what: &str,
    name: &str,
    spec: &AggregateSpec,
    feature: &FeatureSpec,
    source: &Source,
    params: &Params,
) -> Option<Aggregate> {
    let given: Vec<(&str, &String)> = [
        ("count", &spec.count),
        ("sum", &spec.sum),
        ("max", &spec.max),
        ("min", &spec.min),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let [(function, column)] = given.as_slice() else {
        c.problem_at(
            at,
            format!(
                "{what}: give exactly one of count, sum, max or min (e.g. {{ count: \"*\", where: \"event_type = 'purchase'\" }})"
            ),
        );
        return None;
    };
    let declared = column_type(source, column);
    let kind = kind(
        c,
        &at,
        what,
        function,
        column,
        declared,
        spec.decimals,
        &source.name,
    )?;
    if spec.decimals.is_some() && !matches!(kind, Kind::Sum { .. }) {
        c.problem_at(
            at.clone(),
            format!("{what}.decimals: only a sum has decimals"),
        );
    }
    let windows = match (&kind, &spec.windows) {
        (Kind::Max | Kind::Min, Some(_)) => {
            c.problem_at(
                at,
                format!(
                    "{what}: {function} is over all history and has no windows; compare it with $run_date in SQL to limit it"
                ),
            );
            return None;
        }
        (Kind::Max | Kind::Min, None) => Vec::new(),
        (_, Some(windows)) => windows.clone(),
        (_, None) => feature.windows.clone(),
    };
    if matches!(kind, Kind::Count | Kind::Sum { .. }) && windows.is_empty() {
        c.problem_at(
            at,
            format!("{what}: give the windows it counts over (windows: [30, 90]), here or for the feature"),
        );
        return None;
    }
    for window in windows.iter().filter(|_| spec.windows.is_some()) {
        check_window(c, at.clone(), &format!("{what}.windows"), *window);
    }
    let filter = spec
        .filter
        .as_ref()
        .and_then(|sql| event_condition(c, at.clone(), &format!("{what}.where"), sql, params));
    if spec.filter.is_some() && filter.is_none() {
        return None;
    }
    let column = (column.as_str() != "*").then(|| Piece {
        sql: column.to_string(),
        at: at.clone(),
    });
    Some(Aggregate {
        name: name.to_string(),
        kind,
        column,
        filter,
        windows,
    })
}

/// What an aggregate computes, given the declared type of its column; a problem when it cannot
/// be kept up to date day by day.
#[allow(clippy::too_many_arguments)]
fn kind(
    c: &mut Compiler,
    at: &crate::location::Location,
    what: &str,
    function: &str,
    column: &str,
    declared: Option<ColumnType>,
    decimals: Option<u32>,
    source: &str,
) -> Option<Kind> {
    let at = at.clone();
    let kind = match (function, declared) {
        ("count", _) => Kind::Count,
        ("sum", Some(ColumnType::Int)) => match decimals {
            Some(places) if places > 18 => {
                c.problem_at(at, format!("{what}.decimals: at most 18"));
                return None;
            }
            _ => Kind::Sum { decimals },
        },
        ("sum", Some(ColumnType::Double)) => match decimals {
            Some(places) if places <= 18 => Kind::Sum {
                decimals: Some(places),
            },
            Some(_) => {
                c.problem_at(at, format!("{what}.decimals: at most 18"));
                return None;
            }
            None => {
                c.problem_at(
                    at,
                    format!(
                        "{what}: {column} is a double; sums are kept exactly, as decimals, so that adding a day and taking one away gives the same total as summing again — say how many decimal places to keep, e.g. decimals: 2"
                    ),
                );
                return None;
            }
        },
        ("max" | "min", Some(ColumnType::Timestamp | ColumnType::Date)) => {
            if function == "max" {
                Kind::Max
            } else {
                Kind::Min
            }
        }
        ("max" | "min", Some(_)) => {
            c.problem_at(
                at,
                format!(
                    "{what}: {function} of {column} cannot be kept up to date day by day — when the day holding it leaves the window, the next {function} is unknown without rescanning; {function} works on timestamp and date columns (the latest or earliest event, over all history), otherwise compute it in a SQL model"
                ),
            );
            return None;
        }
        (_, None) if column != "*" => {
            c.problem_at(
                at,
                format!(
                    "{what}: declare {column}'s type under sources.{}.columns so that segflow can check how it adds up",
                    source
                ),
            );
            return None;
        }
        (_, _) => {
            c.problem_at(
                at,
                format!("{what}: {function} needs a column; \"*\" counts events (count: \"*\")"),
            );
            return None;
        }
    };
    Some(kind)
}

/// Output columns must differ from each other and from the key.
fn check_column_names(
    c: &mut Compiler,
    field: &str,
    at: &impl Fn(&Compiler, &[&str]) -> crate::location::Location,
    key: &[String],
    aggregates: &[Aggregate],
) {
    // The per-day state holds the key columns, a column per aggregate (by its name) and its
    // own `day` and `__rows`: none may share a name.
    for name in key {
        if [super::DAY, super::ROWS].contains(&name.as_str()) {
            c.problem_at(
                at(c, &["key"]),
                format!("{field}.key: {name} is a name the feature's per-day state uses for itself; read the key under another name (a model can rename it)"),
            );
        }
    }
    for aggregate in aggregates {
        let name = &aggregate.name;
        if [super::DAY, super::ROWS].contains(&name.as_str()) || key.contains(name) {
            c.problem_at(
                at(c, &["aggregates", name]),
                format!("{field}.aggregates.{name}: the feature's per-day state has a column {name} already (its day, or a key column); rename the aggregate"),
            );
        }
    }
    let mut seen: Vec<String> = key.to_vec();
    for aggregate in aggregates {
        for (column, _) in aggregate.columns() {
            if seen.contains(&column) {
                c.problem_at(
                    at(c, &["aggregates", &aggregate.name]),
                    format!(
                        "{field}.aggregates.{}: makes column {column}, which another aggregate or the key already makes; rename one",
                        aggregate.name
                    ),
                );
            }
            seen.push(column);
        }
    }
}
