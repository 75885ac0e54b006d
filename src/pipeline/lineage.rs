//! The pipeline as a graph: sources → models → suppressions → segments and offers → checks.
//! `segflow plan --format dot|mermaid` draws it.

use super::Pipeline;
use crate::checks::Target;
use crate::sql::Rule;
use crate::suppressions::Suppression;

/// One node of the lineage and the nodes it reads.
pub(crate) struct Node {
    /// A unique id: the table name for sources and models, `kind_name` for the others.
    pub(crate) id: String,
    pub(crate) kind: NodeKind,
    pub(crate) label: String,
    pub(crate) description: Option<String>,
    pub(crate) reads: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Source,
    /// A declared feature table, maintained day by day.
    Feature,
    View,
    MaterializedModel,
    PublishedModel,
    Suppression,
    Segment,
    Offer,
    Check,
}

impl NodeKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            NodeKind::Source => "source",
            NodeKind::Feature => "feature",
            NodeKind::View => "view",
            NodeKind::MaterializedModel => "materialized model",
            NodeKind::PublishedModel => "published model",
            NodeKind::Suppression => "suppression",
            NodeKind::Segment => "segment",
            NodeKind::Offer => "offer",
            NodeKind::Check => "check",
        }
    }
}

/// What a rule reads: its query's tables, or the profile its conditions read.
fn rule_reads(rule: &Rule, profiles: &[&str]) -> Vec<String> {
    match rule {
        Rule::Sql(query) => query.tables.iter().cloned().collect(),
        Rule::Conditions(_) => profiles.iter().map(|p| p.to_string()).collect(),
    }
}

fn suppression_id(s: &Suppression) -> String {
    format!("suppression_{}", s.name)
}

/// Every node in run order: sources, models, suppressions, segments, offers, checks.
pub(crate) fn lineage(pipeline: &Pipeline) -> Vec<Node> {
    let mut nodes: Vec<Node> = pipeline
        .sources
        .values()
        .map(|s| Node {
            id: s.name.clone(),
            kind: NodeKind::Source,
            label: s.name.clone(),
            description: s.description.clone(),
            reads: Vec::new(),
        })
        .collect();
    for model in &pipeline.models {
        let kind = match (model.publish, model.materialize) {
            _ if model.feature.is_some() => NodeKind::Feature,
            (true, _) => NodeKind::PublishedModel,
            (false, true) => NodeKind::MaterializedModel,
            (false, false) => NodeKind::View,
        };
        nodes.push(Node {
            id: model.name.clone(),
            kind,
            label: model.name.clone(),
            description: model.description.clone(),
            reads: model.reads().iter().cloned().collect(),
        });
    }
    let profiles = pipeline.profiles();
    for s in &pipeline.suppressions {
        nodes.push(Node {
            id: suppression_id(s),
            kind: NodeKind::Suppression,
            label: s.name.clone(),
            description: Some(s.reason.clone()),
            reads: rule_reads(&s.rule, &profiles),
        });
    }
    nodes.extend(decisions(pipeline));
    nodes.extend(pipeline.checks.iter().map(|check| {
        let reads = match &check.target {
            Target::Source(t) | Target::Model(t) => vec![t.clone()],
            Target::Audience(one) => named("segment", pipeline.segment_names(), one),
            Target::Offer(one) => named("offer", pipeline.offer_names(), one),
        };
        Node {
            id: format!("check_{}", check.name),
            kind: NodeKind::Check,
            label: check.name.clone(),
            description: Some(format!(
                "{} on {}",
                check.kind.label(),
                check.target.describe()
            )),
            reads,
        }
    }));
    nodes
}

/// Segments and offers, each reading its profile (or its query's tables) and the
/// suppressions that can hold it back.
fn decisions(pipeline: &Pipeline) -> Vec<Node> {
    let mut nodes = Vec::new();
    let held_by = |matches: &dyn Fn(&Suppression) -> bool| -> Vec<String> {
        pipeline
            .suppressions
            .iter()
            .filter(|s| matches(s))
            .map(suppression_id)
            .collect()
    };
    if let Some(segments) = &pipeline.segments {
        for s in &segments.list {
            let mut reads = rule_reads(&s.rule, &[segments.from.as_str()]);
            reads.extend(held_by(&|rule| {
                rule.scope
                    .segment_channels(&s.name, &s.channels)
                    .is_none_or(|channels| !channels.is_empty())
            }));
            nodes.push(Node {
                id: format!("segment_{}", s.name),
                kind: NodeKind::Segment,
                label: s.name.clone(),
                description: Some(s.description.clone()),
                reads,
            });
        }
    }
    if let Some(offers) = &pipeline.offers {
        for o in &offers.list {
            let mut reads = vec![offers.from.clone()];
            reads.extend(held_by(&|rule| {
                o.suppressed_by.contains(&rule.name)
                    || rule
                        .scope
                        .offer_channels(&o.name, &o.channels)
                        .is_none_or(|channels| !channels.is_empty())
            }));
            nodes.push(Node {
                id: format!("offer_{}", o.name),
                kind: NodeKind::Offer,
                label: o.name.clone(),
                description: Some(o.description.clone()),
                reads,
            });
        }
    }
    nodes
}

/// Node ids of one (or every) segment or offer, for the checks that read them.
fn named(prefix: &str, names: Vec<&str>, one: &Option<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| one.as_deref().is_none_or(|o| o == *n))
        .map(|n| format!("{prefix}_{n}"))
        .collect()
}
