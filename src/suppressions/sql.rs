//! The SQL that evaluates suppression rules and applies their matches to segments and offers.
//! Pure functions of the compiled rules: what they return is what a run and `explain` execute.

use super::Suppression;
use crate::erasure::kept_union;
use crate::sql::{KeyFilter, Rule, all_hold, ident, literal, row, values};

/// The registered view of a SQL rule's keys (with `__segflow_detail`, `__segflow_offer`).
pub(super) fn rule_view(suppression: &Suppression) -> String {
    format!("__segflow_suppression_{}", suppression.name)
}

/// One rule's matches as `(key, suppression, reason, detail, offer)`.
pub(super) fn matches_query(key: &str, profile: &str, suppression: &Suppression) -> String {
    let k = ident(key);
    let name = literal(&suppression.name);
    let reason = literal(&suppression.reason);
    match &suppression.rule {
        Rule::Conditions(conditions) => {
            let detail: Vec<&str> = conditions.iter().map(|c| c.reason.as_str()).collect();
            format!(
                "SELECT {k}, {name} AS suppression, {reason} AS reason, {detail} AS detail, \
                 CAST(NULL AS VARCHAR) AS offer FROM {profile} WHERE {all}",
                detail = literal(&detail.join("; ")),
                profile = ident(profile),
                all = all_hold(conditions),
            )
        }
        Rule::Sql(_) => format!(
            "SELECT {k}, {name} AS suppression, {reason} AS reason, __segflow_detail AS detail, \
             __segflow_offer AS offer FROM {view}",
            view = rule_view(suppression),
        ),
    }
}

/// Every rule's matches, erased customers left out (restricted to `only` when given).
pub(super) fn all_matches(
    key: &str,
    profile: &str,
    suppressions: &[Suppression],
    only: Option<&KeyFilter>,
) -> String {
    let k = ident(key);
    if suppressions.is_empty() {
        return format!(
            "SELECT {k}, CAST(NULL AS VARCHAR) AS suppression, CAST(NULL AS VARCHAR) AS reason, \
             CAST(NULL AS VARCHAR) AS detail, CAST(NULL AS VARCHAR) AS offer FROM {} WHERE false",
            ident(profile)
        );
    }
    let parts: Vec<String> = suppressions
        .iter()
        .map(|s| matches_query(key, profile, s))
        .collect();
    kept_union(key, &parts, only)
}

/// A segment or an offer, and the channels it is activated through.
pub(crate) struct Reach<'a> {
    pub(crate) name: &'a str,
    pub(crate) channels: &'a [String],
    /// Rules that hold it back besides those whose scope names it (offers' `suppressed_by`).
    pub(crate) suppressed_by: &'a [String],
}

/// `(suppression, segment, channel)`: which rule holds back which segment, on which of its
/// channels (`*`: the whole segment).
fn segment_scope(suppressions: &[Suppression], segments: &[Reach]) -> String {
    let mut rows = Vec::new();
    for suppression in suppressions {
        for segment in segments {
            let channels = suppression
                .scope
                .segment_channels(segment.name, segment.channels)
                .unwrap_or_else(|| vec!["*"]);
            for channel in channels {
                rows.push(row(&[&suppression.name, segment.name, channel]));
            }
        }
    }
    values(rows, &["suppression", "segment", "channel"])
}

/// Members held back from their segment: a member of `members` (`key, segment`) matched by a
/// rule whose scope covers the whole segment (channel `*`) or one of the channels the segment
/// is activated through. Columns: `key, held_back_from, target, segment, channel, suppression,
/// reason, detail`.
pub(crate) fn held_from_segments(
    key: &str,
    members: &str,
    matches: &str,
    suppressions: &[Suppression],
    segments: &[Reach],
) -> String {
    let k = ident(key);
    format!(
        "SELECT r.{k}, 'segment' AS held_back_from, \
                CASE WHEN sc.channel = '*' THEN r.segment ELSE r.segment || ' via ' || sc.channel END AS target, \
                r.segment, sc.channel, s.suppression, s.reason, s.detail \
         FROM {members} r JOIN {matches} s ON s.{k} = r.{k} AND s.offer IS NULL \
         JOIN ({scope}) sc ON sc.suppression = s.suppression AND sc.segment = r.segment",
        scope = segment_scope(suppressions, segments),
    )
}

/// `(suppression, offer, channel)`: every channel of every offer a rule holds back.
fn offer_scope(suppressions: &[Suppression], offers: &[Reach]) -> String {
    let mut rows = Vec::new();
    for suppression in suppressions {
        for offer in offers {
            for channel in offer.channels {
                if suppression.scope.covers_offer_channel(offer.name, channel)
                    || offer.suppressed_by.contains(&suppression.name)
                {
                    rows.push(row(&[&suppression.name, offer.name, channel]));
                }
            }
        }
    }
    values(rows, &["suppression", "offer", "channel"])
}

/// Eligible offers held back on a channel: `eligible` (`key, offer`) joined to the matches of
/// the same key, then to the (offer, channel) pairs each rule covers: two equi-joins, whatever
/// the number of rules, and the large one partitioned by key so that no side is collected
/// whole into memory. A rule returning an `offer` holds back that offer only. Columns: `key,
/// held_back_from, target, offer, channel, suppression, reason, detail`.
pub(crate) fn held_from_offers(
    key: &str,
    eligible: &str,
    matches: &str,
    suppressions: &[Suppression],
    offers: &[Reach],
) -> String {
    let k = ident(key);
    format!(
        "SELECT e.{k}, 'offer' AS held_back_from, e.offer || ' via ' || sc.channel AS target, \
                e.offer, sc.channel, s.suppression, s.reason, s.detail \
         FROM {eligible} e \
         JOIN {matches} s ON s.{k} = e.{k} AND (s.offer IS NULL OR s.offer = e.offer) \
         JOIN ({scope}) sc ON sc.suppression = s.suppression AND sc.offer = e.offer",
        scope = offer_scope(suppressions, offers),
    )
}

/// Every (customer, segment or offer) held back, by which rule and why, from the held tables of
/// segments and offers.
pub(super) fn suppressed(key: &str, held: &[&str]) -> String {
    let k = ident(key);
    let parts: Vec<String> = held
        .iter()
        .map(|table| {
            format!(
                "SELECT {k}, held_back_from || ' ' || target AS held_back_from, suppression, reason, detail FROM {table}"
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::Location;
    use crate::suppressions::Scope;

    fn rule(name: &str, scope: Scope) -> Suppression {
        Suppression {
            name: name.into(),
            reason: "r".into(),
            rule: Rule::Conditions(Vec::new()),
            scope,
            at: Location::file("p.yaml"),
        }
    }

    #[test]
    fn channel_rules_hold_back_only_the_channels_a_segment_uses() {
        let email = rule(
            "no_email",
            Scope::Only {
                segments: vec![],
                offers: vec![],
                channels: vec!["email".into()],
            },
        );
        let channels = vec!["email".to_string(), "mail".to_string()];
        let sms_only = vec!["sms".to_string()];
        let scope = segment_scope(
            &[email, rule("all", Scope::Everything)],
            &[
                Reach {
                    name: "a",
                    channels: &channels,
                    suppressed_by: &[],
                },
                Reach {
                    name: "b",
                    channels: &sms_only,
                    suppressed_by: &[],
                },
            ],
        );
        assert_eq!(
            scope,
            "SELECT column1 AS suppression, column2 AS segment, column3 AS channel FROM \
             (VALUES ('no_email', 'a', 'email'), ('all', 'a', '*'), ('all', 'b', '*'))"
        );
    }
}
