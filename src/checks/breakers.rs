//! Circuit breakers: an audience or an offer that shrank or grew too much since the previous
//! published run stops the run before anything is published.

use super::compile::Breaker;
use super::{Check, CheckKind, CheckResult, Target};
use crate::offers::OfferStats;
use crate::segments::SegmentStats;

/// Sizes of today's audiences and offers, or of the previous published run's.
#[derive(Clone, Copy)]
pub(crate) struct Sizes<'a> {
    pub(crate) segments: &'a [SegmentStats],
    pub(crate) offers: &'a [OfferStats],
}

/// One audience or offer measured against a breaker.
struct Measured {
    target: String,
    size: u64,
    before: Option<u64>,
    added: u64,
    removed: u64,
}

/// Evaluates every circuit breaker on today's sizes against the previous run's.
pub(crate) fn run_breakers(
    checks: &[Check],
    today: Sizes,
    previous: Option<Sizes>,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in checks {
        let CheckKind::Breaker(breaker) = &check.kind else {
            continue;
        };
        for measured in measure(&check.target, today, previous) {
            results.push(result(check, breaker, measured));
        }
    }
    results
}

fn measure(target: &Target, today: Sizes, previous: Option<Sizes>) -> Vec<Measured> {
    match target {
        Target::Audience(only) => today
            .segments
            .iter()
            .filter(|s| only.as_ref().is_none_or(|o| *o == s.name))
            .map(|s| Measured {
                target: format!("audience {}", s.name),
                size: s.size,
                before: previous
                    .and_then(|p| p.segments.iter().find(|x| x.name == s.name))
                    .map(|x| x.size),
                added: s.added,
                removed: s.removed,
            })
            .collect(),
        Target::Offer(only) => today
            .offers
            .iter()
            .filter(|o| only.as_ref().is_none_or(|x| *x == o.name))
            .map(|o| {
                let before = previous
                    .and_then(|p| p.offers.iter().find(|x| x.name == o.name))
                    .map(|x| x.assigned);
                // Who came and went; runs published before it was counted give the net change.
                let (added, removed) = match (before, o.added, o.removed) {
                    (Some(_), Some(added), Some(removed)) => (added, removed),
                    (Some(b), _, _) if o.assigned >= b => (o.assigned - b, 0),
                    (Some(b), _, _) => (0, b - o.assigned),
                    // New (a first run, an offer added since): everyone assigned gained it,
                    // as everyone in a new audience was added to it.
                    (None, _, _) => (o.assigned, 0),
                };
                Measured {
                    target: format!("offer {}", o.name),
                    size: o.assigned,
                    before,
                    added,
                    removed,
                }
            })
            .collect(),
        Target::Source(_) | Target::Model(_) => Vec::new(),
    }
}

fn result(check: &Check, breaker: &Breaker, m: Measured) -> CheckResult {
    let problems = breaker_problems(breaker, m.size, m.before, m.added, m.removed);
    // A breaker on every audience (or offer) gets one result per audience, named after it.
    let name = if matches!(check.target, Target::Audience(None) | Target::Offer(None)) {
        let target = m.target.rsplit(' ').next().unwrap_or_default();
        format!("{}_{target}", check.name)
    } else {
        check.name.clone()
    };
    let mut result = CheckResult::new(check, m.target.clone());
    result.name = name;
    result.total = Some(m.size);
    result.threshold = describe(breaker);
    result.message = if problems.is_empty() {
        format!(
            "{} customers ({} added, {} removed)",
            m.size, m.added, m.removed
        )
    } else {
        problems.join("; ")
    };
    if !problems.is_empty() {
        result.status = super::Status::Failed;
    }
    result
}

fn describe(b: &Breaker) -> String {
    let mut parts = Vec::new();
    if let Some(p) = b.max_removed_percent {
        parts.push(format!("at most {p}% removed"));
    }
    if let Some(p) = b.max_added_percent {
        parts.push(format!("at most {p}% added"));
    }
    if let Some(n) = b.min_size {
        parts.push(format!("at least {n} customers"));
    }
    if let Some(n) = b.max_size {
        parts.push(format!("at most {n} customers"));
    }
    parts.join(", ")
}

fn breaker_problems(
    b: &Breaker,
    size: u64,
    before: Option<u64>,
    added: u64,
    removed: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(before) = before.filter(|b| *b > 0) {
        let removed_percent = removed as f64 * 100.0 / before as f64;
        let added_percent = added as f64 * 100.0 / before as f64;
        if let Some(limit) = b.max_removed_percent.filter(|l| removed_percent > *l) {
            problems.push(format!(
                "{removed} of {before} customers removed since the previous run ({removed_percent:.1}%, limit {limit}%)"
            ));
        }
        if let Some(limit) = b.max_added_percent.filter(|l| added_percent > *l) {
            problems.push(format!(
                "{added} customers added to {before} since the previous run ({added_percent:.1}%, limit {limit}%)"
            ));
        }
    }
    if let Some(min) = b.min_size.filter(|m| size < *m) {
        problems.push(format!("{size} customers, fewer than the minimum {min}"));
    }
    if let Some(max) = b.max_size.filter(|m| size > *m) {
        problems.push(format!("{size} customers, more than the maximum {max}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakers_compare_with_the_previous_size() {
        let b = Breaker {
            max_removed_percent: Some(40.0),
            max_added_percent: Some(50.0),
            min_size: Some(10),
            max_size: None,
        };
        assert!(breaker_problems(&b, 100, Some(100), 10, 10).is_empty());
        let p = breaker_problems(&b, 50, Some(100), 0, 50);
        assert_eq!(
            p,
            ["50 of 100 customers removed since the previous run (50.0%, limit 40%)"]
        );
        // The first run has nothing to compare with; sizes still apply.
        assert_eq!(
            breaker_problems(&b, 5, None, 5, 0),
            ["5 customers, fewer than the minimum 10"]
        );
    }

    #[test]
    fn a_new_offer_counts_everyone_assigned_as_added_as_a_new_audience_does() {
        let offers = [OfferStats {
            name: "fiber".into(),
            assigned: 7,
            ..OfferStats::default()
        }];
        let segments = [SegmentStats {
            name: "vip".into(),
            size: 3,
            added: 3,
            ..SegmentStats::default()
        }];
        let today = Sizes {
            segments: &segments,
            offers: &offers,
        };
        let added = |target: Target| -> Vec<(u64, u64)> {
            let measured = measure(&target, today, None);
            measured.iter().map(|m| (m.added, m.removed)).collect()
        };
        assert_eq!(added(Target::Offer(None)), [(7, 0)]);
        assert_eq!(added(Target::Audience(None)), [(3, 0)]);
    }
}
