//! The pipeline file as written: plain serde data, no I/O, no validation beyond shape.
//!
//! `pipeline::compile` turns a [`PipelineSpec`] into a runnable `Pipeline`, checking names,
//! files, SQL and the DAG. Every struct denies unknown fields so a typo is an error that lists
//! the allowed keys, with the line and column serde_yaml reports.

mod locate;
mod shape;
mod text;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

pub use locate::{locate, locate_repeat};
pub use text::{TextError, read_text};

use crate::location::Location;

/// A pipeline file could not be read or does not have the shape of a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Read(#[from] TextError),
    #[error("{at}: {message}")]
    Yaml { at: Location, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The pipeline's name: the folder its runs are published under.
    pub pipeline: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The entity every audience is keyed by (a column of the profile model).
    #[serde(default)]
    pub key: Option<String>,
    /// Typed values bound to `$name` placeholders in every SQL file.
    #[serde(default)]
    pub params: IndexMap<String, ParamValue>,
    #[serde(default)]
    pub sources: IndexMap<String, SourceSpec>,
    /// Windowed aggregates per key over an event source, maintained day by day.
    #[serde(default)]
    pub features: IndexMap<String, FeatureSpec>,
    #[serde(default)]
    pub models: IndexMap<String, ModelSpec>,
    /// The channels audiences and offers are activated through. When declared, every channel
    /// named elsewhere must be one of them: a typo (`emial`) would otherwise escape the consent
    /// rules of the channel meant.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub segments: Option<SegmentsSpec>,
    /// Rules that hold customers back from segments, offers or channels, each with its reason.
    #[serde(default)]
    pub suppressions: IndexMap<String, SuppressionSpec>,
    /// Offers with their own eligibility, decided per customer (zero-segment decisioning).
    #[serde(default)]
    pub offers: Option<OffersSpec>,
    /// Customers to forget: removed from every output and from history, for good.
    #[serde(default)]
    pub erasure: Option<ErasureSpec>,
    /// Data-quality gates and circuit breakers; an `error` failure blocks publishing.
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    pub output: OutputSpec,
    /// Options for object stores, per URL prefix (`s3://bucket`): region, endpoint, … Secrets
    /// only as `{ env: VARIABLE }`.
    #[serde(default)]
    pub stores: IndexMap<String, IndexMap<String, StoreOptionSpec>>,
}

/// One option of an object store: a value, or the environment variable that holds it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum StoreOptionSpec {
    Env { env: String },
    Bool(bool),
    Int(i64),
    Text(String),
}

impl StoreOptionSpec {
    /// A value written in the file, as text.
    pub fn text(&self) -> String {
        match self {
            StoreOptionSpec::Env { env } => format!("${env}"),
            StoreOptionSpec::Bool(b) => b.to_string(),
            StoreOptionSpec::Int(i) => i.to_string(),
            StoreOptionSpec::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionSpec {
    /// Why customers are held back, in words a marketer (or the customer) understands.
    pub reason: String,
    /// Named SQL conditions over the profile; a customer is suppressed when all hold.
    #[serde(default)]
    pub conditions: IndexMap<String, ConditionSpec>,
    /// Or: a query returning the suppressed keys, optionally with a `detail` column naming
    /// the data behind it (e.g. the technician visit).
    #[serde(default)]
    pub sql: Option<PathBuf>,
    /// What the rule holds customers back from; everything when omitted.
    #[serde(default)]
    pub scope: Option<ScopeSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSpec {
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default)]
    pub offers: Vec<String>,
    /// Every segment and offer that goes through one of these channels.
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffersSpec {
    /// The profile eligibility is evaluated on (default: segments.from).
    #[serde(default)]
    pub from: Option<String>,
    /// How many offers one customer receives at most.
    #[serde(default = "one")]
    pub max_per_customer: u32,
    pub list: IndexMap<String, OfferSpec>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSpec {
    pub description: String,
    /// Named SQL conditions over the profile; the customer is eligible when all hold.
    pub eligible: IndexMap<String, ConditionSpec>,
    /// Breaks ties between equal scores (higher first); the score when none is given.
    #[serde(default)]
    pub priority: i64,
    /// A SQL expression over the profile: how good this offer is for this customer.
    #[serde(default)]
    pub score: Option<String>,
    /// At most this many customers receive the offer today (those it scores highest for).
    #[serde(default)]
    pub capacity: Option<u64>,
    /// The channels the offer may go through.
    pub channels: Vec<String>,
    #[serde(default)]
    pub holdout: Option<HoldoutSpec>,
    /// Suppression rules that apply to this offer (besides those whose scope names it).
    #[serde(default)]
    pub suppressed_by: Vec<String>,
}

/// One check: what it looks at (exactly one of source, model, audience, offer) and what it
/// asserts (exactly one kind).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// A name for reports (default: derived from the target and kind).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// A segment's audience, or "*" for every segment.
    #[serde(default)]
    pub audience: Option<String>,
    /// An offer's assignments, or "*" for every offer.
    #[serde(default)]
    pub offer: Option<String>,
    #[serde(default)]
    pub severity: Severity,

    /// The source's declared primary key is unique and not null.
    #[serde(default)]
    pub primary_key: bool,
    /// The source's column contract (names and types) holds.
    #[serde(default)]
    pub contract: bool,
    #[serde(default)]
    pub not_null: Vec<String>,
    #[serde(default)]
    pub unique: Vec<String>,
    #[serde(default)]
    pub accepted_values: Option<AcceptedValuesSpec>,
    #[serde(default)]
    pub relationships: Option<RelationshipSpec>,
    #[serde(default)]
    pub row_count: Option<RangeSpec>,
    #[serde(default)]
    pub freshness: Option<FreshnessSpec>,
    /// A query returning the failing rows.
    #[serde(default)]
    pub sql: Option<PathBuf>,
    /// Row checks fail only when more than this share of rows fail (default 0).
    #[serde(default)]
    pub max_failed_percent: Option<f64>,

    /// Circuit breakers on audiences and offers, against the previous published run.
    #[serde(default)]
    pub max_removed_percent: Option<f64>,
    #[serde(default)]
    pub max_added_percent: Option<f64>,
    #[serde(default)]
    pub min_size: Option<u64>,
    #[serde(default)]
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    #[default]
    Error,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedValuesSpec {
    pub column: String,
    pub values: Vec<ParamValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationshipSpec {
    pub column: String,
    /// The table every value must exist in, and its column.
    pub to: String,
    pub field: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSpec {
    /// A date or timestamp column: its newest value must be recent.
    pub column: String,
    /// How many days before the run date the newest value may be.
    pub max_age_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureSpec {
    /// A source listing the keys to forget (in a column named like the pipeline's key).
    pub source: String,
}

/// A parameter's value; its YAML type decides its SQL type (`true` → BOOLEAN, `3` → BIGINT,
/// `2.5` → DOUBLE, `"2026-01-31"` → DATE, any other text → VARCHAR).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// A file, a folder, or a glob; a local path (relative to the project) or a URL
    /// (`file://`, `s3://`, `gs://`, `az://`).
    pub uri: String,
    pub format: Format,
    #[serde(default)]
    pub description: Option<String>,
    /// Only files with this ending are read from a folder (default: by format).
    #[serde(default)]
    pub extension: Option<String>,
    /// CSV only: field delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// CSV only: whether the first line names the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// Hive partition folders (`year=2026/month=3`) and the type of each partition column.
    #[serde(default)]
    pub partitioned_by: IndexMap<String, ColumnType>,
    /// The column contract: names that must exist and the type each is read as.
    #[serde(default)]
    pub columns: IndexMap<String, ColumnType>,
    #[serde(default)]
    pub primary_key: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
    #[serde(alias = "json")]
    Ndjson,
}

impl Format {
    pub fn default_extension(self) -> &'static str {
        match self {
            Format::Csv => ".csv",
            Format::Parquet => ".parquet",
            Format::Ndjson => ".json",
        }
    }
}

/// The column types a contract or a partition may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    #[serde(alias = "text", alias = "varchar")]
    String,
    #[serde(alias = "integer", alias = "bigint")]
    Int,
    #[serde(alias = "float", alias = "decimal")]
    Double,
    #[serde(alias = "bool")]
    Boolean,
    Date,
    Timestamp,
}

impl std::fmt::Display for ColumnType {
    /// As a contract declares it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Double => "double",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
        })
    }
}

/// Behaviour features: counts, sums and latest or earliest times per key over sliding windows
/// of days, kept up to date from the days that changed instead of all history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// The event source the features are computed from.
    pub from: String,
    /// The column (or columns) the features are kept per.
    pub key: OneOrMany,
    /// The event's time: a `timestamp` or `date` column of the source.
    pub time: String,
    /// Window lengths in days, counting the run date itself.
    #[serde(default)]
    pub windows: Vec<u32>,
    /// Events may arrive up to this many days after the day they happened.
    #[serde(default)]
    pub late_days: u32,
    /// Only events for which this SQL condition holds count at all.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Also publish the features in the run folder under `models/<name>/`.
    #[serde(default)]
    pub publish: bool,
    pub aggregates: IndexMap<String, AggregateSpec>,
}

/// One aggregate of a feature table: exactly one of `count`, `sum`, `max`, `min`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// `"*"` (events) or a column (events where it is not NULL).
    #[serde(default)]
    pub count: Option<String>,
    #[serde(default)]
    pub sum: Option<String>,
    /// The latest value of a timestamp or date column, over all history.
    #[serde(default)]
    pub max: Option<String>,
    /// The earliest value of a timestamp or date column, over all history.
    #[serde(default)]
    pub min: Option<String>,
    /// Only events for which this SQL condition holds count.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Decimal places a `sum` of a `double` column is kept to, exactly.
    #[serde(default)]
    pub decimals: Option<u32>,
    /// Windows of this aggregate, instead of the feature's.
    #[serde(default)]
    pub windows: Option<Vec<u32>>,
}

/// One name, or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(name) => vec![name.clone()],
            OneOrMany::Many(names) => names.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The model's query, relative to the project root (e.g. `sql/daily/profile.sql`).
    pub sql: PathBuf,
    #[serde(default)]
    pub description: Option<String>,
    /// Stream the result to Parquet once and read that, instead of re-running the query
    /// wherever the model is used.
    #[serde(default)]
    pub materialize: bool,
    /// Also publish the model's rows in the run folder under `models/<name>/`.
    #[serde(default)]
    pub publish: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Where runs are published: `<uri>/<pipeline>/runs/run_date=…/`.
    pub uri: String,
    /// Columns of the profile model copied into every audience row for activation tools.
    #[serde(default)]
    pub columns: Vec<String>,
    /// On object stores: how many replaced runs of a date stay readable after a rerun, for
    /// readers that followed an older pointer (default 1).
    #[serde(default)]
    pub keep_replaced: Option<u32>,
}

/// `segments:` — who is in which segment today, and who is held out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentsSpec {
    /// The profile model conditions are evaluated on: one row per key.
    pub from: String,
    /// The global control group: these customers receive nothing, in every segment.
    #[serde(default)]
    pub holdout: Option<HoldoutSpec>,
    pub list: IndexMap<String, SegmentSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutSpec {
    /// Share of customers in the control group, 0 to 100 (two decimals: 10,000 buckets).
    pub percent: f64,
    /// Changing the salt reshuffles who is in control; keep it to keep groups stable.
    pub salt: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    pub description: String,
    /// Named SQL conditions over the profile; a customer is a member when all hold.
    #[serde(default)]
    pub conditions: IndexMap<String, ConditionSpec>,
    /// Or: a query returning the members' keys (and optionally a `reason` column).
    #[serde(default)]
    pub sql: Option<PathBuf>,
    /// This segment's own control group.
    #[serde(default)]
    pub holdout: Option<HoldoutSpec>,
    /// An A/B split of the treated members into named variants.
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// The channels this audience is activated through (e.g. [email]); channel-scoped
    /// suppressions such as withdrawn consent apply to it. `[]` publishes it for no channel.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// A condition: a SQL boolean expression, optionally with the sentence shown as its reason.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConditionSpec {
    Expr(String),
    Described { sql: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    pub salt: String,
    /// Variant name → weight; weights are shares of the treated members.
    pub variants: IndexMap<String, u32>,
}

/// Parses pipeline YAML, reporting errors as `file:line:column: field.path: message`.
pub fn parse(file: &Path, text: &str) -> Result<PipelineSpec, SpecError> {
    check_shape(file, text, false)?;
    serde_yaml::from_str(text).map_err(|err| yaml_error(file, &err))
}

/// Reads and parses a pipeline file.
pub fn load(file: &Path) -> Result<(PipelineSpec, String), SpecError> {
    let text = read_text(file)?;
    Ok((parse(file, &text)?, text))
}

/// Rejects duplicate keys (naming both lines), pathological nesting and, unless `nulls`, keys
/// without a value before the YAML is read as a pipeline; shared with test files, whose rows
/// hold NULLs.
pub fn check_shape(file: &Path, text: &str, nulls: bool) -> Result<(), SpecError> {
    if let Some(offset) = shape::too_deep_brackets(text) {
        return Err(SpecError::Yaml {
            at: Location::at_offset(file, text, offset),
            message: format!(
                "the document nests deeper than {} levels; a pipeline needs far fewer",
                shape::MAX_DEPTH
            ),
        });
    }
    let Err((problem, err)) = shape::check(text, nulls) else {
        return Ok(());
    };
    let (mut at, _) = describe_yaml_error(file, &err);
    let message = match problem {
        shape::ShapeProblem::Duplicate { path } => {
            let (key, parents) = path.split_last().expect("a duplicate has a key");
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            let (first, _) = locate(text, &path);
            if let Some((line, column)) = locate_repeat(text, &path) {
                at = Location::new(file, line, column);
            }
            let field = if parents.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", parents.join("."))
            };
            format!(
                "{field}: declared twice, first at line {first}; YAML keeps only the last, so rename or remove one"
            )
        }
        shape::ShapeProblem::TooDeep => format!(
            "the document nests deeper than {} levels; a pipeline needs far fewer",
            shape::MAX_DEPTH
        ),
        shape::ShapeProblem::Empty { path } => {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            let (line, column) = locate(text, &keys);
            at = Location::new(file, line, column);
            format!(
                "{}: has no value; give it one, or remove the key (a key left empty reads as if it were not there{})",
                path.join("."),
                if path.last().is_some_and(|k| k == "scope") {
                    ": a rule without a scope holds back everything"
                } else {
                    ""
                }
            )
        }
    };
    Err(SpecError::Yaml { at, message })
}

fn yaml_error(file: &Path, err: &serde_yaml::Error) -> SpecError {
    let (at, message) = describe_yaml_error(file, err);
    SpecError::Yaml { at, message }
}

/// Where a serde_yaml error happened and what it says, worded for people: the location prefix
/// replaces serde_yaml's " at line L column C", and malformed YAML says what to look for.
pub fn describe_yaml_error(file: &Path, err: &serde_yaml::Error) -> (Location, String) {
    let (line, column) = err.location().map_or((1, 1), |l| (l.line(), l.column()));
    let message = err.to_string();
    let message = match message.find(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message,
    };
    let mut message = redact_values(&message.replace('`', "\""));
    if message.contains("expected struct PipelineSpec") {
        message = "this is not a pipeline file: a pipeline is a YAML mapping with pipeline:, sources:, models: and output: (check the path)".into();
    }
    if let Some(expected) = UNTAGGED
        .iter()
        .find(|(name, _)| message.ends_with(&format!("untagged enum {name}")))
        .map(|(_, expected)| expected)
    {
        let field = message
            .split(": data did not match")
            .next()
            .unwrap_or_default();
        message = format!("{field}: expected {expected}");
    }
    const SYNTAX: [&str; 5] = [
        "found ",
        "did not find",
        "while parsing",
        "while scanning",
        "mapping values",
    ];
    if SYNTAX.iter().any(|s| message.starts_with(s)) {
        message = format!(
            "malformed YAML: {message} (check the indentation, quotes and brackets here or just above)"
        );
    }
    (Location::new(file, line, column), message)
}

/// What each choice of forms (serde's untagged enums) accepts, for when a value is none of them.
const UNTAGGED: [(&str, &str); 4] = [
    (
        "ConditionSpec",
        "a condition as `name: SQL` or `name: { sql: SQL, reason: text }` (both sql and reason)",
    ),
    (
        "StoreOptionSpec",
        "a value, or { env: VARIABLE } for a secret",
    ),
    ("ParamValue", "true or false, a number, or text"),
    ("OneOrMany", "a name or a list of names"),
];

/// serde quotes the value it could not read (`invalid type: string "…"`); that value may be
/// anything the file holds (a wrong path can point at any file), so only its kind is kept.
fn redact_values(message: &str) -> String {
    for kind in ["string", "integer", "floating point", "character"] {
        for prefix in ["invalid type: ", "invalid value: "] {
            let start = format!("{prefix}{kind} ");
            if let Some(at) = message.find(&start)
                && let Some(end) = message[at..].find(", expected")
            {
                let cut = at + start.len() - 1;
                return format!("{}{}", &message[..cut], &message[at + end..]);
            }
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<PipelineSpec, SpecError> {
        parse(Path::new("pipelines/p.yaml"), text)
    }

    const MINIMAL: &str = "\
pipeline: p
params: { lookback_days: 30, threshold: 2.5, enabled: true, since: \"2026-01-01\", label: x }
sources:
  customers: { uri: data/customers.csv, format: csv, primary_key: [customer_id] }
  events:
    uri: data/events/
    format: parquet
    partitioned_by: { year: int, month: int }
models:
  profile: { sql: sql/profile.sql, materialize: true }
output: { uri: out/ }
";

    #[test]
    fn parses_a_minimal_pipeline() {
        let spec = parse_str(MINIMAL).unwrap();
        assert_eq!(spec.pipeline, "p");
        assert_eq!(spec.params["lookback_days"], ParamValue::Int(30));
        assert_eq!(spec.params["threshold"], ParamValue::Float(2.5));
        assert_eq!(spec.params["enabled"], ParamValue::Bool(true));
        assert_eq!(spec.params["since"], ParamValue::Text("2026-01-01".into()));
        assert_eq!(
            spec.sources["events"].partitioned_by["month"],
            ColumnType::Int
        );
        assert!(spec.models["profile"].materialize);
        assert_eq!(
            spec.sources.keys().collect::<Vec<_>>(),
            ["customers", "events"]
        );
    }

    #[test]
    fn unknown_fields_name_the_field_the_line_and_the_allowed_keys() {
        let text = MINIMAL.replace("materialize: true", "materialise: true");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.starts_with("pipelines/p.yaml:10:"), "{err}");
        assert!(
            err.contains("models.profile: unknown field \"materialise\""),
            "{err}"
        );
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn a_value_of_none_of_a_fields_forms_says_what_the_forms_are() {
        let text = MINIMAL.replace("label: x", "label: [x]");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("pipelines/p.yaml:2:")
                && err.ends_with("params: expected true or false, a number, or text"),
            "{err}"
        );
        let text = format!(
            "{MINIMAL}segments:\n  from: profile\n  list:\n    s:\n      description: d\n      \
             conditions: {{ c: {{ sql: x > 1 }} }}\n"
        );
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(
            err.contains("segments.list.s.conditions: expected a condition as"),
            "{err}"
        );
    }

    #[test]
    fn unknown_formats_are_rejected() {
        let text = MINIMAL.replace("format: csv", "format: xlsx");
        let err = parse_str(&text).unwrap_err().to_string();
        assert!(err.contains("unknown variant \"xlsx\""), "{err}");
        assert!(err.contains("pipelines/p.yaml:4:"), "{err}");
    }
}
