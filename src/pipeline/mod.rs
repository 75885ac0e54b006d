//! The compiled pipeline: names resolved, SQL parsed, dependencies ordered, parameters typed.
//!
//! `compile` never touches data. It reads the pipeline's SQL files and collects *every* problem
//! it finds in one pass, each with the file, line and column to fix.

pub mod checks;
pub mod dag;
pub mod offers;
pub mod params;
pub mod render;
pub mod segments;
pub mod sql;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::location::Location;
use crate::spec::{self, ColumnType, Format, PipelineSpec};
pub use checks::{Breaker, Check, CheckKind, Target};
pub use offers::{Offer, Offers};
pub use params::Params;
pub use segments::{Condition, Holdout, Rule, Scope, Segment, Segments, Split, Suppression};
pub use sql::SqlQuery;

/// One problem in a pipeline, at the place to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub at: Location,
    pub message: String,
}

impl Diagnostic {
    pub fn new(at: Location, message: impl Into<String>) -> Self {
        Self {
            at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Everything wrong with a pipeline, one line each.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// A pipeline ready to plan and run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    pub key: Option<String>,
    /// The pipeline file, as given on the command line.
    pub file: PathBuf,
    /// Relative paths in the pipeline resolve against this folder.
    pub root: PathBuf,
    pub params: Params,
    pub sources: IndexMap<String, Source>,
    /// Models in the order they run: each after every model it reads.
    pub models: Vec<Model>,
    pub segments: Option<Segments>,
    pub suppressions: Vec<Suppression>,
    pub offers: Option<Offers>,
    pub checks: Vec<Check>,
    /// The source listing keys to forget.
    pub erasure: Option<String>,
    pub output: Uri,
    /// Profile columns copied into audience rows.
    pub activation_columns: Vec<String>,
    /// Where `output.columns` is declared.
    pub output_at: Location,
}

/// Where data lives: a path on this machine or an object-store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Local(PathBuf),
    Url(url::Url),
}

impl Uri {
    fn resolve(root: &Path, text: &str) -> Result<Self, String> {
        match text.split_once("://") {
            Some(("file", rest)) => Ok(Uri::Local(PathBuf::from(rest))),
            Some((scheme, _)) => {
                let url = url::Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
                match scheme {
                    "s3" | "gs" | "az" | "abfs" | "memory" => Ok(Uri::Url(url)),
                    other => Err(format!(
                        "unsupported scheme \"{other}://\"; use a local path, file://, s3://, gs:// or az://"
                    )),
                }
            }
            None => {
                let path = Path::new(text);
                Ok(Uri::Local(
                    if path.is_absolute() || root == Path::new(".") {
                        path.to_owned()
                    } else {
                        root.join(path)
                    },
                ))
            }
        }
    }

    /// True when the text names a set of files (`*`, `?`, `[`).
    pub fn is_glob(&self) -> bool {
        self.to_string().contains(['*', '?', '['])
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Local(path) => write!(f, "{}", path.display()),
            Uri::Url(url) => write!(f, "{url}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub uri: Uri,
    /// The uri as written in the pipeline, for messages and the manifest.
    pub uri_text: String,
    pub format: Format,
    pub extension: String,
    pub delimiter: u8,
    pub header: bool,
    pub partitions: Vec<(String, ColumnType)>,
    pub contract: IndexMap<String, ColumnType>,
    pub primary_key: Vec<String>,
    /// Where the source is declared (its `uri:` line).
    pub at: Location,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub description: Option<String>,
    pub query: SqlQuery,
    pub materialize: bool,
    pub publish: bool,
    /// Where the model is declared (its `sql:` line).
    pub at: Location,
}

impl Model {
    /// Sources and models this model reads.
    pub fn reads(&self) -> &BTreeSet<String> {
        &self.query.tables
    }
}

impl Pipeline {
    /// Loads and compiles the pipeline file at `file`.
    pub fn load(file: &Path) -> Result<Self, CompileError> {
        let (spec, text) = spec::load(file)?;
        compile(&spec, file, &text)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// The folder relative paths resolve against: the project (parent of `pipelines/`) when the
/// file sits in a `pipelines` folder, otherwise the file's own folder.
pub fn project_root(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    } else {
        dir.to_owned()
    }
}

/// Names that become SQL identifiers and folder names: lower-case letters, digits, `_`.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

struct Compiler<'a> {
    file: &'a Path,
    text: &'a str,
    root: PathBuf,
    problems: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn at(&self, path: &[&str]) -> Location {
        let (line, column) = spec::locate(self.text, path);
        Location::new(self.file, line, column)
    }

    /// A path from the pipeline, relative to the project root (kept short for messages).
    fn resolve(&self, path: &Path) -> PathBuf {
        if self.root == Path::new(".") {
            path.to_owned()
        } else {
            self.root.join(path)
        }
    }

    fn problem(&mut self, path: &[&str], message: impl Into<String>) {
        let at = self.at(path);
        self.problems.push(Diagnostic::new(at, message));
    }

    fn check_name(&mut self, section: &str, name: &str) {
        if !is_valid_name(name) {
            self.problem(
                &[section, name],
                format!(
                    "{section}.{name}: names may use lower-case letters, digits and _ and start with a letter (they become SQL tables and folder names)"
                ),
            );
        }
    }
}

/// Compiles a parsed pipeline; `text` is the file's YAML, used to locate problems.
pub fn compile(spec: &PipelineSpec, file: &Path, text: &str) -> Result<Pipeline, CompileError> {
    let mut c = Compiler {
        file,
        text,
        root: project_root(file),
        problems: Vec::new(),
    };
    if !is_valid_name(&spec.pipeline) {
        c.problem(
            &["pipeline"],
            "pipeline: the name may use lower-case letters, digits and _ (it becomes a folder name)",
        );
    }

    let params = match Params::from_spec(&spec.params) {
        Ok(params) => params,
        Err(name) => {
            c.problem(
                &["params", &name],
                format!("params.{name}: run_date is set by --date and cannot be declared"),
            );
            Params::from_spec(&Default::default()).expect("no parameters")
        }
    };

    let mut sources = IndexMap::new();
    for (name, source) in &spec.sources {
        c.check_name("sources", name);
        let uri = match Uri::resolve(&c.root, &source.uri) {
            Ok(uri) => uri,
            Err(message) => {
                c.problem(
                    &["sources", name, "uri"],
                    format!("sources.{name}.uri: {message}"),
                );
                continue;
            }
        };
        if source.format != Format::Csv && (source.delimiter.is_some() || source.header.is_some()) {
            c.problem(
                &["sources", name],
                format!("sources.{name}: delimiter and header apply to csv sources only"),
            );
        }
        let delimiter = source.delimiter.unwrap_or(',');
        if !delimiter.is_ascii() {
            c.problem(
                &["sources", name, "delimiter"],
                format!("sources.{name}.delimiter: use a single ASCII character"),
            );
        }
        for key in &source.primary_key {
            if !source.columns.is_empty() && !source.columns.contains_key(key) {
                c.problem(
                    &["sources", name, "primary_key"],
                    format!("sources.{name}.primary_key: \"{key}\" is not in the source's columns"),
                );
            }
        }
        let at = c.at(&["sources", name, "uri"]);
        sources.insert(
            name.clone(),
            Source {
                name: name.clone(),
                uri,
                uri_text: source.uri.clone(),
                format: source.format,
                extension: source
                    .extension
                    .clone()
                    .unwrap_or_else(|| source.format.default_extension().to_string()),
                delimiter: delimiter as u8,
                header: source.header.unwrap_or(true),
                partitions: source
                    .partitioned_by
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                contract: source.columns.clone(),
                primary_key: source.primary_key.clone(),
                at,
            },
        );
    }

    let mut models = IndexMap::new();
    for (name, model) in &spec.models {
        c.check_name("models", name);
        if spec.sources.contains_key(name) {
            c.problem(
                &["models", name],
                format!("models.{name}: a source already has this name; rename one of them"),
            );
        }
        let at = c.at(&["models", name, "sql"]);
        if let Some(query) = c.read_sql(
            at.clone(),
            &model.sql,
            &params,
            &format!("models.{name}.sql"),
        ) {
            models.insert(
                name.clone(),
                Model {
                    name: name.clone(),
                    description: model.description.clone(),
                    query,
                    materialize: model.materialize || model.publish,
                    publish: model.publish,
                    at,
                },
            );
        }
    }

    // Every table a model reads must be a source or a model (declared ones count even when
    // their SQL failed, so one broken file is reported once).
    let known: Vec<String> = spec
        .sources
        .keys()
        .chain(spec.models.keys())
        .cloned()
        .collect();
    for model in models.values() {
        for table in model.reads() {
            if !known.contains(table) {
                c.problems.push(Diagnostic::new(
                    model.query.locate(table),
                    format!(
                        "model {} reads unknown table \"{table}\"; the pipeline's tables are: {}",
                        model.name,
                        known.join(", ")
                    ),
                ));
            }
        }
    }

    let deps: IndexMap<String, BTreeSet<String>> = models
        .iter()
        .map(|(name, model)| (name.clone(), model.reads().clone()))
        .collect();
    let order = match dag::topological_order(&deps) {
        Ok(order) => order,
        Err(cycle) => {
            let at = c.at(&["models", &cycle[0], "sql"]);
            c.problems.push(Diagnostic::new(
                at,
                format!(
                    "models form a cycle: {}; a model cannot read itself, directly or through others",
                    cycle.join(" -> ")
                ),
            ));
            Vec::new()
        }
    };

    let model_names: Vec<String> = models.keys().cloned().collect();
    let model_names: Vec<&str> = model_names.iter().map(String::as_str).collect();
    let segments = spec
        .segments
        .as_ref()
        .and_then(|s| c.segments(s, &params, &model_names));
    if segments.is_some() && spec.key.is_none() {
        c.problem(
            &["segments"],
            "key: name the column every audience is keyed by (e.g. key: customer_id)",
        );
    }
    if let Some(segments) = &segments
        && let Some(profile) = models.get_mut(&segments.from)
    {
        // Every segment reads the profile: compute it once.
        profile.materialize = true;
    }
    let offers_from = spec.offers.as_ref().and_then(|o| o.from.clone());
    if let Some(profile) = offers_from.and_then(|from| models.get_mut(&from)) {
        profile.materialize = true;
    }

    let output = match Uri::resolve(&c.root, &spec.output.uri) {
        Ok(uri) => Some(uri),
        Err(message) => {
            c.problem(&["output", "uri"], format!("output.uri: {message}"));
            None
        }
    };

    let has_profile = segments.is_some() || spec.offers.is_some();
    let suppressions = c.suppressions(&spec.suppressions, &params, segments.as_ref(), has_profile);
    let suppression_names: Vec<&str> = spec.suppressions.keys().map(String::as_str).collect();
    let offers = spec.offers.as_ref().and_then(|o| {
        c.offers(
            o,
            &params,
            spec.segments.as_ref().map(|s| s.from.as_str()),
            &model_names,
            &suppression_names,
        )
    });
    if offers.is_some() && spec.key.is_none() {
        c.problem(
            &["offers"],
            "key: name the column every decision is keyed by (e.g. key: customer_id)",
        );
    }
    // Suppression scopes may name offers.
    for (name, suppression) in &spec.suppressions {
        for offer in suppression.scope.iter().flat_map(|s| &s.offers) {
            if !offers
                .as_ref()
                .is_some_and(|o| o.list.iter().any(|x| &x.name == offer))
            {
                c.problem(
                    &["suppressions", name, "scope", "offers"],
                    format!("suppressions.{name}.scope: no offer named \"{offer}\""),
                );
            }
        }
    }
    let erasure = spec.erasure.as_ref().map(|e| e.source.clone());
    if let Some(source) = &erasure
        && !spec.sources.contains_key(source)
    {
        c.problem(
            &["erasure", "source"],
            format!("erasure.source: no source named \"{source}\""),
        );
    }

    // SQL segments and suppressions read tables like models do.
    let sql_rules = segments
        .iter()
        .flat_map(|s| &s.list)
        .map(|s| (format!("segment {}", s.name), &s.rule))
        .chain(
            suppressions
                .iter()
                .map(|s| (format!("suppression {}", s.name), &s.rule)),
        );
    for (what, rule) in sql_rules {
        if let Rule::Sql(query) = rule {
            for table in &query.tables {
                if !known.contains(table) {
                    c.problems.push(Diagnostic::new(
                        query.locate(table),
                        format!(
                            "{what} reads unknown table \"{table}\"; the pipeline's tables are: {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    let output_at = c.at(&["output", "columns"]);
    let segment_names: Vec<&str> = segments
        .iter()
        .flat_map(|s| &s.list)
        .map(|s| s.name.as_str())
        .collect();
    let offer_names: Vec<&str> = offers
        .iter()
        .flat_map(|o| &o.list)
        .map(|o| o.name.as_str())
        .collect();
    let checks = c.checks(
        &spec.checks,
        &params,
        &spec.sources,
        &known,
        &segment_names,
        &offer_names,
    );

    if !c.problems.is_empty() {
        return Err(CompileError::Invalid(c.problems));
    }
    let mut models = models;
    Ok(Pipeline {
        name: spec.pipeline.clone(),
        description: spec.description.clone(),
        key: spec.key.clone(),
        file: file.to_owned(),
        root: c.root,
        params,
        sources,
        models: order
            .iter()
            .map(|name| models.shift_remove(name).expect("ordered model exists"))
            .collect(),
        segments,
        suppressions,
        offers,
        checks,
        erasure,
        output: output.expect("checked above"),
        activation_columns: spec.output.columns.clone(),
        output_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_root_is_the_parent_of_pipelines() {
        assert_eq!(project_root(Path::new("pipelines/a.yaml")), Path::new("."));
        assert_eq!(
            project_root(Path::new("/p/pipelines/a.yaml")),
            Path::new("/p")
        );
        assert_eq!(
            project_root(Path::new("/p/other/a.yaml")),
            Path::new("/p/other")
        );
        assert_eq!(project_root(Path::new("a.yaml")), Path::new("."));
    }

    #[test]
    fn names_must_be_safe_identifiers() {
        assert!(is_valid_name("lapsing_high_value"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name("Upper"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
    }
}
