//! Compiled segment rules, holdouts and splits.

use std::path::Path;

use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use super::sql::{self, SqlQuery};
use super::{Compiler, Diagnostic, Params, is_valid_name};
use crate::location::Location;
use crate::spec::{ConditionSpec, HoldoutSpec, SegmentsSpec, SplitSpec};

/// Buckets per key: percentages have two decimals.
pub const BUCKETS: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct Segments {
    /// The profile model every condition reads (materialized by the run).
    pub from: String,
    pub holdout: Option<Holdout>,
    pub list: Vec<Segment>,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub description: String,
    pub rule: Rule,
    pub holdout: Option<Holdout>,
    pub split: Option<Split>,
    pub channels: Vec<String>,
    pub at: Location,
}

/// A rule that holds customers back, with its reason and what it holds them back from.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub name: String,
    pub reason: String,
    pub rule: Rule,
    pub scope: Scope,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Everything,
    Only {
        segments: Vec<String>,
        offers: Vec<String>,
        channels: Vec<String>,
    },
}

impl Scope {
    /// The channels of `segment` this scope holds back: `None` for the whole segment.
    pub fn segment_channels<'a>(&self, segment: &'a Segment) -> Option<Vec<&'a str>> {
        match self {
            Scope::Everything => None,
            Scope::Only {
                segments, channels, ..
            } if !segments.contains(&segment.name) => Some(
                segment
                    .channels
                    .iter()
                    .filter(|c| channels.contains(c))
                    .map(String::as_str)
                    .collect(),
            ),
            Scope::Only { .. } => None,
        }
    }

    pub fn covers_offer_channel(&self, offer: &str, channel: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Only {
                offers, channels, ..
            } => offers.iter().any(|o| o == offer) || channels.iter().any(|c| c == channel),
        }
    }

    /// The scope in words, for `explain` and the manifest.
    pub fn describe(&self) -> String {
        match self {
            Scope::Everything => "everything".into(),
            Scope::Only {
                segments,
                offers,
                channels,
            } => {
                let mut parts = Vec::new();
                if !segments.is_empty() {
                    parts.push(format!("segments {}", segments.join(", ")));
                }
                if !offers.is_empty() {
                    parts.push(format!("offers {}", offers.join(", ")));
                }
                if !channels.is_empty() {
                    parts.push(format!("channels {}", channels.join(", ")));
                }
                parts.join("; ")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    /// All conditions must hold (NULL counts as not holding).
    Conditions(Vec<Condition>),
    /// A query returning member keys, optionally with a `reason` column.
    Sql(Box<SqlQuery>),
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub name: String,
    /// The expression as written.
    pub text: String,
    /// The expression with placeholders typed, ready to embed in generated SQL.
    pub expr: SqlExpr,
    /// What a member is told: the condition's own sentence, or `name: expression`.
    pub reason: String,
    pub at: Location,
}

/// A deterministic control group: keys whose bucket is below `below` (out of 10,000).
#[derive(Debug, Clone, PartialEq)]
pub struct Holdout {
    pub salt: String,
    pub below: u32,
}

/// Treated members divided into variants by bucket ranges `[previous upper, upper)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub salt: String,
    pub variants: Vec<(String, u32)>,
}

impl Compiler<'_> {
    pub(super) fn holdout(&mut self, path: &[&str], spec: &HoldoutSpec) -> Option<Holdout> {
        if !(0.0..=100.0).contains(&spec.percent) {
            self.problem(path, "holdout.percent: use a share between 0 and 100");
            return None;
        }
        Some(Holdout {
            salt: spec.salt.clone(),
            below: (spec.percent * f64::from(BUCKETS) / 100.0).round() as u32,
        })
    }

    fn split(&mut self, path: &[&str], spec: &SplitSpec) -> Option<Split> {
        let total: u32 = spec.variants.values().sum();
        if total == 0 || spec.variants.len() < 2 {
            self.problem(
                path,
                "split.variants: name at least two variants with positive weights",
            );
            return None;
        }
        let mut cumulative = 0;
        let mut variants = Vec::new();
        for (name, weight) in &spec.variants {
            if !is_valid_name(name)
                || matches!(name.as_str(), "treatment" | "control" | "global_control")
            {
                self.problem(
                    path,
                    format!("split.variants.{name}: variant names are lower-case identifiers other than treatment/control"),
                );
            }
            cumulative += weight;
            variants.push((name.clone(), cumulative * BUCKETS / total));
        }
        Some(Split {
            salt: spec.salt.clone(),
            variants,
        })
    }

    pub(super) fn segments(
        &mut self,
        spec: &SegmentsSpec,
        params: &Params,
        known_models: &[&str],
    ) -> Option<Segments> {
        if !known_models.contains(&spec.from.as_str()) {
            self.problem(
                &["segments", "from"],
                format!(
                    "segments.from: \"{}\" is not a model of this pipeline (models: {})",
                    spec.from,
                    known_models.join(", ")
                ),
            );
        }
        let holdout = spec
            .holdout
            .as_ref()
            .and_then(|h| self.holdout(&["segments", "holdout"], h));
        let mut list = Vec::new();
        for (name, segment) in &spec.list {
            let path = ["segments", "list", name.as_str()];
            self.check_name_at(&path, name);
            let Some(rule) = self.rule(&path, &segment.conditions, segment.sql.as_deref(), params)
            else {
                continue;
            };
            let holdout = segment
                .holdout
                .as_ref()
                .and_then(|h| self.holdout(&["segments", "list", name, "holdout"], h));
            let split = segment
                .split
                .as_ref()
                .and_then(|s| self.split(&["segments", "list", name, "split"], s));
            list.push(Segment {
                name: name.clone(),
                description: segment.description.clone(),
                rule,
                holdout,
                split,
                channels: segment.channels.clone(),
                at: self.at(&path),
            });
        }
        Some(Segments {
            from: spec.from.clone(),
            holdout,
            list,
        })
    }

    /// A rule given as named conditions or a SQL file (segments and suppressions alike).
    fn rule(
        &mut self,
        section: &[&str],
        conditions: &indexmap::IndexMap<String, ConditionSpec>,
        sql: Option<&Path>,
        params: &Params,
    ) -> Option<Rule> {
        let field = section.join(".");
        match (sql, conditions.is_empty()) {
            (Some(_), false) | (None, true) => {
                self.problem(
                    section,
                    format!("{field}: give either conditions or sql, not both or neither"),
                );
                None
            }
            (Some(file), true) => {
                let mut path = section.to_vec();
                path.push("sql");
                let at = self.at(&path);
                self.read_sql(at, file, params, &format!("{field}.sql"))
                    .map(|q| Rule::Sql(Box::new(q)))
            }
            (None, false) => {
                let mut list = Vec::new();
                for (name, condition) in conditions {
                    let mut path = section.to_vec();
                    path.extend(["conditions", name.as_str()]);
                    let at = self.at(&path);
                    if let Some(c) = self.condition(at, name, condition, params) {
                        list.push(c);
                    }
                }
                Some(Rule::Conditions(list))
            }
        }
    }

    pub(super) fn suppressions(
        &mut self,
        spec: &indexmap::IndexMap<String, crate::spec::SuppressionSpec>,
        params: &Params,
        segments: Option<&Segments>,
        has_profile: bool,
    ) -> Vec<Suppression> {
        let mut list = Vec::new();
        for (name, suppression) in spec {
            let path = ["suppressions", name.as_str()];
            self.check_name_at(&path, name);
            if !has_profile {
                self.problem(&path, format!("suppressions.{name}: suppressions hold customers back from segments or offers; declare segments or offers (their profile is what conditions read)"));
            }
            let Some(rule) = self.rule(
                &path,
                &suppression.conditions,
                suppression.sql.as_deref(),
                params,
            ) else {
                continue;
            };
            let scope = match &suppression.scope {
                None => Scope::Everything,
                Some(scope) => {
                    for segment in &scope.segments {
                        if !segments.is_some_and(|s| s.list.iter().any(|x| &x.name == segment)) {
                            self.problem(
                                &["suppressions", name, "scope", "segments"],
                                format!(
                                    "suppressions.{name}.scope: no segment named \"{segment}\""
                                ),
                            );
                        }
                    }
                    Scope::Only {
                        segments: scope.segments.clone(),
                        offers: scope.offers.clone(),
                        channels: scope.channels.clone(),
                    }
                }
            };
            list.push(Suppression {
                name: name.clone(),
                reason: suppression.reason.clone(),
                rule,
                scope,
                at: self.at(&path),
            });
        }
        list
    }

    pub(super) fn condition(
        &mut self,
        at: Location,
        name: &str,
        spec: &ConditionSpec,
        params: &Params,
    ) -> Option<Condition> {
        let (text, reason) = match spec {
            ConditionSpec::Expr(text) => (text.clone(), format!("{name}: {text}")),
            ConditionSpec::Described { sql, reason } => (sql.clone(), reason.clone()),
        };
        match parse_condition(&at, &text, params) {
            Ok(expr) => Some(Condition {
                name: name.to_string(),
                text,
                expr,
                reason,
                at,
            }),
            Err(message) => {
                self.problems
                    .push(Diagnostic::new(at, format!("condition {name}: {message}")));
                None
            }
        }
    }

    /// Reads and parses a query file named in the pipeline (`what` names the field).
    pub(super) fn read_sql(
        &mut self,
        at: Location,
        file: &Path,
        params: &Params,
        what: &str,
    ) -> Option<SqlQuery> {
        let path = self.resolve(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                self.problems.push(Diagnostic::new(
                    at,
                    format!(
                        "{what}: cannot read {}: {err}; create the file or fix the path (relative to the project folder{})",
                        path.display(),
                        if self.root == Path::new(".") { String::new() } else { format!(" {}", self.root.display()) }
                    ),
                ));
                return None;
            }
        };
        match sql::parse_query(&path, &text, params) {
            Ok(query) => Some(query),
            Err(problems) => {
                self.problems.extend(problems);
                None
            }
        }
    }

    fn check_name_at(&mut self, path: &[&str], name: &str) {
        if !is_valid_name(name) {
            self.problem(
                path,
                format!("{}: names may use lower-case letters, digits and _ and start with a letter (they become folder names)", path.join(".")),
            );
        }
    }
}

/// Parses a condition as a SQL expression, typing its placeholders like a model's.
fn parse_condition(at: &Location, text: &str, params: &Params) -> Result<SqlExpr, String> {
    // Parse inside a query so the same placeholder typing applies.
    let wrapped = format!("SELECT {text}");
    let query = sql::parse_query(&at.file, &wrapped, params).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                p.message
                    .replace("SQL syntax error: ", "not a SQL expression: ")
            })
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    // Reject anything beyond a single expression (`a, b` or `a FROM t`).
    let mut parser = DFParserBuilder::new(text)
        .build()
        .map_err(|e| e.strip_backtrace())?;
    parser
        .parse_into_expr()
        .map_err(|e| format!("not a single SQL expression: {}", e.strip_backtrace()))?;
    if !query.tables.is_empty() {
        return Err(
            "a condition reads the profile's columns only; use a SQL segment to read other tables"
                .into(),
        );
    }
    sql::select_expression(&query).ok_or_else(|| "expected one expression".to_string())
}
