//! The SQL of decisioning, as pure functions of the compiled offers.

use super::{Offer, Offers};
use crate::erasure::{Keep, Part, kept_union, not_erased};
use crate::holdouts::{Holdout, group_case};
use crate::sql::{all_hold, ident, literal, values};
use crate::suppressions::{channel_bit, held_channels};

/// Eligible (customer, offer) pairs with score, priority and reasons.
pub(super) const ELIGIBLE: &str = "__segflow_offer_eligible";
/// Eligible offers held back on a channel (see `suppressions::held_from_offers`).
pub(crate) const HELD: &str = "__segflow_held_offers";
/// Eligible offers with a channel left, in each customer's order of preference, with the set
/// of channels left (see [`channel_bits`]).
pub(super) const CANDIDATES: &str = "__segflow_offer_candidates";
/// The decision: `(key, offer, score, reasons, channels, rank)`.
pub(super) const ASSIGNED: &str = "__segflow_offers_assigned";
/// Capacity breaks score ties by `segflow_bucket('segflow-capacity:' || offer, key)`: a salt of
/// segflow's own, so that who wins a tie has nothing to do with a holdout salted with the
/// offer's name (the lowest buckets, its control group, would otherwise win every tie).
const TIE_BREAK: &str = "'segflow-capacity:'";

/// One offer's eligible customers with its score.
pub(super) fn eligible_for(key: &str, profile: &str, offer: &Offer) -> String {
    let reasons: Vec<&str> = offer.eligible.iter().map(|c| c.reason.as_str()).collect();
    format!(
        "SELECT {k}, {name} AS offer, {score} AS score, CAST({priority} AS BIGINT) AS priority, {reasons} AS reasons \
         FROM {profile} WHERE {all}",
        k = ident(key),
        name = literal(&offer.name),
        score = offer.score_sql(),
        priority = offer.priority,
        reasons = literal(&reasons.join("; ")),
        profile = ident(profile),
        all = all_hold(&offer.eligible),
    )
}

/// Every offer's eligible customers, erased keys left out (see [`kept_union`]).
pub(super) fn eligible(key: &str, offers: &Offers, keep: Keep) -> String {
    let parts: Vec<Part> = offers
        .list
        .iter()
        .map(|o| Part {
            sql: eligible_for(key, &offers.from, o),
            reads: Some(&offers.from),
        })
        .collect();
    kept_union(key, &parts, keep)
}

/// `(offer, channel, bit)`: each channel of an offer gets a bit of its own, so a set of an
/// offer's channels is one BIGINT, the sum of their bits. An offer has at most
/// [`MAX_CHANNELS`](crate::compile::MAX_CHANNELS) channels, each listed once (checked when compiling).
/// `whole` adds channel `*`, held back from the whole offer, with all of the offer's bits.
fn channel_bits(offers: &Offers, whole: bool) -> String {
    let mut rows = Vec::new();
    for o in &offers.list {
        let bits = |channel: &str, bit: i64| channel_bit(&o.name, channel, bit);
        if whole {
            rows.push(bits("*", every_bit(o)));
        }
        for (i, c) in o.channels.iter().enumerate() {
            rows.push(bits(c, 1_i64 << i));
        }
    }
    values(rows, &["offer", "channel", "bit"])
}

/// All of an offer's channels as a set (see [`channel_bits`]).
fn every_bit(offer: &Offer) -> i64 {
    (1_i64 << offer.channels.len()) - 1
}

/// Each offer's channels as a set (the sum of their bits), as SQL over an `offer` column.
fn all_channels(offers: &Offers, offer: &str) -> String {
    let cases: Vec<String> = offers
        .list
        .iter()
        .map(|o| format!("WHEN {} THEN {}", literal(&o.name), every_bit(o)))
        .collect();
    format!("CASE {offer} {} END", cases.join(" "))
}

/// Eligible offers with a channel left after suppressions, ranked by each customer's
/// preference, with the set of `channels` left. The channels an offer is held back on are
/// grouped per (customer, offer) into one set, so that no table holds a row per channel of
/// every eligible offer (at 1M customers: 5.8M rows, anti-joined to the held ones).
pub(super) fn candidates(key: &str, offers: &Offers) -> String {
    let k = ident(key);
    // A rule holds an offer back only on the offer's own channels: the held set is a subset.
    let open = format!("{} - COALESCE(h.held, 0)", all_channels(offers, "e.offer"));
    format!(
        "SELECT e.{k}, e.offer, e.score, e.priority, e.reasons, \
                ROW_NUMBER() OVER (PARTITION BY e.{k} ORDER BY e.score DESC NULLS LAST, e.priority DESC, e.offer) AS preference, \
                segflow_bucket(concat({TIE_BREAK}, e.offer), e.{k}) AS tie_break, {open} AS channels \
         FROM {ELIGIBLE} e LEFT JOIN ({held}) h ON h.{k} = e.{k} AND h.offer = e.offer \
         WHERE {open} <> 0",
        held = held_channels(key, "offer", HELD, &channel_bits(offers, true)),
    )
}

/// No refusal yet: the start of deferred acceptance.
pub(super) fn no_refusals(key: &str) -> String {
    format!("SELECT {}, offer FROM {CANDIDATES} WHERE false", ident(key))
}

/// Each offer's capacity as SQL over an `offer` column (NULL: unlimited); `None` when no offer
/// has one.
fn capacity(offers: &Offers) -> Option<String> {
    let limited: Vec<String> = offers
        .list
        .iter()
        .filter_map(|o| {
            o.capacity
                .map(|c| format!("WHEN {} THEN {c}", literal(&o.name)))
        })
        .collect();
    (!limited.is_empty()).then(|| format!("CASE offer {} END", limited.join(" ")))
}

/// What each customer proposes in a round: their best `max_per_customer` candidates not
/// refused yet, `slot` numbering them in the customer's order of preference.
fn proposals(key: &str, offers: &Offers, refused: &str) -> String {
    let k = ident(key);
    format!(
        "SELECT * FROM ( \
           SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.{k} ORDER BY c.preference) AS slot FROM {CANDIDATES} c \
           WHERE NOT EXISTS (SELECT 1 FROM {refused} r WHERE r.{k} = c.{k} AND r.offer = c.offer)) \
         WHERE slot <= {max}",
        max = offers.max_per_customer,
    )
}

/// The refusals after one more round: those before, plus the proposals an offer with a
/// capacity ranks beyond it (by score, then tie-break, then key). Offers without a capacity
/// refuse nobody, so only the limited offers' proposals are ranked.
pub(super) fn refusals_after_round(key: &str, offers: &Offers, refused: &str) -> String {
    let k = ident(key);
    let before = format!("SELECT {k}, offer FROM {refused}");
    let Some(capacity) = capacity(offers) else {
        return before;
    };
    // A list of names filters the proposals in a fraction of the time the `CASE` takes.
    let limited: Vec<String> = (offers.list.iter())
        .filter(|o| o.capacity.is_some())
        .map(|o| literal(&o.name))
        .collect();
    format!(
        "{before} UNION ALL \
         SELECT {k}, offer FROM ( \
           SELECT p.{k}, p.offer, {capacity} AS capacity, \
                  ROW_NUMBER() OVER (PARTITION BY p.offer ORDER BY p.score DESC NULLS LAST, p.tie_break, p.{k}) AS position \
           FROM ({proposals}) p WHERE p.offer IN ({limited})) \
         WHERE position > capacity",
        limited = limited.join(", "),
        proposals = proposals(key, offers, refused)
    )
}

/// The decision, given the refusals the rounds settled on: each customer's proposals, ranked.
/// Settled means the round after them refused nobody new, so no proposal left is beyond its
/// offer's capacity: every one is accepted, and its rank is its slot.
pub(super) fn assigned(key: &str, offers: &Offers, refused: &str) -> String {
    let k = ident(key);
    format!(
        "SELECT {k}, offer, score, reasons, channels, CAST(slot AS BIGINT) AS rank FROM ({})",
        proposals(key, offers, refused)
    )
}

/// `offers/`: one row per assigned (customer, offer, channel) with rank and group.
pub(super) fn published(key: &str, offers: &Offers, global: Option<&Holdout>) -> String {
    let k = ident(key);
    let group = group_case(global, &offers.groups(), &format!("a.{k}"), "a.offer");
    format!(
        "SELECT a.{k}, a.rank, a.offer, a.score, b.channel, {group} AS test_group, a.reasons \
         FROM {ASSIGNED} a JOIN ({bits}) b ON b.offer = a.offer AND (a.channels & b.bit) <> 0 \
         ORDER BY a.{k}, a.rank, b.channel",
        bits = channel_bits(offers, false),
    )
}

/// What became of an eligible (customer, offer): `decisions/`' `status`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Status {
    Assigned,
    /// Held back on every channel.
    Suppressed,
    /// Wanted, but the offer's capacity went to others.
    Capacity,
    /// Better offers filled the customer's slots.
    Outranked,
}

impl Status {
    /// Every status, in the order they are declared (`status as usize` is a place in it).
    pub(super) const ALL: [Status; 4] = [
        Status::Assigned,
        Status::Suppressed,
        Status::Capacity,
        Status::Outranked,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Status::Assigned => "assigned",
            Status::Suppressed => "suppressed",
            Status::Capacity => "capacity",
            Status::Outranked => "outranked",
        }
    }

    pub(super) fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `decisions/`: every eligible (customer, offer) and what became of it, sorted by (key,
/// offer).
pub(super) fn decisions(key: &str, refused: &str) -> String {
    let k = ident(key);
    let status = |s: Status| literal(s.name());
    format!(
        "SELECT e.{k}, e.offer, e.score, \
           CASE WHEN a.rank IS NOT NULL THEN {assigned} \
                WHEN c.{k} IS NULL THEN {suppressed} \
                WHEN r.{k} IS NOT NULL THEN {capacity} \
                ELSE {outranked} END AS status, \
           a.rank \
         FROM {ELIGIBLE} e LEFT JOIN {CANDIDATES} c ON c.{k} = e.{k} AND c.offer = e.offer \
         LEFT JOIN {ASSIGNED} a ON a.{k} = e.{k} AND a.offer = e.offer \
         LEFT JOIN (SELECT DISTINCT {k}, offer FROM {refused}) r ON r.{k} = e.{k} AND r.offer = e.offer \
         ORDER BY e.{k}, e.offer",
        assigned = status(Status::Assigned),
        suppressed = status(Status::Suppressed),
        capacity = status(Status::Capacity),
        outranked = status(Status::Outranked),
    )
}

/// The previous run's decisions by rank, erased customers left out: a row per channel of
/// `offers/`, as many for a (customer, rank) as it had channels.
pub(super) fn previous(key: &str, table: &str) -> String {
    let k = ident(key);
    format!(
        "SELECT {k}, rank, offer FROM {table} p WHERE {}",
        not_erased(&format!("p.{k}"))
    )
}

/// `offer_changes/`: by rank, offers that are new, dropped or swapped since `before` (see
/// [`previous`]), or all new when there is nothing before.
///
/// Rows `before` repeats (one per channel) are made distinct after the join, where only the
/// few changes are left: before it, the previous offers' (customer, rank) pairs are in key
/// order, and DataFusion groups them in its ordered mode, which costs more than the join.
/// Without a previous run the pairs are made distinct before the constant columns are added:
/// DataFusion takes a constant for a sorted column and would group in that mode too (a first
/// run at 1M customers: 1.9 s of CPU for 1M rows).
pub(super) fn changes(key: &str, before: Option<&str>) -> String {
    let k = ident(key);
    let Some(before) = before else {
        return format!(
            "SELECT {k}, rank, 'new' AS change, offer, CAST(NULL AS VARCHAR) AS previous_offer \
             FROM (SELECT DISTINCT {k}, rank, offer FROM {ASSIGNED} WHERE offer IS NOT NULL) \
             ORDER BY 1, 2"
        );
    };
    format!(
        "SELECT DISTINCT COALESCE(t.{k}, y.{k}) AS {k}, COALESCE(t.rank, y.rank) AS rank, \
           CASE WHEN y.offer IS NULL THEN 'new' WHEN t.offer IS NULL THEN 'dropped' ELSE 'swapped' END AS change, \
           t.offer AS offer, y.offer AS previous_offer \
         FROM (SELECT {k}, rank, offer FROM {ASSIGNED}) t FULL OUTER JOIN ({before}) y ON y.{k} = t.{k} AND y.rank = t.rank \
         WHERE t.offer IS DISTINCT FROM y.offer ORDER BY 1, 2"
    )
}
