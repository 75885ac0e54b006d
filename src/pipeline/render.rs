//! `segflow plan`: the DAG and what a run would do, as text, Graphviz dot or Mermaid.

use std::fmt::Write;

use super::Pipeline;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Dot,
    Mermaid,
}

/// Each node of the DAG with the nodes it reads, in run order (sources first).
fn edges(pipeline: &Pipeline) -> Vec<(String, &'static str, Vec<String>)> {
    let mut nodes: Vec<(String, &'static str, Vec<String>)> = pipeline
        .sources
        .keys()
        .map(|name| (name.clone(), "source", Vec::new()))
        .collect();
    for model in &pipeline.models {
        let kind = if model.publish {
            "published model"
        } else if model.materialize {
            "materialized model"
        } else {
            "view"
        };
        nodes.push((
            model.name.clone(),
            kind,
            model.reads().iter().cloned().collect(),
        ));
    }
    if let Some(segments) = &pipeline.segments {
        for s in &segments.list {
            let mut reads = vec![segments.from.clone()];
            if let super::Rule::Sql(q) = &s.rule {
                reads = q.tables.iter().cloned().collect();
            }
            nodes.push((format!("segment_{}", s.name), "segment", reads));
        }
    }
    if let Some(offers) = &pipeline.offers {
        nodes.push(("offers".to_string(), "offers", vec![offers.from.clone()]));
    }
    nodes
}

pub fn render(pipeline: &Pipeline, format: PlanFormat) -> String {
    let mut out = String::new();
    match format {
        PlanFormat::Text => {
            let _ = writeln!(
                out,
                "pipeline {} ({})",
                pipeline.name,
                pipeline.file.display()
            );
            let _ = writeln!(out, "\nsources:");
            for source in pipeline.sources.values() {
                let _ = writeln!(
                    out,
                    "  {:<24} {:?} {}",
                    source.name, source.format, source.uri_text
                );
            }
            let _ = writeln!(out, "\nmodels, in run order:");
            for (i, model) in pipeline.models.iter().enumerate() {
                let reads: Vec<&str> = model.reads().iter().map(String::as_str).collect();
                let kind = edges(pipeline)
                    .into_iter()
                    .find(|(n, _, _)| *n == model.name)
                    .map_or("view", |(_, k, _)| k);
                let _ = writeln!(
                    out,
                    "  {:>2}. {:<24} {:<19} reads {}",
                    i + 1,
                    model.name,
                    kind,
                    reads.join(", ")
                );
            }
            let _ = writeln!(out, "\nparameters:");
            for (name, value) in pipeline.params.iter() {
                let shown = if name == super::params::RUN_DATE {
                    "--date (default: today, UTC)".to_string()
                } else {
                    value.to_json().to_string()
                };
                let _ = writeln!(out, "  ${name:<23} {shown}");
            }
            if let Some(segments) = &pipeline.segments {
                let _ = writeln!(out, "\nsegments, from {}:", segments.from);
                if let Some(h) = &segments.holdout {
                    let _ = writeln!(
                        out,
                        "  global control: {:.2}% (salt {:?})",
                        f64::from(h.below) / 100.0,
                        h.salt
                    );
                }
                for s in &segments.list {
                    let rule = match &s.rule {
                        super::Rule::Conditions(c) => c
                            .iter()
                            .map(|c| c.text.clone())
                            .collect::<Vec<_>>()
                            .join(" AND "),
                        super::Rule::Sql(q) => format!("keys from {}", q.path.display()),
                    };
                    let _ = writeln!(out, "  {:<26} {rule}", s.name);
                }
            }
            if !pipeline.suppressions.is_empty() {
                let _ = writeln!(out, "\nsuppressions:");
                for s in &pipeline.suppressions {
                    let _ = writeln!(out, "  {:<26} holds back {}", s.name, s.scope.describe());
                }
            }
            if let Some(offers) = &pipeline.offers {
                let _ = writeln!(
                    out,
                    "\noffers, from {} (at most {} per customer):",
                    offers.from, offers.max_per_customer
                );
                for o in &offers.list {
                    let capacity = o
                        .capacity
                        .map(|c| format!(", capacity {c}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {:<26} score {}, priority {}{capacity}, via {}",
                        o.name,
                        o.score_text
                            .clone()
                            .unwrap_or_else(|| o.priority.to_string()),
                        o.priority,
                        o.channels.join(", ")
                    );
                }
            }
            if !pipeline.checks.is_empty() {
                let _ = writeln!(out, "\nchecks:");
                for c in &pipeline.checks {
                    let _ = writeln!(
                        out,
                        "  {:<34} {} on {} ({:?})",
                        c.name,
                        c.kind.label(),
                        c.target.describe(),
                        c.severity
                    );
                }
            }
            let _ = writeln!(
                out,
                "\npublishes to {}/{}/runs/run_date=<date>/",
                pipeline.output.to_string().trim_end_matches('/'),
                pipeline.name
            );
        }
        PlanFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{\n  rankdir=LR;", pipeline.name);
            for (name, kind, reads) in edges(pipeline) {
                let shape = if kind == "source" { "cylinder" } else { "box" };
                let _ = writeln!(out, "  \"{name}\" [shape={shape}, tooltip=\"{kind}\"];");
                for dep in reads {
                    let _ = writeln!(out, "  \"{dep}\" -> \"{name}\";");
                }
            }
            out.push_str("}\n");
        }
        PlanFormat::Mermaid => {
            out.push_str("flowchart LR\n");
            for (name, kind, reads) in edges(pipeline) {
                if kind == "source" {
                    let _ = writeln!(out, "  {name}[({name})]");
                } else {
                    let _ = writeln!(out, "  {name}[{name}]");
                }
                for dep in reads {
                    let _ = writeln!(out, "  {dep} --> {name}");
                }
            }
        }
    }
    out
}
