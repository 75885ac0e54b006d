//! An explanation in words, for people at a terminal.

use std::fmt::Write;

use super::Explanation;
use crate::engine::ConditionExplanation;
use crate::offers::OfferExplanation;
use crate::segments::SegmentExplanation;

/// `  ✓ name: sql    [column = value, …]`
fn condition_line(c: &ConditionExplanation) -> String {
    let mark = match c.holds {
        Some(true) => "✓",
        Some(false) => "✗",
        None => "✗ (NULL)",
    };
    let values: Vec<String> = c.values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!(
        "  {mark} {}: {}    [{}]\n",
        c.name,
        c.sql,
        values.join(", ")
    )
}

/// `published`: whether a run is published for the date explained.
fn segment(out: &mut String, s: &SegmentExplanation, published: bool) {
    let verdict = match (&s.group, s.member) {
        (Some(group), true) => format!("MEMBER, group {group}"),
        _ if s.qualifies => format!("qualifies but held back by {}", s.held_back_by.join(", ")),
        _ => "not a member".to_string(),
    };
    let published = match (s.published_member, published) {
        (Some(true), _) => ", in the published audience",
        (Some(false), _) => ", not in the published audience",
        // The segment was added to the pipeline after that run.
        (None, true) => ", not in the pipeline when the run was published",
        (None, false) => "",
    };
    let _ = writeln!(
        out,
        "\nsegment {} — {verdict}{published}\n  {}",
        s.name, s.description
    );
    for c in &s.conditions {
        out.push_str(&condition_line(c));
    }
}

/// `published`: whether a run is published for the date explained.
fn offer(out: &mut String, o: &OfferExplanation, published: bool) {
    let status = match (o.published_status.as_deref(), &o.published_rank) {
        (Some(status), Some(rank)) => format!("published: {status}, rank {rank}"),
        (Some("capacity"), None) => {
            "published: lost to capacity, the offer went to customers it scores higher for".into()
        }
        (Some("outranked"), None) => {
            "published: outranked, better offers filled max_per_customer".into()
        }
        (Some(status), None) => format!("published: {status}"),
        (None, _) if published => "not in the pipeline when the run was published".into(),
        (None, _) => "no published decision".to_string(),
    };
    let eligible = if o.eligible {
        "eligible"
    } else {
        "not eligible"
    };
    let _ = writeln!(
        out,
        "\noffer {} — {eligible}, score {} ({status})\n  {}",
        o.name,
        o.score.as_deref().unwrap_or("-"),
        o.description
    );
    for c in &o.conditions {
        out.push_str(&condition_line(c));
    }
    if !o.held_back_by.is_empty() {
        let _ = writeln!(out, "  held back by {}", o.held_back_by.join(", "));
    }
}

impl Explanation {
    /// The explanation in words.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "customer {} on {} ({})\n",
            self.key, self.run_date, self.pipeline
        );
        if self.erased {
            out.push_str(match self.erasure_pending {
                false => "  erased: the customer asked to be forgotten; no run holds anything about them\n",
                true => "  erased: the customer asked to be forgotten; the next run removes them from every published run, which hold them until then\n",
            });
            return out;
        }
        if !self.found {
            out.push_str("  not found in the profile on this date: in no segment\n");
        }
        match &self.published_run {
            Some(run) => {
                let _ = writeln!(out, "  published run: {run}");
            }
            None => out
                .push_str("  no run is published for this date; showing what a run would decide\n"),
        }
        let published = self.published_run.is_some();
        for s in &self.segments {
            segment(&mut out, s, published);
        }
        for o in &self.offers {
            offer(&mut out, o, published);
        }
        if !self.suppressions.is_empty() {
            out.push_str("\nsuppressions that apply:\n");
            for s in &self.suppressions {
                let only = match &s.offer {
                    Some(offer) => format!("; here offer {offer} only"),
                    None => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  {} (holds back from {}{only}): {}",
                    s.name, s.scope, s.reason
                );
                if let Some(detail) = &s.detail {
                    let _ = writeln!(out, "    because: {detail}");
                }
            }
        }
        out
    }
}
