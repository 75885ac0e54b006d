//! Compiled offers: eligibility, score, capacity, channels, control groups.

use crate::compile::{Compiler, MAX_CHANNELS};
use crate::holdouts::{Groups, Holdout, compile_holdout};
use crate::location::Location;
use crate::spec::{ConditionSpec, OfferSpec, OffersSpec};
use crate::sql::{Condition, Params};
use crate::suppressions::Reach;

#[derive(Debug, Clone)]
pub(crate) struct Offers {
    /// The profile model eligibility and scores read.
    pub(crate) from: String,
    /// Where the profile is named (`offers.from`, or `segments.from` by default).
    pub(crate) from_at: Location,
    pub(crate) max_per_customer: u32,
    pub(crate) list: Vec<Offer>,
}

#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) eligible: Vec<Condition>,
    pub(crate) priority: i64,
    /// The score expression (placeholders typed, its line kept); the priority when absent.
    pub(crate) score: Option<Condition>,
    pub(crate) capacity: Option<u64>,
    pub(crate) channels: Vec<String>,
    pub(crate) holdout: Option<Holdout>,
    pub(crate) suppressed_by: Vec<String>,
    pub(crate) at: Location,
}

impl Offer {
    /// The score as SQL (a DOUBLE).
    pub(crate) fn score_sql(&self) -> String {
        match &self.score {
            // NaN (`0.0 / 0.0` where nothing was spent) is no score, as NULL is: sorted as
            // the largest number, it would win every ranking and all of a capacity.
            Some(score) => format!(
                "nanvl(CAST(({}) AS DOUBLE), CAST(NULL AS DOUBLE))",
                score.expr
            ),
            None => format!("CAST({} AS DOUBLE)", self.priority),
        }
    }
}

impl Offers {
    /// Each offer with its channels and the rules that hold it back besides its scope.
    pub(crate) fn reach(&self) -> Vec<Reach<'_>> {
        self.list
            .iter()
            .map(|o| Reach {
                name: &o.name,
                channels: &o.channels,
                suppressed_by: &o.suppressed_by,
            })
            .collect()
    }

    /// Each offer's holdout, for the group expression.
    pub(crate) fn groups(&self) -> Vec<Groups<'_>> {
        self.list
            .iter()
            .map(|o| Groups {
                target: &o.name,
                holdout: o.holdout.as_ref(),
                split: None,
            })
            .collect()
    }
}

/// Compiles `offers:`. `default_from` is the segments' profile, `models` the models a profile
/// may be, `suppressions` the rules `suppressed_by` may name.
pub(crate) fn compile(
    c: &mut Compiler,
    spec: &OffersSpec,
    params: &Params,
    default_from: Option<&str>,
    models: &[&str],
    suppressions: &[&str],
) -> Option<Offers> {
    let from = match (spec.from.as_deref(), default_from) {
        (Some(from), _) | (None, Some(from)) => from.to_string(),
        (None, None) => {
            c.problem(
                &["offers"],
                "offers.from: name the profile model offers are decided on",
            );
            return None;
        }
    };
    if !models.contains(&from.as_str()) {
        c.problem(
            &["offers", "from"],
            format!("offers.from: \"{from}\" is not a model of this pipeline"),
        );
    }
    if spec.max_per_customer == 0 {
        c.problem(
            &["offers", "max_per_customer"],
            "offers.max_per_customer: give at least 1",
        );
    }
    if spec.list.is_empty() {
        c.problem(
            &["offers", "list"],
            "offers.list: declare at least one offer, or remove `offers:`",
        );
    }
    let list = spec
        .list
        .iter()
        .map(|(name, offer)| compile_offer(c, name, offer, params, suppressions))
        .collect();
    let from_at = match spec.from {
        Some(_) => c.at(&["offers", "from"]),
        None => c.at(&["segments", "from"]),
    };
    Some(Offers {
        from,
        from_at,
        max_per_customer: spec.max_per_customer,
        list,
    })
}

fn compile_offer(
    c: &mut Compiler,
    name: &str,
    spec: &OfferSpec,
    params: &Params,
    suppressions: &[&str],
) -> Offer {
    let path = ["offers", "list", name];
    c.check_name(&path, name);
    let channels_at = ["offers", "list", name, "channels"];
    if spec.channels.is_empty() {
        c.problem(
            &path,
            format!("offers.list.{name}.channels: name at least one channel (e.g. [email])"),
        );
    } else if spec.channels.len() > MAX_CHANNELS {
        c.problem(
            &channels_at,
            format!(
                "offers.list.{name}.channels: an offer reaches customers on at most {MAX_CHANNELS} channels; this one lists {}",
                spec.channels.len()
            ),
        );
    }
    c.check_channels(&channels_at, &spec.channels);
    if spec.eligible.is_empty() {
        c.problem(
            &path,
            format!("offers.list.{name}.eligible: give at least one condition"),
        );
    }
    let eligible = c.conditions(
        &["offers", "list", name, "eligible"],
        &spec.eligible,
        params,
    );
    let score = spec.score.as_ref().and_then(|text| {
        let at = c.at(&["offers", "list", name, "score"]);
        c.condition(at, "score", &ConditionSpec::Expr(text.clone()), params)
    });
    for rule in &spec.suppressed_by {
        if !suppressions.contains(&rule.as_str()) {
            c.problem(
                &["offers", "list", name, "suppressed_by"],
                format!("offers.list.{name}.suppressed_by: no suppression named \"{rule}\""),
            );
        }
    }
    if spec.capacity == Some(0) {
        c.problem(
            &["offers", "list", name, "capacity"],
            format!(
                "offers.list.{name}.capacity: 0 gives the offer to nobody (it does not mean no limit): leave capacity out for no limit; to pause the offer, make it eligible to nobody (eligible: {{ paused: \"false\" }})"
            ),
        );
    }
    let holdout = spec
        .holdout
        .as_ref()
        .and_then(|h| compile_holdout(c, &["offers", "list", name, "holdout"], h));
    Offer {
        name: name.to_string(),
        description: spec.description.clone(),
        eligible,
        priority: spec.priority,
        score,
        capacity: spec.capacity,
        channels: spec.channels.clone(),
        holdout,
        suppressed_by: spec.suppressed_by.clone(),
        at: c.at(&path),
    }
}
