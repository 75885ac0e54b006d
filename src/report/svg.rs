//! Small charts drawn as inline SVG: no script, no network, readable in any browser and as a
//! file attached to an e-mail.

use std::fmt::Write;

/// Colours for series, distinguishable and readable on white.
pub(super) const PALETTE: [&str; 10] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d",
];

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line per series over the same x labels (dates); `None` where a series has no value.
pub(super) fn line_chart(labels: &[String], series: &[(String, Vec<Option<u64>>)]) -> String {
    let (width, height, left, bottom, top, right) = (880.0, 260.0, 56.0, 40.0, 12.0, 16.0);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let x = |i: usize| left + plot_w * (i as f64) / ((labels.len().max(2) - 1) as f64);
    let y = |v: u64| top + plot_h * (1.0 - v as f64 / max);
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="audience sizes over time">"#
    );
    for step in 0..=4 {
        let value = (max * f64::from(step) / 4.0).round() as u64;
        let _ = write!(
            out,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#e5e7eb"/><text x="{}" y="{}" class="axis" text-anchor="end">{value}</text>"##,
            width - right,
            left - 6.0,
            y(value) + 4.0,
            y = y(value),
        );
    }
    let every = labels.len().div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate().filter(|(i, _)| i % every == 0) {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
            x(i),
            height - bottom + 18.0,
            escape(label.get(5..).unwrap_or(label))
        );
    }
    for (n, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[n % PALETTE.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(name)
        );
        if let Some((i, Some(v))) = values.iter().enumerate().next_back() {
            let _ = write!(
                out,
                r#"<circle cx="{}" cy="{}" r="3" fill="{color}"/>"#,
                x(i),
                y(*v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// A horizontal bar per row, scaled to the largest; `parts` stack within a bar. `bar_w` is the
/// longest bar's width in pixels (the chart is drawn at its own size, so text stays readable in
/// narrow sections); `total` writes a bar's figure.
pub(super) fn bars(
    rows: &[(String, Vec<(String, u64)>)],
    bar_w: f64,
    total: impl Fn(u64) -> String,
) -> String {
    let max = rows
        .iter()
        .map(|(_, parts)| parts.iter().map(|(_, v)| v).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let longest = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let (label_w, row_h) = (16.0 + 6.6 * longest as f64, 24.0);
    let height = row_h * rows.len() as f64 + 8.0;
    let width = label_w + bar_w + 70.0;
    let mut out = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {height}" style="max-width:{width}px" role="img">"#
    );
    for (i, (label, parts)) in rows.iter().enumerate() {
        let top = 4.0 + row_h * i as f64;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="label" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            top + 15.0,
            escape(label)
        );
        let mut left = label_w;
        for (n, (part, value)) in parts.iter().enumerate() {
            let w = bar_w * (*value as f64) / max;
            let _ = write!(
                out,
                r#"<rect x="{left:.1}" y="{}" width="{w:.1}" height="16" fill="{}"><title>{}: {value}</title></rect>"#,
                top + 3.0,
                PALETTE[n % PALETTE.len()],
                escape(part)
            );
            left += w;
        }
        let sum: u64 = parts.iter().map(|(_, v)| v).sum();
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" class="label">{}</text>"#,
            left + 6.0,
            top + 15.0,
            total(sum)
        );
    }
    out.push_str("</svg>");
    out
}

/// A legend for series drawn in palette order.
pub(super) fn legend(names: &[String]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (n, name) in names.iter().enumerate() {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            PALETTE[n % PALETTE.len()],
            escape(name)
        );
    }
    out.push_str("</div>");
    out
}

/// A node of a drawn graph: id, label, kind (a CSS class) and the ids it reads.
pub(super) struct GraphNode {
    pub(super) id: String,
    pub(super) label: String,
    pub(super) kind: &'static str,
    pub(super) reads: Vec<String>,
}

/// A left-to-right drawing of a DAG: each node in the column of its longest path from a node
/// that reads nothing.
pub(super) fn graph(nodes: &[GraphNode]) -> String {
    let index = |id: &str| nodes.iter().position(|n| n.id == id);
    let mut depth = vec![0usize; nodes.len()];
    // Nodes come in run order, so one pass settles every depth.
    for (i, node) in nodes.iter().enumerate() {
        depth[i] = node
            .reads
            .iter()
            .filter_map(|r| index(r))
            .map(|j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let columns = depth.iter().copied().max().unwrap_or(0) + 1;
    // Each column as wide as its longest label, so no name is cut.
    let (gap, row_h, box_h) = (36.0, 34.0, 24.0);
    let mut box_w = vec![0.0f64; columns];
    for (i, d) in depth.iter().enumerate() {
        box_w[*d] = box_w[*d].max(16.0 + 6.6 * nodes[i].label.chars().count() as f64);
    }
    let mut col_x = vec![12.0; columns];
    for c in 1..columns {
        col_x[c] = col_x[c - 1] + box_w[c - 1] + gap;
    }
    let mut rows = vec![0usize; columns];
    let mut at = vec![(0.0, 0.0); nodes.len()];
    for (i, d) in depth.iter().enumerate() {
        at[i] = (col_x[*d], 10.0 + row_h * rows[*d] as f64);
        rows[*d] += 1;
    }
    let height = 20.0 + row_h * rows.iter().copied().max().unwrap_or(1) as f64;
    let width = col_x[columns - 1] + box_w[columns - 1] + 12.0;
    let mut out = format!(
        r#"<svg class="lineage" viewBox="0 0 {width} {height}" role="img" aria-label="lineage">"#
    );
    for (i, node) in nodes.iter().enumerate() {
        for j in node.reads.iter().filter_map(|r| index(r)) {
            let (x1, y1) = (at[j].0 + box_w[depth[j]], at[j].1 + box_h / 2.0);
            let (x2, y2) = (at[i].0, at[i].1 + box_h / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                out,
                r#"<path d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}" class="edge"/>"#
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = at[i];
        let _ = write!(
            out,
            r#"<g class="node {}"><rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{box_h}" rx="5"/><text x="{:.1}" y="{:.1}">{}</text><title>{}: {}</title></g>"#,
            node.kind,
            box_w[depth[i]],
            x + 8.0,
            y + 16.0,
            escape(&node.label),
            node.kind,
            escape(&node.label)
        );
    }
    out.push_str("</svg>");
    out
}
