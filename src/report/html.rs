//! `report.html`: one self-contained page per run (inline CSS and SVG, no script, nothing
//! fetched), and `index.html` listing a pipeline's runs.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::svg::{GraphNode, bars, escape, graph, legend, line_chart};
use super::{Manifest, RunStatus};
use crate::checks::Status;
use crate::offers::OfferStats;
use crate::pipeline::{NodeKind, Pipeline, lineage};

/// Everything a run's page shows.
pub(crate) struct ReportInput<'a> {
    pub(crate) manifest: &'a Manifest,
    /// Published runs before this one, oldest first (up to 30).
    pub(crate) history: &'a [Manifest],
    pub(crate) pipeline: &'a Pipeline,
}

const STYLE: &str = r#"
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f9fafb; --ok:#15803d; --bad:#b91c1c; --warn:#b45309; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; color:var(--ink); background:var(--bg); }
header { background:#111827; color:#fff; padding:18px 28px; }
header h1 { margin:0; font-size:20px; font-weight:600; }
header .facts { color:#d1d5db; margin-top:4px; }
.badge { display:inline-block; padding:2px 8px; border-radius:10px; font-size:12px; font-weight:600; margin-left:8px; }
.published { background:#dcfce7; color:var(--ok); } .blocked { background:#fee2e2; color:var(--bad); } .forced { background:#fef3c7; color:var(--warn); }
main { padding:20px 28px; display:grid; grid-template-columns:repeat(auto-fit,minmax(560px,1fr)); gap:18px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 18px; overflow-x:auto; }
section.wide { grid-column:1/-1; }
h2 { font-size:15px; margin:0 0 10px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.passed { color:var(--ok); font-weight:600; } .failed { color:var(--bad); font-weight:600; } .warned { color:var(--warn); font-weight:600; }
.muted { color:var(--muted); }
.chart { width:100%; height:auto; }
.chart .axis, .chart .label { font-size:11px; fill:#4b5563; }
.legend { display:flex; flex-wrap:wrap; gap:12px; font-size:12px; margin:6px 0 2px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; }
.heat td.num { min-width:54px; } .heat td.dark, .heat td.dark .muted { color:#fff; }
.lineage { width:100%; height:auto; }
.lineage .edge { fill:none; stroke:#9ca3af; stroke-width:1.2; }
.lineage .node rect { fill:#eef2ff; stroke:#6366f1; }
.lineage .node text { font-size:11px; fill:#111827; }
.lineage .source rect { fill:#ecfeff; stroke:#0891b2; } .lineage .suppression rect { fill:#fef2f2; stroke:#dc2626; }
.lineage .segment rect { fill:#f0fdf4; stroke:#16a34a; } .lineage .offer rect { fill:#fffbeb; stroke:#d97706; }
.lineage .check rect { fill:#f5f3ff; stroke:#7c3aed; }
.alert { grid-column:1/-1; background:#fef2f2; border:1px solid #fecaca; color:var(--bad); border-radius:8px; padding:12px 18px; }
"#;

/// Milliseconds as seconds with one decimal.
fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn num(n: u64) -> String {
    super::group_digits(n, '\u{202f}')
}

fn page(title: &str, header: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><header>{header}</header><main>{body}</main></body></html>\n",
        escape(title)
    )
}

/// The page of one run (published or blocked).
pub(crate) fn render(input: &ReportInput) -> String {
    let m = input.manifest;
    let (status, class) = match (m.status, m.forced) {
        (RunStatus::Blocked, _) => ("blocked: nothing published", "blocked"),
        (RunStatus::Published, true) => ("published past failed checks (--force)", "forced"),
        (RunStatus::Published, false) => ("published", "published"),
    };
    let took: u64 = m.steps.iter().map(|s| s.elapsed_ms).sum();
    let header = format!(
        "<h1>{} · {}<span class=\"badge {class}\">{status}</span></h1><div class=\"facts\">run {} · segflow {} · started {} · {:.1} s · compared with {}</div>",
        escape(&m.pipeline),
        m.run_date,
        escape(&m.run_id),
        escape(&m.segflow_version),
        m.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        took as f64 / 1000.0,
        m.previous_run
            .map_or("no earlier run".to_string(), |d| d.to_string()),
    );
    let mut body = String::new();
    if m.status == RunStatus::Blocked {
        body += &blocked(m);
    }
    body += &sizes(m, input.history);
    body += &migration(m);
    body += &overlap(m);
    body += &suppressions(m);
    body += &offers(m, input.history.last(), input.pipeline);
    body += &checks(m);
    body += &lineage_section(input.pipeline);
    body += &facts(m);
    page(&format!("{} {}", m.pipeline, m.run_date), &header, &body)
}

fn blocked(m: &Manifest) -> String {
    let lines: Vec<String> = m
        .checks
        .iter()
        .filter(|c| c.blocks())
        .map(|c| format!("<li>{}</li>", escape(&c.line())))
        .collect();
    format!(
        "<div class=\"alert\"><strong>Nothing was published for {}.</strong> The previous published run stays in place. A quality gate failed:<ul>{}</ul></div>",
        m.run_date,
        lines.join("")
    )
}

fn sizes(m: &Manifest, history: &[Manifest]) -> String {
    if m.segments.is_empty() {
        return String::new();
    }
    let runs: Vec<&Manifest> = history.iter().chain([m]).collect();
    let labels: Vec<String> = runs.iter().map(|r| r.run_date.to_string()).collect();
    let series: Vec<(String, Vec<Option<u64>>)> = m
        .segments
        .iter()
        .map(|s| {
            let values = runs
                .iter()
                .map(|r| r.segments.iter().find(|x| x.name == s.name).map(|x| x.size))
                .collect();
            (s.name.clone(), values)
        })
        .collect();
    let names: Vec<String> = m.segments.iter().map(|s| s.name.clone()).collect();
    let mut groups: Vec<&String> = m.segments.iter().flat_map(|s| s.groups.keys()).collect();
    groups.sort();
    groups.dedup();
    let mut table = String::from("<table><tr><th>segment</th><th class=\"num\">members</th>");
    for g in &groups {
        let _ = write!(table, "<th class=\"num\">{}</th>", escape(g));
    }
    table += "<th class=\"num\">added</th><th class=\"num\">removed</th></tr>";
    for s in &m.segments {
        let _ = write!(
            table,
            "<tr><td title=\"{}\">{}</td><td class=\"num\" data-segment=\"{}\" data-size=\"{}\">{}</td>",
            escape(&s.description),
            escape(&s.name),
            escape(&s.name),
            s.size,
            num(s.size)
        );
        for g in &groups {
            let n = s.groups.get(*g).copied().unwrap_or(0);
            let _ = write!(table, "<td class=\"num\">{}</td>", num(n));
        }
        let _ = write!(
            table,
            "<td class=\"num\">+{}</td><td class=\"num\">−{}</td></tr>",
            num(s.added),
            num(s.removed)
        );
    }
    table += "</table>";
    format!(
        "<section class=\"wide\"><h2>Audience sizes over the last {} runs</h2>{}{}{table}</section>",
        runs.len(),
        legend(&names),
        line_chart(&labels, &series)
    )
}

/// A matrix of counts as a heat map: rows × columns, shaded by value.
fn heat(rows: &[String], columns: &[String], cell: impl Fn(&str, &str) -> (u64, String)) -> String {
    let max = rows
        .iter()
        .flat_map(|r| columns.iter().map(|c| cell(r, c).0))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut out = String::from("<table class=\"heat\"><tr><th></th>");
    for c in columns {
        let _ = write!(out, "<th class=\"num\">{}</th>", escape(c));
    }
    out += "</tr>";
    for r in rows {
        let _ = write!(out, "<tr><th>{}</th>", escape(r));
        for c in columns {
            let (value, text) = cell(r, c);
            let alpha = 0.08 + 0.72 * (value as f64 / max);
            let shade = if value == 0 {
                "transparent".to_string()
            } else {
                format!("rgba(37,99,235,{alpha:.2})")
            };
            let dark = if value > 0 && alpha > 0.5 {
                " dark"
            } else {
                ""
            };
            let _ = write!(
                out,
                "<td class=\"num{dark}\" style=\"background:{shade}\">{text}</td>"
            );
        }
        out += "</tr>";
    }
    out + "</table>"
}

fn migration(m: &Manifest) -> String {
    if m.migration.is_empty() {
        return String::new();
    }
    let mut names: Vec<String> = m
        .migration
        .iter()
        .flat_map(|f| [f.from_segment.clone(), f.to_segment.clone()])
        .collect();
    names.sort();
    names.dedup();
    let count = |from: &str, to: &str| {
        let n = m
            .migration
            .iter()
            .find(|f| f.from_segment == from && f.to_segment == to)
            .map_or(0, |f| f.customers);
        (n, if n == 0 { String::new() } else { num(n) })
    };
    format!(
        "<section class=\"wide\"><h2>Migration since {} <span class=\"muted\">(rows: from, columns: to)</span></h2>{}</section>",
        m.previous_run
            .map_or("the start".to_string(), |d| d.to_string()),
        heat(&names, &names, count)
    )
}

fn overlap(m: &Manifest) -> String {
    if m.segment_overlap.is_empty() {
        return String::new();
    }
    let names: Vec<String> = m.segments.iter().map(|s| s.name.clone()).collect();
    let size = |s: &str| {
        m.segments
            .iter()
            .find(|x| x.name == s)
            .map_or(0, |x| x.size)
    };
    let count = |a: &str, b: &str| {
        let n = m
            .segment_overlap
            .iter()
            .find(|o| o.segment == a && o.other == b)
            .map_or(0, |o| o.customers);
        let share = if size(a) == 0 {
            0.0
        } else {
            n as f64 * 100.0 / size(a) as f64
        };
        let text = if n == 0 {
            String::new()
        } else {
            // A few customers of a large segment are not none of them.
            let share = match share < 1.0 {
                true => "&lt;1".to_string(),
                false => format!("{share:.0}"),
            };
            format!("{}<br><span class=\"muted\">{share}%</span>", num(n))
        };
        (if a == b { 0 } else { n }, text)
    };
    format!(
        "<section class=\"wide\"><h2>Overlap today <span class=\"muted\">(customers in both; share of the row's segment)</span></h2>{}</section>",
        heat(&names, &names, count)
    )
}

fn suppressions(m: &Manifest) -> String {
    if m.suppressions.is_empty() {
        return String::new();
    }
    let rows: Vec<(String, Vec<(String, u64)>)> = m
        .suppressions
        .iter()
        .map(|s| (s.name.clone(), vec![("held back".to_string(), s.held_back)]))
        .collect();
    let mut table = String::from(
        "<table><tr><th>rule</th><th>holds back</th><th>reason</th><th class=\"num\">matched</th><th class=\"num\">held back</th></tr>",
    );
    for s in &m.suppressions {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\" data-suppression=\"{}\" data-held=\"{}\">{}</td></tr>",
            escape(&s.name),
            escape(&s.scope),
            escape(&s.reason),
            num(s.matched),
            escape(&s.name),
            s.held_back,
            num(s.held_back)
        );
    }
    table += "</table>";
    format!(
        "<section class=\"wide\"><h2>Suppressions <span class=\"muted\">(customer × segment or offer held back, per rule)</span></h2>{}{table}</section>",
        bars(&rows, 640.0, num)
    )
}

fn offers(m: &Manifest, previous: Option<&Manifest>, pipeline: &Pipeline) -> String {
    if m.offers.is_empty() {
        return String::new();
    }
    let parts = ["assigned", "suppressed", "lost to capacity", "outranked"];
    let rows: Vec<(String, Vec<(String, u64)>)> = m
        .offers
        .iter()
        .map(|o| {
            let values = [o.assigned, o.suppressed, o.capped, o.outranked];
            let named = parts.iter().zip(values).map(|(p, v)| (p.to_string(), v));
            (o.name.clone(), named.collect())
        })
        .collect();
    // As the run had it; a manifest older than the field has the pipeline's.
    let capacity = |o: &OfferStats| {
        o.capacity.unwrap_or_else(|| {
            let offers = pipeline.offers.iter().flat_map(|o| &o.list);
            offers.filter(|p| p.name == o.name).find_map(|p| p.capacity)
        })
    };
    let mut table = String::from(
        "<table><tr><th>offer</th><th class=\"num\">eligible</th><th class=\"num\">assigned</th><th class=\"num\">suppressed</th><th class=\"num\">lost to capacity</th><th class=\"num\">outranked</th><th class=\"num\">capacity used</th><th class=\"num\">change</th></tr>",
    );
    for o in &m.offers {
        let used = match capacity(o) {
            Some(cap) if cap > 0 => format!(
                "{:.0}% of {}",
                o.assigned as f64 * 100.0 / cap as f64,
                num(cap)
            ),
            Some(_) => "0 of 0".into(),
            None => "no limit".into(),
        };
        let change = previous
            .and_then(|p| p.offers.iter().find(|x| x.name == o.name))
            .map_or("—".to_string(), |p| {
                format!("{:+}", o.assigned as i64 - p.assigned as i64)
            });
        let _ = write!(
            table,
            "<tr><td title=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\" data-offer=\"{}\" data-assigned=\"{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{used}</td><td class=\"num\">{change}</td></tr>",
            escape(&o.description),
            escape(&o.name),
            num(o.eligible),
            escape(&o.name),
            o.assigned,
            num(o.assigned),
            num(o.suppressed),
            num(o.capped),
            num(o.outranked)
        );
    }
    table += "</table>";
    let names: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
    format!(
        "<section class=\"wide\"><h2>Offers</h2>{}{}{table}</section>",
        legend(&names),
        bars(&rows, 640.0, num)
    )
}

fn checks(m: &Manifest) -> String {
    if m.checks.is_empty() {
        return String::new();
    }
    let mut table = String::from(
        "<table><tr><th>status</th><th>check</th><th>on</th><th>kind</th><th class=\"num\">failing</th><th class=\"num\">of</th><th>threshold</th><th>found</th></tr>",
    );
    for c in &m.checks {
        let (text, class) = match (c.status, c.blocks()) {
            (Status::Passed, _) => ("passed", "passed"),
            (Status::Failed, true) => ("failed", "failed"),
            (Status::Failed, false) => ("warning", "warned"),
        };
        let _ = write!(
            table,
            "<tr><td class=\"{class}\" data-check=\"{}\" data-status=\"{text}\">{text}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            escape(&c.name),
            escape(&c.target),
            escape(&c.kind),
            c.failing.map_or(String::new(), num),
            c.total.map_or(String::new(), num),
            escape(&c.threshold),
            escape(&c.message)
        );
    }
    table += "</table>";
    format!("<section class=\"wide\"><h2>Checks and circuit breakers</h2>{table}</section>")
}

fn lineage_section(pipeline: &Pipeline) -> String {
    let nodes: Vec<GraphNode> = lineage(pipeline)
        .into_iter()
        .map(|n| GraphNode {
            kind: match n.kind {
                NodeKind::Source => "source",
                NodeKind::Feature
                | NodeKind::View
                | NodeKind::MaterializedModel
                | NodeKind::PublishedModel => "model",
                NodeKind::Suppression => "suppression",
                NodeKind::Segment => "segment",
                NodeKind::Offer => "offer",
                NodeKind::Check => "check",
            },
            id: n.id,
            label: n.label,
            reads: n.reads,
        })
        .collect();
    format!(
        "<section class=\"wide\"><h2>Lineage <span class=\"muted\">(sources → models → suppressions → segments and offers → checks)</span></h2>{}</section>",
        graph(&nodes)
    )
}

fn facts(m: &Manifest) -> String {
    let mut out = String::from(
        "<section><h2>Inputs</h2><table><tr><th>source</th><th>uri</th><th class=\"num\">files</th><th class=\"num\">MiB</th></tr>",
    );
    for i in &m.inputs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"muted\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td></tr>",
            escape(&i.name),
            escape(&i.uri),
            i.files,
            i.bytes as f64 / 1048576.0
        );
    }
    out += "</table><h2 style=\"margin-top:14px\">Parameters</h2><table>";
    let params: BTreeMap<_, _> = m.parameters.iter().collect();
    for (name, value) in params {
        let _ = write!(
            out,
            "<tr><td>${}</td><td>{}</td></tr>",
            escape(name),
            escape(&value.to_string())
        );
    }
    let _ = match &m.invalid_identifiers {
        Some(invalid) => write!(
            out,
            "</table><p class=\"muted\">Identifiers that could not be normalized: {} e-mails, {} phone numbers.</p></section>",
            invalid.emails, invalid.phones
        ),
        None => write!(
            out,
            "</table><p class=\"muted\">Identifiers that could not be normalized: not counted (the run stopped before normalizing any, or a cluster's executors normalized them).</p></section>"
        ),
    };
    out += "<section><h2>Steps</h2>";
    let steps: Vec<(String, Vec<(String, u64)>)> = m
        .steps
        .iter()
        .map(|s| (s.step.clone(), vec![("ms".to_string(), s.elapsed_ms)]))
        .collect();
    out += &bars(&steps, 300.0, seconds);
    out += &features(m);
    out += "<table><tr><th>output</th><th class=\"num\">rows</th><th class=\"num\">files</th></tr>";
    for o in &m.outputs {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\" data-output=\"{}\" data-rows=\"{}\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&o.path),
            escape(&o.path),
            o.rows,
            num(o.rows),
            o.files.len()
        );
    }
    out + "</table></section>"
}

/// How each feature table was brought up to date: from the previous run's state and the days
/// read, or from all events and why.
fn features(m: &Manifest) -> String {
    let mut out = String::new();
    for f in &m.features {
        let how = match (&f.from_run, f.days_read.first(), f.days_read.last()) {
            (Some(from), Some(first), Some(last)) => {
                format!("incremental from the run of {from}: read the events of {first} to {last}")
            }
            _ => format!(
                "computed from all events ({})",
                f.reason.as_deref().unwrap_or("full refresh")
            ),
        };
        // None written: a feature without windows computed from all its events keeps no days.
        let days = match f.days_ms {
            0 => String::new(),
            ms => format!(", per-day partials {}", seconds(ms)),
        };
        let _ = write!(
            out,
            "<p class=\"muted\" data-feature=\"{}\">feature {}: {}, {} rows (totals {}{days})</p>",
            escape(&f.feature),
            escape(&f.feature),
            escape(&how),
            num(f.rows),
            seconds(f.totals_ms),
        );
    }
    out
}

/// One line of the index: a run (or a blocked attempt) of a date.
pub(crate) struct IndexEntry {
    pub(crate) manifest: Manifest,
    /// The run's page, relative to the pipeline's folder.
    pub(crate) report: String,
}

/// `index.html`: the pipeline's runs, newest first, with their status and sizes.
pub(crate) fn index(pipeline: &str, entries: &[IndexEntry]) -> String {
    let mut table = String::from(
        "<section class=\"wide\"><table><tr><th>run date</th><th>status</th><th class=\"num\" title=\"audience rows: a customer in two segments counts twice\">memberships</th><th class=\"num\">offers assigned</th><th>checks</th><th>run</th></tr>",
    );
    for e in entries {
        let m = &e.manifest;
        let (status, class) = match (m.status, m.forced) {
            (RunStatus::Blocked, _) => ("blocked", "failed"),
            (RunStatus::Published, true) => ("published (forced)", "warned"),
            (RunStatus::Published, false) => ("published", "passed"),
        };
        let members: u64 = m.segments.iter().map(|s| s.size).sum();
        let assigned: u64 = m.offers.iter().map(|o| o.assigned).sum();
        // As the run's page says them: a failed check of severity `warn` is a warning.
        let failing = |blocks: bool| {
            (m.checks.iter())
                .filter(|c| c.status == Status::Failed && c.blocks() == blocks)
                .count()
        };
        let warnings = match failing(false) {
            0 => String::new(),
            1 => ", 1 warning".to_string(),
            n => format!(", {n} warnings"),
        };
        let _ = write!(
            table,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"{class}\">{status}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{} of {} failed{warnings}</td><td class=\"muted\">{}</td></tr>",
            escape(&e.report),
            m.run_date,
            num(members),
            num(assigned),
            failing(true),
            m.checks.len(),
            escape(&m.run_id)
        );
    }
    table += "</table></section>";
    let header = format!("<h1>{} · runs</h1>", escape(pipeline));
    page(&format!("{pipeline} runs"), &header, &table)
}
