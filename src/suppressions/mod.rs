//! Feedback that holds customers back: suppression rules with their reasons and scopes.
//!
//! A suppression is evaluated like a segment (conditions over the profile, or a query returning
//! keys) and yields `(key, suppression, reason, detail, offer)`. Its end condition lives in its
//! rule: a "not serviceable here" query joined to the address *as of the run date* stops
//! matching the day the customer moves, so the customer is eligible again without anyone acting.
//!
//! A SQL rule may also return an `offer` column: the customer is then held back from that offer
//! only (within the rule's scope), e.g. "stop repeating an offer nobody answers".
//!
//! How a match holds a customer back is decided here too ([`held_from_segments`],
//! [`held_from_offers`]): a rule holds back whole segments and offers, or only the channels its
//! scope names.

mod compile;
mod sql;
mod step;

#[cfg(test)]
pub(crate) use compile::Scope;
pub(crate) use compile::{Suppression, Targets, compile};
pub(crate) use sql::{
    Held, Reach, channel_bit, held_channels, held_from_offers, held_from_segments,
};
pub use step::SuppressionStats;
pub(crate) use step::{
    MATCHES, SuppressionsError, evaluate, held_back_by, matches_for, offers_named, plan,
    write_suppressed,
};
