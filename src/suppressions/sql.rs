//! The SQL that evaluates suppression rules and applies their matches to segments and offers.
//! Pure functions of the compiled rules: what they return is what a run and `explain` execute.

use super::Suppression;
use super::compile::Scope;
use crate::erasure::{Keep, Part, kept_union};
use crate::sql::{Rule, all_hold, dictionary, ident, literal, row, values};

/// The registered view of a SQL rule's keys (with `__segflow_detail`, `__segflow_offer`).
pub(super) fn rule_view(suppression: &Suppression) -> String {
    format!("__segflow_suppression_{}", suppression.name)
}

/// One rule's matches as `(key, suppression, detail, offer)`. What is the same for every
/// match of a rule (its reason, and the detail of a rule of conditions) is not repeated on
/// every row: [`suppressed`] adds it from [`rules`] once the table is written.
pub(super) fn matches_query<'a>(
    key: &str,
    profile: &'a str,
    suppression: &Suppression,
) -> Part<'a> {
    let k = ident(key);
    let name = literal(&suppression.name);
    match &suppression.rule {
        Rule::Conditions(conditions) => Part {
            sql: format!(
                "SELECT {k}, {name} AS suppression, CAST(NULL AS VARCHAR) AS detail, \
                 CAST(NULL AS VARCHAR) AS offer FROM {table} WHERE {all}",
                table = ident(profile),
                all = all_hold(conditions),
            ),
            reads: Some(profile),
        },
        Rule::Sql(_) => Part {
            sql: format!(
                "SELECT {k}, {name} AS suppression, __segflow_detail AS detail, \
                 __segflow_offer AS offer FROM {view}",
                view = rule_view(suppression),
            ),
            reads: None,
        },
    }
}

/// `(suppression, reason, detail, position)` of every rule: its reason, for a rule of
/// conditions the detail every match shares (the conditions' reasons; a SQL rule's detail is
/// per match), and its place in name order.
pub(super) fn rules(suppressions: &[Suppression]) -> String {
    let mut names: Vec<&str> = suppressions.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    let rows = suppressions
        .iter()
        .map(|s| {
            let detail = match &s.rule {
                Rule::Conditions(conditions) => {
                    let reasons: Vec<&str> = conditions.iter().map(|c| c.reason.as_str()).collect();
                    literal(&reasons.join("; "))
                }
                Rule::Sql(_) => "CAST(NULL AS VARCHAR)".to_string(),
            };
            let position = names.binary_search(&s.name.as_str()).unwrap_or_default();
            format!(
                "({}, {}, {detail}, CAST({position} AS BIGINT))",
                literal(&s.name),
                literal(&s.reason)
            )
        })
        .collect();
    values(rows, &["suppression", "reason", "detail", "position"])
}

/// The detail of a match in [`MATCHES`](super::MATCHES) or a held table (alias `h`), with its
/// rule's shared detail filled in from [`rules`] (alias `r`).
pub(super) const DETAIL: &str = "COALESCE(h.detail, r.detail)";

/// Every rule's matches, erased customers left out (see [`kept_union`]). A rule of conditions
/// is evaluated over each of `profiles` (the segments' and the offers', when they differ): a
/// customer it matches in either is held back from both, and matched once.
pub(super) fn all_matches(
    key: &str,
    profiles: &[&str],
    suppressions: &[Suppression],
    keep: Keep,
) -> String {
    let k = ident(key);
    if suppressions.is_empty() {
        return format!(
            "SELECT {k}, CAST(NULL AS VARCHAR) AS suppression, CAST(NULL AS VARCHAR) AS detail, \
             CAST(NULL AS VARCHAR) AS offer FROM {} WHERE false",
            ident(profiles[0])
        );
    }
    let mut parts: Vec<Part> = Vec::new();
    for s in suppressions {
        match &s.rule {
            Rule::Conditions(_) => parts.extend(profiles.iter().map(|p| matches_query(key, p, s))),
            Rule::Sql(_) => parts.push(matches_query(key, profiles[0], s)),
        }
    }
    let union = kept_union(key, &parts, keep);
    match profiles.len() {
        1 => union,
        _ => format!("SELECT DISTINCT * FROM ({union})"),
    }
}

/// A segment or an offer, and the channels it is activated through.
pub(crate) struct Reach<'a> {
    pub(crate) name: &'a str,
    pub(crate) channels: &'a [String],
    /// Rules that hold it back besides those whose scope names it (offers' `suppressed_by`).
    pub(crate) suppressed_by: &'a [String],
}

/// `(suppression, <what>, channel)`: which rule holds back which segment or offer (`what`
/// names the column), and on which of its channels: `*` once where the rule's scope, or the
/// target's `suppressed_by`, covers the whole of it, else a row for each of the target's
/// channels the scope names (`channels` says which).
fn scope(
    what: &str,
    suppressions: &[Suppression],
    targets: &[Reach],
    channels: impl for<'a> Fn(&Scope, &str, &'a [String]) -> Option<Vec<&'a str>>,
) -> String {
    let mut rows = Vec::new();
    for suppression in suppressions {
        for target in targets {
            let held = if target.suppressed_by.contains(&suppression.name) {
                None
            } else {
                channels(&suppression.scope, target.name, target.channels)
            };
            for channel in held.unwrap_or_else(|| vec!["*"]) {
                rows.push(row(&[&suppression.name, target.name, channel]));
            }
        }
    }
    values(rows, &["suppression", what, "channel"])
}

/// Members held back from their segment: a member of `members` (`key, segment`) matched by a
/// rule whose scope covers the whole segment (channel `*`) or one of the channels the segment
/// is activated through. Columns: `key, segment, channel, suppression, detail`.
pub(crate) fn held_from_segments(
    key: &str,
    members: &str,
    matches: &str,
    suppressions: &[Suppression],
    segments: &[Reach],
) -> String {
    let k = ident(key);
    format!(
        "SELECT r.{k}, r.segment, sc.channel, s.suppression, s.detail \
         FROM {members} r JOIN {matches} s ON s.{k} = r.{k} AND s.offer IS NULL \
         JOIN ({scope}) sc ON sc.suppression = s.suppression AND sc.segment = r.segment",
        scope = scope("segment", suppressions, segments, Scope::segment_channels),
    )
}

/// Eligible offers held back, whole (channel `*`) or on a channel: `eligible` (`key, offer`)
/// joined to the matches of the same key, then to the (offer, channel) pairs each rule covers:
/// two equi-joins, whatever the number of rules, and the large one partitioned by key so that
/// no side is collected whole into memory. A rule returning an `offer` holds back that offer
/// only. Columns: `key, offer, channel, suppression, detail`.
pub(crate) fn held_from_offers(
    key: &str,
    eligible: &str,
    matches: &str,
    suppressions: &[Suppression],
    offers: &[Reach],
) -> String {
    let k = ident(key);
    format!(
        "SELECT e.{k}, e.offer, sc.channel, s.suppression, s.detail \
         FROM {eligible} e \
         JOIN {matches} s ON s.{k} = e.{k} AND (s.offer IS NULL OR s.offer = e.offer) \
         JOIN ({scope}) sc ON sc.suppression = s.suppression AND sc.offer = e.offer",
        scope = scope("offer", suppressions, offers, Scope::offer_channels),
    )
}

/// A row of the `bits` [`held_channels`] reads: `(segment or offer, channel, bit)`.
pub(crate) fn channel_bit(target: &str, channel: &str, bit: i64) -> String {
    format!(
        "({}, {}, CAST({bit} AS BIGINT))",
        literal(target),
        literal(channel)
    )
}

/// The channels each (key, segment or offer) of a held `table` is held back on, as one set:
/// the `bit_or` of each held channel's bit in `bits` (`what, channel, bit`; `what` is
/// `segment` or `offer`). Columns: `key, what, held`.
pub(crate) fn held_channels(key: &str, what: &str, table: &str, bits: &str) -> String {
    let (k, w) = (ident(key), ident(what));
    format!(
        "SELECT h.{k}, h.{w}, bit_or(b.bit) AS held FROM {table} h \
         JOIN ({bits}) b ON b.{w} = h.{w} AND b.channel = h.channel GROUP BY h.{k}, h.{w}"
    )
}

/// A table of (customer, segment or offer, channel) held back by a rule: what it holds back
/// (`segment` or `offer`, also the name of its column naming which), the table, and the
/// segments or offers it may name, with their channels.
pub(crate) struct Held<'a> {
    pub(crate) what: &'static str,
    pub(crate) table: &'a str,
    pub(crate) reach: Vec<Reach<'a>>,
}

/// Every (customer, segment or offer) held back, by which rule and why, from the held tables
/// of segments and offers: `key, held_back_from` ("segment x", "segment x via email", "offer y
/// via sms"), `suppression, reason, detail`, sorted by key, `held_back_from`, `suppression`.
///
/// The texts are not built and compared row by row: every text a held row can read as is
/// known from the pipeline, so each comes from a small table with its place in name order,
/// and rows are sorted by those places, integers (at 1M customers, 5.1M rows: sorting by the
/// texts took 1.5 s more than writing them unsorted).
pub(super) fn suppressed(key: &str, held: &[Held], suppressions: &[Suppression]) -> String {
    let k = ident(key);
    let mut texts: Vec<(String, &str, &str, &str)> = Vec::new();
    for h in held {
        for target in &h.reach {
            let whole = std::iter::once("*");
            for channel in whole.chain(target.channels.iter().map(String::as_str)) {
                let text = match channel {
                    "*" => format!("{} {}", h.what, target.name),
                    _ => format!("{} {} via {channel}", h.what, target.name),
                };
                texts.push((text, h.what, target.name, channel));
            }
        }
    }
    // Rust compares strings byte by byte, as Arrow does.
    texts.sort();
    texts.dedup();
    let parts: Vec<String> = held
        .iter()
        .map(|h| {
            let rows = texts
                .iter()
                .enumerate()
                .filter(|(_, (_, what, ..))| *what == h.what)
                .map(|(position, (text, _, target, channel))| {
                    format!(
                        "({}, {}, {}, CAST({position} AS BIGINT))",
                        literal(target),
                        literal(channel),
                        literal(text)
                    )
                })
                .collect();
            format!(
                "SELECT h.{k}, t.held_back_from, t.position, h.suppression, h.detail FROM {table} h \
                 JOIN (SELECT target, channel, {text} AS held_back_from, position FROM ({targets})) t \
                 ON t.target = h.{what} AND t.channel = h.channel",
                table = h.table,
                text = dictionary("held_back_from"),
                targets = values(rows, &["target", "channel", "held_back_from", "position"]),
                what = ident(h.what),
            )
        })
        .collect();
    // The rule's name and reason come from the rules' table too, as dictionaries: the sorted
    // rows then hold keys into three small dictionaries instead of copies of the texts (at 1M
    // customers 5.1M rows, 501 MB sorted instead of 675 MB; no faster).
    format!(
        "SELECT h.{k}, h.held_back_from, r.name AS suppression, r.reason, {DETAIL} AS detail \
         FROM ({held}) AS h \
         JOIN (SELECT suppression, {name} AS name, {reason} AS reason, detail, position FROM ({rules})) AS r \
         ON r.suppression = h.suppression \
         ORDER BY h.{k}, h.position, r.position",
        held = parts.join(" UNION ALL "),
        name = dictionary("suppression"),
        reason = dictionary("reason"),
        rules = rules(suppressions),
    )
}

/// Today's matches per rule: `suppression, matched` (distinct keys).
pub(super) fn matched(key: &str, matches: &str) -> String {
    format!(
        "SELECT suppression, COUNT(DISTINCT {k}) AS matched FROM {matches} GROUP BY 1",
        k = ident(key)
    )
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
        let scope = scope(
            "segment",
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
            Scope::segment_channels,
        );
        assert_eq!(
            scope,
            "SELECT column1 AS suppression, column2 AS segment, column3 AS channel FROM \
             (VALUES ('no_email', 'a', 'email'), ('all', 'a', '*'), ('all', 'b', '*'))"
        );
    }

    #[test]
    fn a_rule_holding_back_a_whole_offer_holds_it_back_once_not_per_channel() {
        let scoped = |offers: &[&str], channels: &[&str]| Scope::Only {
            segments: vec![],
            offers: offers.iter().map(|o| o.to_string()).collect(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
        };
        let rules = [
            rule("no_email", scoped(&[], &["email"])),
            rule("all", Scope::Everything),
            rule("only_x", scoped(&["x"], &[])),
        ];
        let (email_sms, sms) = (
            vec!["email".to_string(), "sms".to_string()],
            vec!["sms".to_string()],
        );
        let by_no_email = ["no_email".to_string()];
        let offers = [
            Reach {
                name: "x",
                channels: &email_sms,
                suppressed_by: &[],
            },
            Reach {
                name: "y",
                channels: &sms,
                suppressed_by: &by_no_email,
            },
        ];
        assert_eq!(
            scope("offer", &rules, &offers, Scope::offer_channels),
            "SELECT column1 AS suppression, column2 AS offer, column3 AS channel FROM \
             (VALUES ('no_email', 'x', 'email'), ('no_email', 'y', '*'), ('all', 'x', '*'), \
             ('all', 'y', '*'), ('only_x', 'x', '*'))"
        );
    }
}
