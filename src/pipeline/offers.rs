//! Compiled offers: eligibility, score, capacity, channels, control groups.

use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use super::segments::{Condition, Holdout};
use super::{Compiler, Params};
use crate::location::Location;
use crate::spec::{ConditionSpec, OffersSpec};

#[derive(Debug, Clone)]
pub struct Offers {
    /// The profile model eligibility and scores read.
    pub from: String,
    pub max_per_customer: u32,
    pub list: Vec<Offer>,
}

#[derive(Debug, Clone)]
pub struct Offer {
    pub name: String,
    pub description: String,
    pub eligible: Vec<Condition>,
    pub priority: i64,
    /// The score expression, placeholders typed; the priority when absent.
    pub score: Option<SqlExpr>,
    pub score_text: Option<String>,
    pub capacity: Option<u64>,
    pub channels: Vec<String>,
    pub holdout: Option<Holdout>,
    pub suppressed_by: Vec<String>,
    pub at: Location,
}

impl Offer {
    /// The score as SQL (a DOUBLE).
    pub fn score_sql(&self) -> String {
        match &self.score {
            Some(expr) => format!("CAST(({expr}) AS DOUBLE)"),
            None => format!("CAST({} AS DOUBLE)", self.priority),
        }
    }
}

impl Compiler<'_> {
    pub(super) fn offers(
        &mut self,
        spec: &OffersSpec,
        params: &Params,
        default_from: Option<&str>,
        known_models: &[&str],
        suppressions: &[&str],
    ) -> Option<Offers> {
        let from = match (spec.from.as_deref(), default_from) {
            (Some(from), _) | (None, Some(from)) => from.to_string(),
            (None, None) => {
                self.problem(
                    &["offers"],
                    "offers.from: name the profile model offers are decided on",
                );
                return None;
            }
        };
        if !known_models.contains(&from.as_str()) {
            self.problem(
                &["offers", "from"],
                format!("offers.from: \"{from}\" is not a model of this pipeline"),
            );
        }
        if spec.max_per_customer == 0 {
            self.problem(
                &["offers", "max_per_customer"],
                "offers.max_per_customer: give at least 1",
            );
        }
        let mut list = Vec::new();
        for (name, offer) in &spec.list {
            let path = ["offers", "list", name.as_str()];
            if !super::is_valid_name(name) {
                self.problem(
                    &path,
                    format!("offers.list.{name}: names may use lower-case letters, digits and _"),
                );
            }
            if offer.channels.is_empty() {
                self.problem(
                    &path,
                    format!(
                        "offers.list.{name}.channels: name at least one channel (e.g. [email])"
                    ),
                );
            }
            if offer.eligible.is_empty() {
                self.problem(
                    &path,
                    format!("offers.list.{name}.eligible: give at least one condition"),
                );
            }
            let mut eligible = Vec::new();
            for (cond, condition) in &offer.eligible {
                let at = self.at(&["offers", "list", name, "eligible", cond]);
                if let Some(c) = self.condition(at, cond, condition, params) {
                    eligible.push(c);
                }
            }
            let score = offer.score.as_ref().and_then(|text| {
                let at = self.at(&["offers", "list", name, "score"]);
                self.condition(at, "score", &ConditionSpec::Expr(text.clone()), params)
                    .map(|c| c.expr)
            });
            for rule in &offer.suppressed_by {
                if !suppressions.contains(&rule.as_str()) {
                    self.problem(
                        &["offers", "list", name, "suppressed_by"],
                        format!(
                            "offers.list.{name}.suppressed_by: no suppression named \"{rule}\""
                        ),
                    );
                }
            }
            let holdout = offer
                .holdout
                .as_ref()
                .and_then(|h| self.holdout(&["offers", "list", name, "holdout"], h));
            list.push(Offer {
                name: name.clone(),
                description: offer.description.clone(),
                eligible,
                priority: offer.priority,
                score,
                score_text: offer.score.clone(),
                capacity: offer.capacity,
                channels: offer.channels.clone(),
                holdout,
                suppressed_by: offer.suppressed_by.clone(),
                at: self.at(&path),
            });
        }
        Some(Offers {
            from,
            max_per_customer: spec.max_per_customer,
            list,
        })
    }
}
