//! `segflow plan`: the DAG and what a run would do, as text, Graphviz dot or Mermaid.

use std::fmt::Write;

use super::Pipeline;
use super::lineage::{NodeKind, lineage};
use crate::sql::{RUN_DATE, Rule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Dot,
    Mermaid,
    /// Every model's query in run order (a feature as the query computing it from all its
    /// events), `$name` parameters unbound.
    Sql,
}

pub(crate) fn render(pipeline: &Pipeline, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => text(pipeline),
        PlanFormat::Dot => dot(pipeline),
        PlanFormat::Mermaid => mermaid(pipeline),
        PlanFormat::Sql => sql(pipeline),
    }
}

fn sql(pipeline: &Pipeline) -> String {
    let mut out = String::new();
    for model in &pipeline.models {
        let kind = if model.feature.is_some() {
            "feature"
        } else {
            "model"
        };
        let text = model.query.text.trim_end().trim_end_matches(';');
        // A query ending in a line comment would comment out its `;`.
        let end = match text.lines().next_back().is_some_and(|l| l.contains("--")) {
            true => "\n;",
            false => ";",
        };
        let _ = writeln!(out, "-- {kind}: {}\n{text}{end}\n", model.name);
        if let Some(state) = model.feature.as_ref().and_then(|f| f.state_query_text()) {
            let _ = writeln!(out, "-- feature state: {}\n{state};\n", model.name);
        }
    }
    out
}

fn text(pipeline: &Pipeline) -> String {
    let mut out = format!("pipeline {} ({})\n", pipeline.name, pipeline.file.display());
    if let Some(description) = &pipeline.description {
        for line in wrap(description, 94) {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("\nsources:\n");
    for source in pipeline.sources.values() {
        let (name, format, uri) = (&source.name, source.format, &source.uri_text);
        let _ = writeln!(out, "  {name:<24} {format:?} {uri}");
    }
    out.push_str("\nmodels, in run order:\n");
    let nodes = lineage(pipeline);
    for (i, model) in pipeline.models.iter().enumerate() {
        let reads: Vec<&str> = model.reads().iter().map(String::as_str).collect();
        let kind = nodes
            .iter()
            .find(|n| n.id == model.name)
            .map_or("view", |n| n.kind.label());
        let _ = writeln!(
            out,
            "  {:>2}. {:<24} {:<19} reads {}",
            i + 1,
            model.name,
            kind,
            reads.join(", ")
        );
    }
    out.push_str("\nparameters:\n");
    for (name, value) in pipeline.params.iter() {
        let shown = if name == RUN_DATE {
            "--date (default: today, UTC)".to_string()
        } else {
            value.to_json().to_string()
        };
        let _ = writeln!(out, "  ${name:<23} {shown}");
    }
    segments_text(&mut out, pipeline);
    offers_text(&mut out, pipeline);
    if !pipeline.checks.is_empty() {
        out.push_str("\nchecks:\n");
        for c in &pipeline.checks {
            let (kind, target) = (c.kind.label(), c.target.describe());
            let _ = writeln!(
                out,
                "  {:<34} {kind} on {target} ({:?})",
                c.name, c.severity
            );
        }
    }
    let _ = writeln!(
        out,
        "\npublishes to {}/{}/runs/run_date=<date>/",
        pipeline.output.to_string().trim_end_matches('/'),
        pipeline.name
    );
    out
}

fn segments_text(out: &mut String, pipeline: &Pipeline) {
    if let Some(segments) = &pipeline.segments {
        let _ = writeln!(out, "\nsegments, from {}:", segments.from);
        if let Some(h) = &segments.holdout {
            let percent = f64::from(h.below) / 100.0;
            let _ = writeln!(out, "  global control: {percent:.2}% (salt {:?})", h.salt);
        }
        for s in &segments.list {
            let rule = match &s.rule {
                Rule::Conditions(c) => {
                    let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
                    texts.join(" AND ")
                }
                Rule::Sql(q) => format!("keys from {}", q.path.display()),
            };
            let _ = writeln!(out, "  {:<26} {rule}", s.name);
        }
    }
    if !pipeline.suppressions.is_empty() {
        out.push_str("\nsuppressions:\n");
        for s in &pipeline.suppressions {
            let _ = writeln!(out, "  {:<26} holds back {}", s.name, s.scope.describe());
        }
    }
}

fn offers_text(out: &mut String, pipeline: &Pipeline) {
    let Some(offers) = &pipeline.offers else {
        return;
    };
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
        let score = o
            .score
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_else(|| o.priority.to_string());
        let _ = writeln!(
            out,
            "  {:<26} score {score}, priority {}{capacity}, via {}",
            o.name,
            o.priority,
            o.channels.join(", ")
        );
    }
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

fn dot(pipeline: &Pipeline) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", pipeline.name);
    for node in lineage(pipeline) {
        let shape = match node.kind {
            NodeKind::Source => "cylinder",
            NodeKind::Suppression => "octagon",
            NodeKind::Check => "diamond",
            _ => "box",
        };
        let tooltip = match &node.description {
            Some(d) => format!("{}: {d}", node.kind.label()),
            None => node.kind.label().to_string(),
        };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\", shape={shape}, tooltip=\"{}\"];",
            dot_text(&node.id),
            dot_text(&node.label),
            dot_text(&tooltip)
        );
        for dep in &node.reads {
            let _ = writeln!(out, "  \"{dep}\" -> \"{}\";", node.id);
        }
    }
    out.push_str("}\n");
    out
}

/// `text` inside a DOT string: a backslash ending a description (`C:\temp\`) would escape the
/// closing quote, and a line break would end the statement.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Node ids are prefixed, since a table may be named like one of Mermaid's keywords (`click`,
/// `style`, `end`), and labels quoted.
fn mermaid(pipeline: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    for node in lineage(pipeline) {
        let (id, label) = (&node.id, node.label.replace('"', "#quot;"));
        let _ = match node.kind {
            NodeKind::Source => writeln!(out, "  n_{id}[(\"{label}\")]"),
            NodeKind::Suppression => writeln!(out, "  n_{id}{{{{\"{label}\"}}}}"),
            NodeKind::Check => writeln!(out, "  n_{id}{{\"{label}\"}}"),
            _ => writeln!(out, "  n_{id}[\"{label}\"]"),
        };
        for dep in &node.reads {
            let _ = writeln!(out, "  n_{dep} --> n_{id}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dot_text;

    #[test]
    fn dot_strings_escape_backslashes_quotes_and_line_breaks() {
        assert_eq!(
            dot_text(r#"Paths like C:\temp\"#),
            r#"Paths like C:\\temp\\"#
        );
        assert_eq!(dot_text("say \"hi\"\nthen go"), r#"say \"hi\"\nthen go"#);
    }
}
