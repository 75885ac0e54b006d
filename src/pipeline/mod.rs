//! The compiled pipeline: every part compiled from the YAML by its own module, names resolved
//! across parts, SQL parsed, models ordered, parameters typed.
//!
//! `compile` never touches data. It reads the pipeline's SQL files and collects *every* problem
//! it finds in one pass, each with the file, line and column to fix.

mod lineage;
mod render;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

pub(crate) use lineage::{NodeKind, lineage};
pub use render::PlanFormat;
pub(crate) use render::render;

use crate::checks::{self, Check, Checkable};
use crate::compile::Compiler;
use crate::erasure::{self, Erasure};
use crate::features;
use crate::holdouts;
use crate::location::{Diagnostic, Location, Uri};
use crate::models::{self, Model};
use crate::objects::{self, ObjectsError, StoreConfig, Stores};
use crate::offers::{self, Offers};
use crate::segments::{self, Segments};
use crate::sources::{self, Source};
use crate::spec::{self, PipelineSpec};
use crate::sql::{Params, Rule};
use crate::store::PipelineStore;
use crate::suppressions::{self, Suppression, Targets};

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
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    /// The pipeline file, as given on the command line.
    pub(crate) file: PathBuf,
    /// Relative paths in the pipeline resolve against this folder.
    pub(crate) root: PathBuf,
    pub(crate) params: Params,
    /// The column every audience, offer and suppression is keyed by.
    key: Option<String>,
    pub(crate) sources: IndexMap<String, Source>,
    /// Models in the order they run: each after every model it reads.
    pub(crate) models: Vec<Model>,
    pub(crate) segments: Option<Segments>,
    pub(crate) suppressions: Vec<Suppression>,
    pub(crate) offers: Option<Offers>,
    pub(crate) checks: Vec<Check>,
    pub(crate) erasure: Option<Erasure>,
    pub(crate) output: Uri,
    /// Options for object stores, per bucket.
    pub(crate) stores: Vec<StoreConfig>,
    /// Replaced runs of a date kept readable on an object store.
    keep_replaced: u32,
    /// Profile columns copied into audience rows.
    pub(crate) activation_columns: Vec<String>,
    /// Where `output.columns` is declared.
    pub(crate) output_at: Location,
    /// Where `output.uri` is declared.
    output_uri_at: Location,
}

impl Pipeline {
    /// Loads and compiles the pipeline file at `file`.
    pub fn load(file: &Path) -> Result<Self, CompileError> {
        let (spec, text) = spec::load(file)?;
        compile(&spec, file, &text)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pipeline file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The key column; compile guarantees one when there are segments, offers or erasure.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The profile model customers are looked up in: the segments' profile, else the offers'.
    pub(crate) fn profile(&self) -> Option<&str> {
        self.profiles().first().copied()
    }

    /// The profiles suppressions' conditions read: the segments' and the offers' (once when
    /// they are the same model). A rule is evaluated over each, so that consent withdrawn in
    /// either holds a customer back from segments and offers alike.
    pub(crate) fn profiles(&self) -> Vec<&str> {
        let mut profiles: Vec<&str> = Vec::new();
        let from = self.segments.as_ref().map(|s| s.from.as_str());
        for profile in from
            .into_iter()
            .chain(self.offers.as_ref().map(|o| o.from.as_str()))
        {
            if !profiles.contains(&profile) {
                profiles.push(profile);
            }
        }
        profiles
    }

    /// Each profile with the file an error about it points at: its model's SQL, or the
    /// pipeline's YAML for a source.
    pub(crate) fn profile_files(&self) -> Vec<(&str, &std::path::Path)> {
        (self.profiles().into_iter())
            .map(|profile| {
                let model = self.models.iter().find(|m| m.name == profile);
                (
                    profile,
                    model.map_or(self.file(), |m| m.query.path.as_path()),
                )
            })
            .collect()
    }

    /// The key and the profile, when the pipeline decides about customers (segments or offers).
    pub(crate) fn audience(&self) -> Option<(&str, &str)> {
        self.key().zip(self.profile())
    }

    /// Whether a run depends on the run before it (memberships, offers, erasures, features), so that
    /// replacing a date invalidates the dates after it.
    pub(crate) fn carries_state(&self) -> bool {
        self.segments.is_some()
            || self.offers.is_some()
            || self.erasure.is_some()
            || self.models.iter().any(|m| m.feature.is_some())
    }

    pub(crate) fn segment_names(&self) -> Vec<&str> {
        let segments = self.segments.iter().flat_map(|s| &s.list);
        segments.map(|s| s.name.as_str()).collect()
    }

    pub(crate) fn offer_names(&self) -> Vec<&str> {
        let offers = self.offers.iter().flat_map(|o| &o.list);
        offers.map(|o| o.name.as_str()).collect()
    }

    /// Opens the object stores the pipeline's sources and output are on.
    pub(crate) fn open_stores(&self, timeout: std::time::Duration) -> Result<Stores, ObjectsError> {
        let uris = self.sources.values().map(|s| (&s.uri, &s.at));
        let output = (&self.output, &self.output_uri_at);
        Stores::open(uris.chain([output]), &self.stores, timeout)
    }

    /// The published folder of this pipeline.
    pub(crate) fn store(&self, stores: &Stores) -> PipelineStore {
        PipelineStore::new(stores.folder(&self.output), &self.name, self.keep_replaced)
    }

    /// One line counting what the pipeline declares, for `validate`.
    pub fn summary(&self) -> String {
        format!(
            "{} sources, {} features, {} models, {} segments, {} suppressions, {} offers, {} checks",
            self.sources.len(),
            self.models.iter().filter(|m| m.feature.is_some()).count(),
            self.models.iter().filter(|m| m.feature.is_none()).count(),
            self.segments.as_ref().map_or(0, |s| s.list.len()),
            self.suppressions.len(),
            self.offers.as_ref().map_or(0, |o| o.list.len()),
            self.checks.len(),
        )
    }
}

/// Compiles a parsed pipeline; `text` is the file's YAML, used to locate problems.
pub(crate) fn compile(
    spec: &PipelineSpec,
    file: &Path,
    text: &str,
) -> Result<Pipeline, CompileError> {
    let mut c = Compiler::new(file, text);
    c.check_name(&["pipeline"], &spec.pipeline);
    if let Some(channels) = &spec.channels {
        c.declare_channels(channels);
    }
    let params = compile_params(&mut c, spec);
    let sources = sources::compile(&mut c, &spec.sources);
    let source_names: Vec<&str> = spec.sources.keys().map(String::as_str).collect();
    // Declared tables count even when their SQL failed, so one broken file is reported once.
    let tables: Vec<String> = spec
        .sources
        .keys()
        .chain(spec.features.keys())
        .chain(spec.models.keys())
        .cloned()
        .collect();
    let declared_models: Vec<&str> = spec.models.keys().map(String::as_str).collect();
    let mut models = compile_features(&mut c, spec, file, &sources, &declared_models, &params);
    models.extend(models::compile(
        &mut c,
        &spec.models,
        &source_names,
        &tables,
        &params,
    ));
    let model_names: Vec<&str> = spec
        .features
        .keys()
        .chain(spec.models.keys())
        .map(String::as_str)
        .collect();

    let (segments, suppressions, offers) = compile_decisions(&mut c, spec, &params, &model_names);
    check_rule_reads(&mut c, &segments, &suppressions, &tables);
    // Every segment and offer reads its profile: compute it once.
    for profile in [
        &segments.as_ref().map(|s| &s.from),
        &offers.as_ref().map(|o| &o.from),
    ]
    .into_iter()
    .flatten()
    {
        if let Some(model) = models.iter_mut().find(|m| &&m.name == profile) {
            model.materialize = true;
        }
    }
    let erasure = spec
        .erasure
        .as_ref()
        .and_then(|e| erasure::compile(&mut c, e, &source_names, spec.key.as_deref()));
    let output = match Uri::resolve(c.root(), &spec.output.uri) {
        Ok(uri) => Some(uri),
        Err(message) => {
            c.problem(&["output", "uri"], format!("output.uri: {message}"));
            None
        }
    };
    let segment_names = names(segments.iter().flat_map(|s| &s.list).map(|s| &s.name));
    let offer_names = names(offers.iter().flat_map(|o| &o.list).map(|o| &o.name));
    let checkable = Checkable {
        sources: &spec.sources,
        tables: &tables,
        segments: &segment_names,
        offers: &offer_names,
    };
    let checks = checks::compile(&mut c, &spec.checks, &params, &checkable);
    materialize_shared(&mut models, &segments, &suppressions, &checks);
    // An audience's own columns: a profile column of one of these names would replace it in
    // the files, or sit beside it under the same name, which readers refuse.
    const AUDIENCE_COLUMNS: [&str; 5] =
        ["segment", "test_group", "reasons", "channels", "run_date"];
    for (i, column) in spec.output.columns.iter().enumerate() {
        if let Some(own) = AUDIENCE_COLUMNS
            .iter()
            .find(|own| own.eq_ignore_ascii_case(column))
        {
            c.problem(
                &["output", "columns", &i.to_string()],
                format!("output.columns: {column} is the name of an audience's own column ({own}); give the profile's column another name (customer_{own}) and list that"),
            );
        }
    }
    let output_at = c.at(&["output", "columns"]);
    let output_uri_at = c.at(&["output", "uri"]);
    let used: Vec<&url::Url> = (sources.values().map(|s| &s.uri))
        .chain(&output)
        .filter_map(|uri| match uri {
            Uri::Url(url) => Some(url),
            Uri::Local(_) => None,
        })
        .collect();
    let stores = objects::compile(&mut c, &spec.stores, &used);
    if spec.output.keep_replaced.is_some_and(|n| n > 100) {
        c.problem(
            &["output", "keep_replaced"],
            "output.keep_replaced: keep at most 100 replaced runs of a date",
        );
    }
    let root = c.finish().map_err(CompileError::Invalid)?;
    Ok(Pipeline {
        name: spec.pipeline.clone(),
        description: spec.description.clone(),
        file: file.to_owned(),
        root,
        params,
        key: spec.key.clone(),
        sources,
        models,
        segments,
        suppressions,
        offers,
        checks,
        erasure,
        output: output.expect("compile reports a bad output.uri"),
        stores,
        keep_replaced: spec.output.keep_replaced.unwrap_or(1),
        activation_columns: spec.output.columns.clone(),
        output_at,
        output_uri_at,
    })
}

/// Feature tables, as the models that run first: they read sources only.
fn compile_features(
    c: &mut Compiler,
    spec: &PipelineSpec,
    file: &Path,
    sources: &IndexMap<String, Source>,
    models: &[&str],
    params: &Params,
) -> Vec<Model> {
    let compiled = features::compile(c, &spec.features, sources, models, params);
    let mut list = Vec::new();
    for feature in compiled {
        let declared = &spec.features[&feature.name];
        let at = feature.at.clone();
        match Model::from_feature(
            feature,
            declared.description.clone(),
            declared.publish,
            file,
            params,
        ) {
            Ok(model) => list.push(model),
            Err(problems) => {
                for problem in problems {
                    c.problem_at(at.clone(), problem.message);
                }
            }
        }
    }
    list
}

/// A model read by more than one model, rule or check is computed once, as Parquet, instead of
/// once per reader as a view: a check on a view over a year of events would otherwise scan them
/// again.
fn materialize_shared(
    models: &mut [Model],
    segments: &Option<Segments>,
    suppressions: &[Suppression],
    checks: &[Check],
) {
    let rules = named_rules(segments, suppressions).map(|(_, rule)| rule);
    let readers: Vec<&BTreeSet<String>> = models
        .iter()
        .map(Model::reads)
        .chain(rules.filter_map(|rule| match rule {
            Rule::Sql(query) => Some(&query.tables),
            Rule::Conditions(_) => None,
        }))
        .collect();
    let read_by = |name: &str| {
        readers.iter().filter(|r| r.contains(name)).count()
            + checks
                .iter()
                .filter(|c| c.target.table() == Some(name))
                .count()
    };
    let shared: Vec<bool> = models.iter().map(|m| read_by(&m.name) > 1).collect();
    for (model, shared) in models.iter_mut().zip(shared) {
        model.materialize |= shared;
    }
}

/// Segments, suppressions and offers: what the pipeline decides about customers.
fn compile_decisions(
    c: &mut Compiler,
    spec: &PipelineSpec,
    params: &Params,
    models: &[&str],
) -> (Option<Segments>, Vec<Suppression>, Option<Offers>) {
    let segments = spec
        .segments
        .as_ref()
        .map(|s| segments::compile(c, s, params, models));
    let suppression_names: Vec<&str> = spec.suppressions.keys().map(String::as_str).collect();
    let offers = spec.offers.as_ref().and_then(|o| {
        let default_from = spec.segments.as_ref().map(|s| s.from.as_str());
        offers::compile(c, o, params, default_from, models, &suppression_names)
    });
    if let Some(offers) = &offers {
        // Offers are grouped after the segments' global holdout.
        let global = segments.as_ref().and_then(|s| s.holdout.as_ref());
        for offer in &offers.list {
            let path = ["offers", "list", offer.name.as_str()];
            let what = format!("offers.list.{}", offer.name);
            holdouts::check_salts(c, &path, &what, global, offer.holdout.as_ref(), None);
        }
    }
    require_key(c, spec);
    let suppressions = compile_suppressions(c, spec, params, &segments, &offers);
    (segments, suppressions, offers)
}

fn names<'a>(names: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    names.map(String::as_str).collect()
}

fn compile_params(c: &mut Compiler, spec: &PipelineSpec) -> Params {
    match Params::from_spec(&spec.params) {
        Ok(params) => params,
        Err(problems) => {
            for (name, problem) in &problems {
                c.problem(&["params", name], format!("params.{name}: {problem}"));
            }
            // The others stay known, or every SQL file using one would be reported too.
            let good: IndexMap<_, _> = (spec.params.iter())
                .filter(|(name, _)| !problems.iter().any(|(bad, _)| bad == *name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            Params::from_spec(&good)
                .unwrap_or_else(|_| Params::from_spec(&IndexMap::new()).expect("no parameters"))
        }
    }
}

/// Segments and offers decide about customers: the pipeline must say which column is the key.
fn require_key(c: &mut Compiler, spec: &PipelineSpec) {
    if spec.key.is_some() {
        return;
    }
    if spec.segments.is_some() {
        c.problem(
            &["segments"],
            "key: name the column every audience is keyed by (e.g. key: customer_id)",
        );
    }
    if spec.offers.is_some() {
        c.problem(
            &["offers"],
            "key: name the column every decision is keyed by (e.g. key: customer_id)",
        );
    }
}

fn compile_suppressions(
    c: &mut Compiler,
    spec: &PipelineSpec,
    params: &Params,
    segments: &Option<Segments>,
    offers: &Option<Offers>,
) -> Vec<Suppression> {
    let mut channels: Vec<&str> = Vec::new();
    let segment_channels = segments
        .iter()
        .flat_map(|s| &s.list)
        .flat_map(|s| &s.channels);
    let offer_channels = offers
        .iter()
        .flat_map(|o| &o.list)
        .flat_map(|o| &o.channels);
    for channel in segment_channels.chain(offer_channels) {
        if !channels.contains(&channel.as_str()) {
            channels.push(channel);
        }
    }
    let targets = Targets {
        segments: names(segments.iter().flat_map(|s| &s.list).map(|s| &s.name)),
        offers: names(offers.iter().flat_map(|o| &o.list).map(|o| &o.name)),
        channels,
    };
    let has_profile = spec.segments.is_some() || spec.offers.is_some();
    let suppressions = suppressions::compile(c, &spec.suppressions, params, &targets, has_profile);
    if spec.channels.is_none() {
        check_channel_typos(c, segments, offers, &suppressions);
    }
    check_unreached_segments(c, spec, &suppressions);
    suppressions
}

/// Refuses a segment that does not say its channels while suppressions are scoped to channels:
/// those rules (consent among them) hold back no member of a segment without channels, so a
/// `channels:` deleted by mistake would publish members who withdrew their consent. `[]` says
/// it is meant.
fn check_unreached_segments(c: &mut Compiler, spec: &PipelineSpec, suppressions: &[Suppression]) {
    let segments = spec.segments.iter().flat_map(|s| &s.list);
    for (name, _) in segments.filter(|(_, s)| s.channels.is_none()) {
        // The rules that would hold back channels of this segment, had it any.
        let scoped: Vec<&str> = (suppressions.iter())
            .filter(|s| {
                let channels = s.scope.channels();
                matches!(s.scope.segment_channels(name, channels), Some(held) if !held.is_empty())
            })
            .map(|s| s.name.as_str())
            .collect();
        if scoped.is_empty() {
            continue;
        }
        c.problem(
            &["segments", "list", name],
            format!(
                "segments.list.{name}: says no channels, so the suppressions scoped to channels ({}) hold back none of its members; list the channels it is activated through (channels: [email]), or write channels: [] to publish it for no channel",
                scoped.join(", ")
            ),
        );
    }
}

/// Without a declared `channels:`, refuses a segment's or offer's channel that no suppression is
/// scoped to but that is a near miss of one some are (`emial` beside a consent rule for
/// `email`): scopes hold channels back by their exact name, so the typo would reach the
/// customers those rules hold back.
fn check_channel_typos(
    c: &mut Compiler,
    segments: &Option<Segments>,
    offers: &Option<Offers>,
    suppressions: &[Suppression],
) {
    let mut scoped: Vec<String> = Vec::new();
    for suppression in suppressions {
        for channel in suppression.scope.channels() {
            if !scoped.contains(channel) {
                scoped.push(channel.clone());
            }
        }
    }
    let segment_channels = (segments.iter().flat_map(|s| &s.list)).map(|s| {
        (
            ["segments", "list", s.name.as_str(), "channels"],
            &s.channels,
        )
    });
    let offer_channels = (offers.iter().flat_map(|o| &o.list))
        .map(|o| (["offers", "list", o.name.as_str(), "channels"], &o.channels));
    for (path, channels) in segment_channels.chain(offer_channels) {
        for channel in channels.iter().filter(|c| !scoped.contains(c)) {
            let Some(near) = scoped.iter().find(|s| crate::compile::one_slip(channel, s)) else {
                continue;
            };
            let rules: Vec<&str> = (suppressions.iter())
                .filter(|s| s.scope.channels().iter().any(|c| c == near))
                .map(|s| s.name.as_str())
                .collect();
            let problem = format!(
                "{}: no suppression is scoped to \"{channel}\", while {} hold{} back \"{near}\"; did you mean {near}? If {channel} is a channel of its own, list the pipeline's channels under `channels:`",
                path.join("."),
                rules.join(", "),
                if rules.len() == 1 { "s" } else { "" },
            );
            c.problem(&path, problem);
        }
    }
}

/// Every segment's and suppression's rule, with what it belongs to (`segment at_risk`).
fn named_rules<'a>(
    segments: &'a Option<Segments>,
    suppressions: &'a [Suppression],
) -> impl Iterator<Item = (String, &'a Rule)> {
    let segment_rules = segments
        .iter()
        .flat_map(|s| &s.list)
        .map(|s| (format!("segment {}", s.name), &s.rule));
    let suppression_rules = suppressions
        .iter()
        .map(|s| (format!("suppression {}", s.name), &s.rule));
    segment_rules.chain(suppression_rules)
}

/// SQL segments and suppressions read tables like models do.
fn check_rule_reads(
    c: &mut Compiler,
    segments: &Option<Segments>,
    suppressions: &[Suppression],
    tables: &[String],
) {
    for (what, rule) in named_rules(segments, suppressions) {
        if let Rule::Sql(query) = rule {
            models::check_reads(c, &what, query, tables);
        }
    }
}
