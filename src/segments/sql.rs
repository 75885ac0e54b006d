//! The SQL of segments, as pure functions of the compiled segments: membership, groups,
//! audiences, changes, migration and membership history.

use super::{Segment, Segments};
use crate::erasure::{Keep, Part, kept_union};
use crate::holdouts::group_case;
use crate::sql::{Rule, all_hold, ident, literal};
use crate::suppressions::{channel_bit, held_channels};

/// Today's members before suppressions: `(key, segment, reasons)`.
pub(super) const RAW: &str = "__segflow_raw_members";
/// Members held back from a segment: `(key, held_back_from, target, segment, channel,
/// suppression, reason, detail)`.
pub(crate) const HELD: &str = "__segflow_held_segments";
/// Today's members: `(key, segment, reasons, channels, group)`.
pub(super) const MEMBERS: &str = "__segflow_members";
/// The previous run's membership spells: `(key, segment, entered_on, exited_on)`.
pub(super) const PREVIOUS: &str = "__segflow_previous_memberships";
/// Yesterday's open spells and today's members, pair by pair (see [`sides`]).
pub(super) const SIDES: &str = "__segflow_sides";
/// The `segment` value for customers in no segment, in migration counts.
pub(super) const NO_SEGMENT: &str = "(none)";

/// The registered view of a SQL segment's keys (with `__segflow_reason`).
pub(super) fn rule_view(segment: &Segment) -> String {
    format!("__segflow_segment_{}", segment.name)
}

/// One segment's members as `(key, segment, reasons)`.
pub(super) fn members_of<'a>(key: &str, profile: &'a str, segment: &Segment) -> Part<'a> {
    let k = ident(key);
    let name = literal(&segment.name);
    match &segment.rule {
        Rule::Conditions(conditions) => {
            let reasons: Vec<&str> = conditions.iter().map(|c| c.reason.as_str()).collect();
            Part {
                sql: format!(
                    "SELECT {k}, {name} AS segment, {reasons} AS reasons FROM {table} WHERE {all}",
                    reasons = literal(&reasons.join("; ")),
                    table = ident(profile),
                    all = all_hold(conditions),
                ),
                reads: Some(profile),
            }
        }
        // A member is a customer of the profile, which the audience reads their columns from:
        // keys of a SQL segment the profile lacks (e.g. read from a source) are left out.
        Rule::Sql(_) => Part {
            sql: format!(
                "SELECT {k}, {name} AS segment, COALESCE(__segflow_reason, {description}) AS reasons \
                 FROM {view} WHERE {k} IN (SELECT {k} FROM {table})",
                description = literal(&segment.description),
                view = rule_view(segment),
                table = ident(profile),
            ),
            reads: None,
        },
    }
}

/// Every segment's members before suppressions, erased keys excluded (see [`kept_union`]).
pub(super) fn raw_members(key: &str, segments: &Segments, keep: Keep) -> String {
    let parts: Vec<Part> = segments
        .list
        .iter()
        .map(|s| members_of(key, &segments.from, s))
        .collect();
    kept_union(key, &parts, keep)
}

/// The bit that stands for "reached as a whole" in the set of a segment that names no
/// channel: above every channel's (there are at most [`MAX_CHANNELS`](crate::compile::MAX_CHANNELS)).
const WHOLE_SEGMENT: i64 = 1 << 62;

/// A segment's channels as a set: the sum of their bits, or [`WHOLE_SEGMENT`].
fn all_channels(segment: &Segment, names: &[&str]) -> i64 {
    if segment.channels.is_empty() {
        return WHOLE_SEGMENT;
    }
    names
        .iter()
        .enumerate()
        .filter(|(_, name)| segment.channels.iter().any(|c| c == *name))
        .map(|(i, _)| 1_i64 << i)
        .sum()
}

/// `(segment, channel, bit)`: the bit of each channel a segment is activated through, and for
/// `*` (held back from the whole segment) all of them.
fn channel_bits(segments: &Segments, names: &[&str]) -> String {
    let mut rows = Vec::new();
    for segment in &segments.list {
        let bits = |channel: &str, bit: i64| channel_bit(&segment.name, channel, bit);
        rows.push(bits("*", all_channels(segment, names)));
        for (i, name) in names.iter().enumerate() {
            if segment.channels.iter().any(|c| c == name) {
                rows.push(bits(name, 1 << i));
            }
        }
    }
    crate::sql::values(rows, &["segment", "channel", "bit"])
}

/// Today's members: the channels left to reach them (none named, for a segment without
/// channels) and their group. A member held back on every channel, or from the whole
/// segment, is out. What each member is held back on is grouped per (member, segment) into
/// one set of channel bits and taken from the segment's own, so that no table holds a row per
/// channel of every member.
pub(super) fn members(key: &str, segments: &Segments) -> String {
    let k = ident(key);
    // Channel `i` of the names is bit `i` of a set of channels (see `channel_bits`).
    let names = segments.channel_names();
    let cases: Vec<String> = segments
        .list
        .iter()
        .map(|s| format!("WHEN {} THEN {}", literal(&s.name), all_channels(s, &names)))
        .collect();
    let all = format!("CASE r.segment {} END", cases.join(" "));
    // The channels left, in name order, comma-separated ('' for none: NULL below).
    let left: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            format!(
                "CASE WHEN r.open & {} <> 0 THEN {} END",
                1_i64 << i,
                literal(name)
            )
        })
        .collect();
    let left = match left.is_empty() {
        true => "''".to_string(),
        false => format!("concat_ws(',', {})", left.join(", ")),
    };
    format!(
        "SELECT r.{k}, r.segment, r.reasons, NULLIF({left}, '') AS channels, {group} AS test_group \
         FROM ( \
           SELECT r.*, {all} - ({all} & COALESCE(h.held, 0)) AS open FROM {RAW} r \
           LEFT JOIN ({held}) h ON h.{k} = r.{k} AND h.segment = r.segment \
         ) r WHERE r.open <> 0",
        held = held_channels(key, "segment", HELD, &channel_bits(segments, &names)),
        group = group_case(
            segments.holdout.as_ref(),
            &segments.groups(),
            &format!("r.{k}"),
            "r.segment"
        ),
    )
}

/// Every segment's audience, sorted by segment then key, for writing one table per segment:
/// members with their group, reasons, channels and the activation columns of the profile.
pub(super) fn audiences(key: &str, profile: &str, activation_columns: &[String]) -> String {
    let k = ident(key);
    let columns: String = activation_columns
        .iter()
        .filter(|c| c.as_str() != key)
        .map(|c| format!(", p.{}", ident(c)))
        .collect();
    format!(
        "SELECT m.segment, m.{k}, m.test_group, m.reasons, m.channels{columns} FROM {MEMBERS} m \
         JOIN {profile} p ON p.{k} = m.{k} ORDER BY m.segment, m.{k}",
        profile = ident(profile),
    )
}

/// Every `(key, segment)` pair of the previous run's open spells and of today, once, with
/// `today` (a member today) and `sides` (2: in the segment on both days, 1: on one side only):
/// what changes, migration, history and the change counts are computed from ([`SIDES`]).
/// A customer has one open spell per segment, so grouping both days' pairs together compares
/// the two days: an aggregation, which spills under `--memory-limit`, where anti-joins' sorts
/// and merge buffers held memory that could not. Today's pairs are made distinct before the
/// constant columns are added: DataFusion takes a constant column for a sorted one and groups
/// by it in its ordered mode, six times slower.
pub(super) fn sides(key: &str) -> String {
    let k = ident(key);
    format!(
        "SELECT {k}, segment, bool_or(today) AS today, MIN(entered_on) AS entered_on, \
                COUNT(*) AS sides FROM ( \
           SELECT {k}, segment, true AS today, CAST(NULL AS DATE) AS entered_on \
           FROM (SELECT DISTINCT {k}, segment FROM {MEMBERS}) \
           UNION ALL \
           SELECT {k}, segment, false AS today, entered_on FROM {PREVIOUS} WHERE exited_on IS NULL \
         ) AS pairs GROUP BY {k}, segment"
    )
}

/// Who was added to and removed from each of `segments` since the previous run (the keys on
/// one side only), sorted by segment then key, for writing one table per segment. A segment
/// taken out of the pipeline since has no table: its members' spells are closed in the
/// history (and counted in the migration), not published as changes.
pub(super) fn changes(key: &str, segments: &Segments) -> String {
    let k = ident(key);
    let names: Vec<String> = segments.list.iter().map(|s| literal(&s.name)).collect();
    let declared = match names.is_empty() {
        true => "false".to_string(),
        false => format!("segment IN ({})", names.join(", ")),
    };
    format!(
        "SELECT segment, {k}, CASE WHEN today THEN 'added' ELSE 'removed' END AS change \
         FROM {SIDES} WHERE sides = 1 AND {declared} ORDER BY segment, {k}"
    )
}

/// Migration counts: a customer who stayed in a segment counts as (s, s); one who left
/// segments L and entered E counts once for each pair in L × E, with `(none)` standing in for
/// an empty side. Customers in no segment on either day are not counted.
pub(super) fn migration(key: &str) -> String {
    let k = ident(key);
    let none = literal(NO_SEGMENT);
    format!(
        "WITH left_ AS (SELECT {k}, segment FROM {SIDES} WHERE sides = 1 AND NOT today), \
              entered AS (SELECT {k}, segment FROM {SIDES} WHERE sides = 1 AND today), \
              flows AS ( \
                SELECT segment AS from_segment, segment AS to_segment FROM {SIDES} WHERE sides = 2 \
                UNION ALL \
                SELECT COALESCE(l.segment, {none}), COALESCE(e.segment, {none}) \
                FROM left_ l FULL JOIN entered e ON e.{k} = l.{k}) \
         SELECT from_segment, to_segment, COUNT(*) AS customers FROM flows \
         GROUP BY from_segment, to_segment ORDER BY from_segment, to_segment"
    )
}

/// The membership history after today: closed spells carried over, open spells closed when the
/// customer left, new spells for customers who entered. `run_date` is the run date as a
/// literal.
pub(super) fn history(key: &str, run_date: &str) -> String {
    let k = ident(key);
    let today = format!("CAST({} AS DATE)", literal(run_date));
    format!(
        "SELECT {k}, segment, entered_on, exited_on FROM {PREVIOUS} WHERE exited_on IS NOT NULL \
         UNION ALL \
         SELECT {k}, segment, COALESCE(entered_on, {today}) AS entered_on, \
                CASE WHEN today THEN CAST(NULL AS DATE) ELSE {today} END AS exited_on \
           FROM {SIDES} \
         ORDER BY segment, {k}, entered_on"
    )
}

/// Segments per bit of an overlap mask: 62 keeps the sum of distinct powers of two positive in
/// a BIGINT.
pub(super) const MASK_BITS: usize = 62;

/// Customers per combination of segments today: one BIGINT mask per [`MASK_BITS`] segments
/// (bit `i % MASK_BITS` of mask `i / MASK_BITS` set when in the `i`-th of `segments`), and how
/// many customers have exactly those. The overlap of every pair of segments follows from these
/// few rows: one aggregation instead of joining the members with themselves.
pub(super) fn overlap_masks(key: &str, segments: &Segments) -> String {
    let k = ident(key);
    let masks: Vec<String> = segments
        .list
        .chunks(MASK_BITS)
        .enumerate()
        .map(|(m, chunk)| {
            let bits: String = chunk
                .iter()
                .enumerate()
                .map(|(bit, s)| format!(" WHEN {} THEN {}", literal(&s.name), 1i64 << bit))
                .collect();
            format!("SUM(CASE segment{bits} ELSE 0 END) AS mask{m}")
        })
        .collect();
    let names: Vec<String> = (0..masks.len()).map(|m| format!("mask{m}")).collect();
    format!(
        "SELECT {names}, COUNT(*) AS customers FROM ( \
           SELECT {k}, {masks} FROM {SIDES} WHERE today GROUP BY {k}) AS m \
         GROUP BY {names}",
        names = names.join(", "),
        masks = masks.join(", "),
    )
}

/// Members per segment and group.
pub(super) fn group_counts() -> String {
    format!("SELECT segment, test_group, COUNT(*) AS n FROM {MEMBERS} GROUP BY 1, 2")
}

/// Added and removed members per segment.
pub(super) fn change_counts() -> String {
    format!(
        "SELECT segment, CASE WHEN today THEN 'added' ELSE 'removed' END AS change, COUNT(*) AS n \
         FROM {SIDES} WHERE sides = 1 GROUP BY 1, 2"
    )
}
