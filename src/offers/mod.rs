//! Zero-segment decisioning: every customer gets the best offers they are eligible for.
//!
//! 1. **Eligible**: per offer, the customers for whom every eligibility condition holds, with
//!    the offer's score (its score expression, or its priority).
//! 2. **Suppressed**: suppressions hold back an offer on the channels their scope covers, or
//!    whole (channel `*`, all of its channels) for a rule scoped to everything or to the offer,
//!    or named in its `suppressed_by`. An offer left with no channel is out for that customer.
//! 3. **Decided**: each customer ranks what is left by score (higher first, NULL last), then
//!    priority (higher first), then offer name. Capacity is allocated by deferred acceptance: each
//!    customer proposes their best `max_per_customer` offers not yet refused; an offer with
//!    capacity keeps the proposals it scores highest (ties: lower
//!    `segflow_bucket('segflow-capacity:' || offer, key)` first, then key) and refuses the
//!    rest, who propose their next best offer in the next round. Rounds repeat until nobody is refused, so capacity goes to the customers an offer
//!    scores highest for, and a customer who loses an offer to capacity gets their next best.
//! 4. **Grouped**: global holdout → `global_control`, the offer's holdout → `control`, else
//!    `treatment`; assigned after the decision, so control customers are comparable.
//!
//! Channels never re-decide: `offers/` holds one row per (customer, offer, channel) with the
//! rank from the single decision; an email tool filters `channel = 'email'`.

mod compile;
mod counts;
mod explain;
mod sql;
mod step;

pub(crate) use compile::{Offer, Offers, compile};
pub use explain::OfferExplanation;
pub(crate) use explain::{PublishedRun, explain};
pub use step::OfferStats;
pub(crate) use step::{HELD, OffersError, decide, evaluate, plan, publish};
