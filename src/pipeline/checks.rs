//! Compiled checks: one target, one assertion, a severity and a threshold each.

use super::sql::{SqlQuery, literal};
use super::{Compiler, Params};
use crate::location::Location;
use crate::spec::{CheckSpec, ParamValue, Severity, SourceSpec};

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub target: Target,
    pub kind: CheckKind,
    pub severity: Severity,
    /// Row checks fail when more than this share (0–100) of rows fail.
    pub max_failed_percent: f64,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Source(String),
    Model(String),
    /// A segment's audience; `None` for every segment.
    Audience(Option<String>),
    /// An offer's assignments; `None` for every offer.
    Offer(Option<String>),
}

impl Target {
    /// The table a row check reads.
    pub fn table(&self) -> Option<&str> {
        match self {
            Target::Source(name) | Target::Model(name) => Some(name),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Source(name) => format!("source {name}"),
            Target::Model(name) => format!("model {name}"),
            Target::Audience(Some(name)) => format!("audience {name}"),
            Target::Audience(None) => "every audience".into(),
            Target::Offer(Some(name)) => format!("offer {name}"),
            Target::Offer(None) => "every offer".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum CheckKind {
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
    pub fn label(&self) -> &'static str {
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
pub struct Breaker {
    pub max_removed_percent: Option<f64>,
    pub max_added_percent: Option<f64>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
}

impl Compiler<'_> {
    pub(super) fn checks(
        &mut self,
        specs: &[CheckSpec],
        params: &Params,
        sources: &indexmap::IndexMap<String, SourceSpec>,
        tables: &[String],
        segments: &[&str],
        offers: &[&str],
    ) -> Vec<Check> {
        let mut checks = Vec::new();
        // A declared primary key is always checked.
        for (name, source) in sources {
            if !source.primary_key.is_empty()
                && !specs
                    .iter()
                    .any(|c| c.source.as_deref() == Some(name) && c.primary_key)
            {
                checks.push(Check {
                    name: format!("{name}_primary_key"),
                    target: Target::Source(name.clone()),
                    kind: CheckKind::PrimaryKey(source.primary_key.clone()),
                    severity: Severity::Error,
                    max_failed_percent: 0.0,
                    at: self.at(&["sources", name, "primary_key"]),
                });
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            let index = i.to_string();
            let path = ["checks", index.as_str()];
            let at = self.at(&path);
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
                self.problem(
                    &path,
                    format!("checks[{i}]: name exactly one of source, model, audience or offer"),
                );
                continue;
            };
            let known = match target {
                Target::Source(name) => sources.contains_key(name),
                Target::Model(name) => tables.contains(name),
                Target::Audience(Some(name)) => segments.contains(&name.as_str()),
                Target::Offer(Some(name)) => offers.contains(&name.as_str()),
                Target::Audience(None) => !segments.is_empty(),
                Target::Offer(None) => !offers.is_empty(),
            };
            if !known {
                self.problem(
                    &path,
                    format!("checks[{i}]: the pipeline has no {}", target.describe()),
                );
                continue;
            }
            let breaker = Breaker {
                max_removed_percent: spec.max_removed_percent,
                max_added_percent: spec.max_added_percent,
                min_size: spec.min_size,
                max_size: spec.max_size,
            };
            let mut kinds = Vec::new();
            if spec.primary_key {
                match target {
                    Target::Source(name) if !sources[name].primary_key.is_empty() => {
                        kinds.push(CheckKind::PrimaryKey(sources[name].primary_key.clone()))
                    }
                    _ => self.problem(
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
                let values = a
                    .values
                    .iter()
                    .map(|v| match v {
                        ParamValue::Text(t) => literal(t),
                        ParamValue::Int(n) => n.to_string(),
                        ParamValue::Float(f) => f.to_string(),
                        ParamValue::Bool(b) => b.to_string(),
                    })
                    .collect();
                kinds.push(CheckKind::AcceptedValues {
                    column: a.column.clone(),
                    values,
                });
            }
            if let Some(r) = &spec.relationships {
                if !tables.contains(&r.to) {
                    self.problem(
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
            if let Some(r) = &spec.row_count {
                kinds.push(CheckKind::RowCount {
                    min: r.min,
                    max: r.max,
                });
            }
            if let Some(f) = &spec.freshness {
                kinds.push(CheckKind::Freshness {
                    column: f.column.clone(),
                    max_age_days: f.max_age_days,
                });
            }
            if let Some(file) = &spec.sql {
                let sql_at = self.at(&["checks", &index, "sql"]);
                if let Some(query) =
                    self.read_sql(sql_at, file, params, &format!("checks[{i}].sql"))
                {
                    kinds.push(CheckKind::Sql(query));
                }
            }
            if breaker != Breaker::default() {
                kinds.push(CheckKind::Breaker(breaker));
            }
            let row_check = matches!(target, Target::Source(_) | Target::Model(_));
            let kind = match kinds.as_slice() {
                [kind] => kind.clone(),
                [] => {
                    self.problem(&path, format!("checks[{i}]: say what to check (not_null, unique, accepted_values, relationships, row_count, freshness, sql, primary_key, contract, or for audiences and offers max_removed_percent, max_added_percent, min_size, max_size)"));
                    continue;
                }
                _ => {
                    self.problem(
                        &path,
                        format!("checks[{i}]: one check per entry; split this one into several"),
                    );
                    continue;
                }
            };
            match (&kind, row_check) {
                (CheckKind::Breaker(_), true) => {
                    self.problem(
                        &path,
                        format!("checks[{i}]: circuit breakers apply to an audience or an offer"),
                    );
                    continue;
                }
                (CheckKind::Contract, _) if !matches!(target, Target::Source(_)) => {
                    self.problem(
                        &path,
                        format!("checks[{i}].contract: contracts belong to sources"),
                    );
                    continue;
                }
                (CheckKind::Breaker(_), false) => {}
                (_, false) => {
                    self.problem(&path, format!("checks[{i}]: audiences and offers take circuit breakers (max_removed_percent, max_added_percent, min_size, max_size); check their rows through the model they come from"));
                    continue;
                }
                _ => {}
            }
            let percent = spec.max_failed_percent.unwrap_or(0.0);
            if !(0.0..=100.0).contains(&percent) {
                self.problem(
                    &path,
                    format!("checks[{i}].max_failed_percent: use a share between 0 and 100"),
                );
            }
            let name = spec.name.clone().unwrap_or_else(|| {
                let target_name = match &target {
                    Target::Source(n) | Target::Model(n) => n.clone(),
                    Target::Audience(n) => n.clone().unwrap_or_else(|| "audiences".into()),
                    Target::Offer(n) => n.clone().unwrap_or_else(|| "offers".into()),
                };
                format!("{target_name}_{}", kind.label())
            });
            if !super::is_valid_name(&name) {
                self.problem(&path, format!("checks[{i}].name: \"{name}\" must use lower-case letters, digits and _ (it names a folder of failing rows)"));
            }
            if checks.iter().any(|c: &Check| c.name == name) {
                self.problem(
                    &path,
                    format!(
                        "checks[{i}]: another check is named \"{name}\"; give this one a `name:`"
                    ),
                );
            }
            checks.push(Check {
                name,
                target: target.clone(),
                kind,
                severity: spec.severity,
                max_failed_percent: percent,
                at,
            });
        }
        checks
    }
}
