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
        nodes.push((model.name.clone(), kind, model.reads().iter().cloned().collect()));
    }
    nodes
}

pub fn render(pipeline: &Pipeline, format: PlanFormat) -> String {
    let mut out = String::new();
    match format {
        PlanFormat::Text => {
            let _ = writeln!(out, "pipeline {} ({})", pipeline.name, pipeline.file.display());
            let _ = writeln!(out, "\nsources:");
            for source in pipeline.sources.values() {
                let _ = writeln!(
                    out,
                    "  {:<24} {:?} {}",
                    source.name,
                    source.format,
                    source.uri_text
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
