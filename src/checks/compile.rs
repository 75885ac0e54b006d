//! Compiled checks: one target, one assertion, a severity and a threshold each.

use indexmap::IndexMap;

use crate::compile::{Compiler, is_valid_name};
use crate::location::Location;
use crate::spec::{CheckSpec, ParamValue, Severity, SourceSpec};
use crate::sql::{Params, SqlQuery, literal};

#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) target: Target,
    pub(crate) kind: CheckKind,
    pub(crate) severity: Severity,
    /// Row checks fail when more than this share (0–100) of rows fail.
    pub(crate) max_failed_percent: f64,
    pub(crate) at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Source(String),
    Model(String),
    /// A segment's audience; `None` for every segment.
    Audience(Option<String>),
    /// An offer's assignments; `None` for every offer.
    Offer(Option<String>),
}

impl Target {
    /// The table a row check reads.
    pub(crate) fn table(&self) -> Option<&str> {
        match self {
            Target::Source(name) | Target::Model(name) => Some(name),
            _ => None,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Source(name) => format!("source {name}"),
            Target::Model(name) => format!("model {name}"),
            Target::Audience(Some(name)) => format!("audience {name}"),
            Target::Audience(None) => "every audience".into(),
            Target::Offer(Some(name)) => format!("offer {name}"),
            Target::Offer(None) => "every offer".into(),
        }
    }

    /// The name checks on this target are named after by default.
    fn short_name(&self) -> String {
        match self {
            Target::Source(n) | Target::Model(n) => n.clone(),
            Target::Audience(n) => n.clone().unwrap_or_else(|| "audiences".into()),
            Target::Offer(n) => n.clone().unwrap_or_else(|| "offers".into()),
        }
    }

    fn is_table(&self) -> bool {
        self.table().is_some()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum CheckKind {
    /// Unique and not null.
    PrimaryKey(Vec<String>),
    /// The source's column contract; enforced when the source is registered.
    Contract,
    NotNull(Vec<String>),
    Unique(Vec<String>),
    /// Values of the column, as SQL literals.
    AcceptedValues {
        column: String,
        values: Vec<String>,
    },
    Relationships {
        column: String,
        to: String,
        field: String,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    Freshness {
        column: String,
        max_age_days: u32,
    },
    Sql(SqlQuery),
    Breaker(Breaker),
}

impl CheckKind {
    pub(crate) fn label(&self) -> &'static str {
        match self {
            CheckKind::PrimaryKey(_) => "primary_key",
            CheckKind::Contract => "contract",
            CheckKind::NotNull(_) => "not_null",
            CheckKind::Unique(_) => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Relationships { .. } => "relationships",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Sql(_) => "sql",
            CheckKind::Breaker(_) => "circuit_breaker",
        }
    }
}

/// Limits on how much an audience or an offer may change against the previous run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Breaker {
    pub(crate) max_removed_percent: Option<f64>,
    pub(crate) max_added_percent: Option<f64>,
    pub(crate) min_size: Option<u64>,
    pub(crate) max_size: Option<u64>,
}

/// What checks may name.
pub(crate) struct Checkable<'a> {
    pub(crate) sources: &'a IndexMap<String, SourceSpec>,
    /// Sources and models.
    pub(crate) tables: &'a [String],
    pub(crate) segments: &'a [&'a str],
    pub(crate) offers: &'a [&'a str],
}

/// Compiles `checks:`, with a primary-key check for every source that declares a key.
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &[CheckSpec],
    params: &Params,
    known: &Checkable,
) -> Vec<Check> {
    let mut checks = implied_primary_keys(c, specs, known.sources);
    for (i, spec) in specs.iter().enumerate() {
        let Some(check) = compile_check(c, i, spec, params, known) else {
            continue;
        };
        let names = result_names(&check, known);
        if let Some(taken) = checks
            .iter()
            .flat_map(|other| result_names(other, known))
            .find(|other| names.contains(other))
        {
            let problem = if taken == check.name {
                format!("checks[{i}]: another check is named \"{taken}\"; give this one a `name:`")
            } else {
                format!(
                    "checks[{i}]: two checks would report results named \"{taken}\" (a check on every audience or offer reports one per audience or offer, named after it); give one of them another `name:`"
                )
            };
            c.problem(&["checks", &i.to_string()], problem);
        }
        checks.push(check);
    }
    checks
}

/// The names of the results a check reports: a breaker on every audience (or offer) reports
/// one per audience (or offer), named after it.
fn result_names(check: &Check, known: &Checkable) -> Vec<String> {
    let each = match (&check.kind, &check.target) {
        (CheckKind::Breaker(_), Target::Audience(None)) => known.segments,
        (CheckKind::Breaker(_), Target::Offer(None)) => known.offers,
        _ => return vec![check.name.clone()],
    };
    each.iter()
        .map(|target| format!("{}_{target}", check.name))
        .collect()
}

/// A declared primary key is always checked, unless a check names it explicitly.
fn implied_primary_keys(
    c: &Compiler,
    specs: &[CheckSpec],
    sources: &IndexMap<String, SourceSpec>,
) -> Vec<Check> {
    sources
        .iter()
        .filter(|(name, source)| {
            !source.primary_key.is_empty()
                && !specs
                    .iter()
                    .any(|c| c.source.as_deref() == Some(name.as_str()) && c.primary_key)
        })
        .map(|(name, source)| Check {
            name: format!("{name}_primary_key"),
            target: Target::Source(name.clone()),
            kind: CheckKind::PrimaryKey(source.primary_key.clone()),
            severity: Severity::Error,
            max_failed_percent: 0.0,
            at: c.at(&["sources", name, "primary_key"]),
        })
        .collect()
}

fn compile_check(
    c: &mut Compiler,
    i: usize,
    spec: &CheckSpec,
    params: &Params,
    known: &Checkable,
) -> Option<Check> {
    let index = i.to_string();
    let path = ["checks", index.as_str()];
    let target = target(c, i, spec, known)?;
    let kinds = kinds(c, i, spec, &target, params, known);
    let kind = match kinds.as_slice() {
        [kind] => kind.clone(),
        // An unreadable `sql:` file has been reported already.
        [] if spec.sql.is_some() => return None,
        [] => {
            c.problem(&path, format!("checks[{i}]: say what to check (not_null, unique, accepted_values, relationships, row_count, freshness, sql, primary_key, contract, or for audiences and offers max_removed_percent, max_added_percent, min_size, max_size)"));
            return None;
        }
        _ => {
            c.problem(
                &path,
                format!("checks[{i}]: one check per entry; split this one into several"),
            );
            return None;
        }
    };
    if let Some(problem) = mismatch(&kind, &target) {
        c.problem(&path, format!("checks[{i}]{problem}"));
        return None;
    }
    let limits = match &kind {
        CheckKind::Breaker(b) => breaker_problem(b),
        CheckKind::RowCount {
            min: Some(min),
            max: Some(max),
        } if min > max => Some(format!(
            "row_count: min {min} is above max {max}: no count passes"
        )),
        CheckKind::RowCount {
            min: None,
            max: None,
        } => Some("row_count: give a min, a max or both (without them every count passes)".into()),
        _ => None,
    };
    if let Some(problem) = limits {
        c.problem(&path, format!("checks[{i}].{problem}"));
    }
    let percent = spec.max_failed_percent.unwrap_or(0.0);
    if !(0.0..=100.0).contains(&percent) {
        c.problem(
            &path,
            format!("checks[{i}].max_failed_percent: use a share between 0 and 100"),
        );
    }
    // A share of failing rows means something only where rows are counted against a total.
    let counts_rows = matches!(
        kind,
        CheckKind::PrimaryKey(_)
            | CheckKind::NotNull(_)
            | CheckKind::Unique(_)
            | CheckKind::AcceptedValues { .. }
            | CheckKind::Relationships { .. }
    );
    if spec.max_failed_percent.is_some() && !counts_rows {
        c.problem(
            &path,
            format!(
                "checks[{i}].max_failed_percent: a {} check has no share of failing rows to tolerate (only not_null, unique, accepted_values, relationships and primary_key do); remove it",
                kind.label()
            ),
        );
    }
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| format!("{}_{}", target.short_name(), kind.label()));
    if !is_valid_name(&name) {
        c.problem(&path, format!("checks[{i}].name: \"{name}\" must use lower-case letters, digits and _ (it names a folder of failing rows)"));
    }
    Some(Check {
        name,
        target,
        kind,
        severity: spec.severity,
        max_failed_percent: percent,
        at: c.at(&path),
    })
}

/// The one thing a check looks at.
fn target(c: &mut Compiler, i: usize, spec: &CheckSpec, known: &Checkable) -> Option<Target> {
    let path = ["checks", &i.to_string()];
    let targets: Vec<Target> = [
        spec.source.clone().map(Target::Source),
        spec.model.clone().map(Target::Model),
        spec.audience
            .clone()
            .map(|a| Target::Audience((a != "*").then_some(a))),
        spec.offer
            .clone()
            .map(|o| Target::Offer((o != "*").then_some(o))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let [target] = targets.as_slice() else {
        c.problem(
            &path,
            format!("checks[{i}]: name exactly one of source, model, audience or offer"),
        );
        return None;
    };
    let exists = match target {
        Target::Source(name) => known.sources.contains_key(name),
        Target::Model(name) => known.tables.contains(name),
        Target::Audience(Some(name)) => known.segments.contains(&name.as_str()),
        Target::Offer(Some(name)) => known.offers.contains(&name.as_str()),
        Target::Audience(None) => !known.segments.is_empty(),
        Target::Offer(None) => !known.offers.is_empty(),
    };
    if !exists {
        c.problem(
            &path,
            format!("checks[{i}]: the pipeline has no {}", target.describe()),
        );
        return None;
    }
    Some(target.clone())
}

/// Every assertion the entry makes (one is expected).
fn kinds(
    c: &mut Compiler,
    i: usize,
    spec: &CheckSpec,
    target: &Target,
    params: &Params,
    known: &Checkable,
) -> Vec<CheckKind> {
    let index = i.to_string();
    let path = ["checks", index.as_str()];
    let mut kinds = Vec::new();
    if spec.primary_key {
        match target {
            Target::Source(name) if !known.sources[name].primary_key.is_empty() => kinds.push(
                CheckKind::PrimaryKey(known.sources[name].primary_key.clone()),
            ),
            _ => c.problem(
                &path,
                format!("checks[{i}].primary_key: the source declares no primary_key"),
            ),
        }
    }
    if spec.contract {
        kinds.push(CheckKind::Contract);
    }
    if !spec.not_null.is_empty() {
        kinds.push(CheckKind::NotNull(spec.not_null.clone()));
    }
    if !spec.unique.is_empty() {
        kinds.push(CheckKind::Unique(spec.unique.clone()));
    }
    if let Some(a) = &spec.accepted_values {
        if a.values.is_empty() {
            c.problem(
                &path,
                format!("checks[{i}].accepted_values.values: list at least one accepted value"),
            );
        }
        if a.values
            .iter()
            .any(|v| matches!(v, ParamValue::Float(f) if !f.is_finite()))
        {
            c.problem(
                &path,
                format!("checks[{i}].accepted_values.values: .nan and .inf are not values a column is compared with; check for them with a `sql:` check (`isnan(column)`)"),
            );
        }
        let values = a.values.iter().map(value_literal).collect();
        kinds.push(CheckKind::AcceptedValues {
            column: a.column.clone(),
            values,
        });
    }
    if let Some(r) = &spec.relationships {
        if !known.tables.contains(&r.to) {
            c.problem(
                &path,
                format!(
                    "checks[{i}].relationships.to: no source or model named \"{}\"",
                    r.to
                ),
            );
        }
        kinds.push(CheckKind::Relationships {
            column: r.column.clone(),
            to: r.to.clone(),
            field: r.field.clone(),
        });
    }
    kinds.extend(spec.row_count.as_ref().map(|r| CheckKind::RowCount {
        min: r.min,
        max: r.max,
    }));
    kinds.extend(spec.freshness.as_ref().map(|f| CheckKind::Freshness {
        column: f.column.clone(),
        max_age_days: f.max_age_days,
    }));
    if let Some(file) = &spec.sql {
        let at = c.at(&["checks", &index, "sql"]);
        if let Some(query) = c.read_sql(at, file, params, &format!("checks[{i}].sql")) {
            kinds.push(CheckKind::Sql(query));
        }
    }
    kinds.extend(breaker(spec).map(CheckKind::Breaker));
    kinds
}

/// Why a breaker's limits cannot be met, if they cannot.
fn breaker_problem(b: &Breaker) -> Option<String> {
    let share = |limit: Option<f64>, max: f64| limit.is_some_and(|p| !(0.0..=max).contains(&p));
    if share(b.max_removed_percent, 100.0) {
        return Some("max_removed_percent: use a share between 0 and 100".into());
    }
    if share(b.max_added_percent, f64::MAX) {
        return Some("max_added_percent: use a share of 0 or more (100 allows doubling)".into());
    }
    match (b.min_size, b.max_size) {
        (Some(min), Some(max)) if min > max => Some(format!(
            "min_size {min} is above max_size {max}: no size passes"
        )),
        _ => None,
    }
}

/// The circuit breaker the entry declares, if any.
fn breaker(spec: &CheckSpec) -> Option<Breaker> {
    let breaker = Breaker {
        max_removed_percent: spec.max_removed_percent,
        max_added_percent: spec.max_added_percent,
        min_size: spec.min_size,
        max_size: spec.max_size,
    };
    (breaker != Breaker::default()).then_some(breaker)
}

fn value_literal(value: &ParamValue) -> String {
    match value {
        ParamValue::Text(t) => literal(t),
        ParamValue::Int(n) => n.to_string(),
        ParamValue::Float(f) => f.to_string(),
        ParamValue::Bool(b) => b.to_string(),
    }
}

/// Why an assertion does not apply to its target (appended to `checks[i]`), if it does not.
fn mismatch(kind: &CheckKind, target: &Target) -> Option<&'static str> {
    match (kind, target.is_table()) {
        (CheckKind::Breaker(_), true) => {
            Some(": circuit breakers apply to an audience or an offer")
        }
        (CheckKind::Contract, _) if !matches!(target, Target::Source(_)) => {
            Some(".contract: contracts belong to sources")
        }
        (CheckKind::Breaker(_), false) | (_, true) => None,
        (_, false) => Some(
            ": audiences and offers take circuit breakers (max_removed_percent, max_added_percent, min_size, max_size); check their rows through the model they come from",
        ),
    }
}
