//! Compiled suppression rules: what a rule matches, why, and what it holds customers back from.

use indexmap::IndexMap;

use crate::compile::Compiler;
use crate::location::Location;
use crate::spec::SuppressionSpec;
use crate::sql::{Params, Rule};

/// A rule that holds customers back, with its reason and what it holds them back from.
#[derive(Debug, Clone)]
pub(crate) struct Suppression {
    pub(crate) name: String,
    pub(crate) reason: String,
    pub(crate) rule: Rule,
    pub(crate) scope: Scope,
    pub(crate) at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scope {
    Everything,
    Only {
        segments: Vec<String>,
        offers: Vec<String>,
        channels: Vec<String>,
    },
}

impl Scope {
    /// The channels the scope names (none for `Everything`).
    pub(crate) fn channels(&self) -> &[String] {
        match self {
            Scope::Everything => &[],
            Scope::Only { channels, .. } => channels,
        }
    }

    /// Which of a segment's `channels` this scope holds back: `None` for the whole segment.
    pub(crate) fn segment_channels<'a>(
        &self,
        segment: &str,
        channels: &'a [String],
    ) -> Option<Vec<&'a str>> {
        self.target_channels(
            |segments, _| segments.iter().any(|s| s == segment),
            channels,
        )
    }

    /// Which of an offer's `channels` this scope holds back: `None` for the whole offer.
    pub(crate) fn offer_channels<'a>(
        &self,
        offer: &str,
        channels: &'a [String],
    ) -> Option<Vec<&'a str>> {
        self.target_channels(|_, offers| offers.iter().any(|o| o == offer), channels)
    }

    /// Which of a target's `channels` this scope holds back (`None`: all of it; `named` says
    /// whether the scope names the target). A scope naming segments or offers holds back
    /// those only: the whole of each, or with `channels` too, each on those channels only
    /// (`{ offers: [x], channels: [sms] }` is offer x via sms). A scope of channels alone
    /// holds them back on every segment and offer.
    fn target_channels<'a>(
        &self,
        named: impl Fn(&[String], &[String]) -> bool,
        channels: &'a [String],
    ) -> Option<Vec<&'a str>> {
        let Scope::Only {
            segments,
            offers,
            channels: held,
        } = self
        else {
            return None;
        };
        let names_targets = !segments.is_empty() || !offers.is_empty();
        match (named(segments, offers), held.is_empty()) {
            (true, true) => None,
            (true, false) => Some(named_channels(channels, held)),
            (false, _) if names_targets => Some(Vec::new()),
            (false, _) => Some(named_channels(channels, held)),
        }
    }

    /// The scope in words, for `explain` and the manifest.
    pub(crate) fn describe(&self) -> String {
        match self {
            Scope::Everything => "everything".into(),
            Scope::Only {
                segments,
                offers,
                channels,
            } => {
                let mut parts = Vec::new();
                if !segments.is_empty() {
                    parts.push(format!("segments {}", segments.join(", ")));
                }
                if !offers.is_empty() {
                    parts.push(format!("offers {}", offers.join(", ")));
                }
                let targets = parts.join("; ");
                match (targets.is_empty(), channels.join(", ")) {
                    (_, c) if c.is_empty() => targets,
                    (true, c) => format!("channels {c}"),
                    (false, c) => format!("{targets}, on channels {c}"),
                }
            }
        }
    }
}

/// What a scope may name: the pipeline's segments and offers, and the channels they use.
pub(crate) struct Targets<'a> {
    pub(crate) segments: Vec<&'a str>,
    pub(crate) offers: Vec<&'a str>,
    pub(crate) channels: Vec<&'a str>,
}

/// Compiles `suppressions:`; `has_profile` tells whether segments or offers give the rules a
/// profile to read.
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, SuppressionSpec>,
    params: &Params,
    targets: &Targets,
    has_profile: bool,
) -> Vec<Suppression> {
    let mut list = Vec::new();
    for (name, spec) in specs {
        let path = ["suppressions", name.as_str()];
        c.check_name(&path, name);
        if !has_profile {
            c.problem(&path, format!("suppressions.{name}: suppressions hold customers back from segments or offers; declare segments or offers (their profile is what conditions read)"));
        }
        let rule = c.rule(&path, &spec.conditions, spec.sql.as_deref(), params);
        let scope = compile_scope(c, name, spec, targets);
        if let (Some(rule), Some(scope)) = (rule, scope) {
            list.push(Suppression {
                name: name.clone(),
                reason: spec.reason.clone(),
                rule,
                scope,
                at: c.at(&path),
            });
        }
    }
    list
}

fn compile_scope(
    c: &mut Compiler,
    name: &str,
    spec: &SuppressionSpec,
    targets: &Targets,
) -> Option<Scope> {
    let Some(scope) = &spec.scope else {
        return Some(Scope::Everything);
    };
    let mut valid = true;
    let mut check = |c: &mut Compiler, field: &str, named: &[String], known: &[&str]| {
        for item in named {
            if !known.contains(&item.as_str()) {
                valid = false;
                let kind = field.trim_end_matches('s');
                let choices = if known.is_empty() {
                    format!("the pipeline has no {field}")
                } else {
                    format!("the pipeline's {field}: {}", known.join(", "))
                };
                c.problem(
                    &["suppressions", name, "scope", field],
                    format!("suppressions.{name}.scope: no {kind} named \"{item}\"; {choices}"),
                );
            }
        }
    };
    check(c, "segments", &scope.segments, &targets.segments);
    check(c, "offers", &scope.offers, &targets.offers);
    check(c, "channels", &scope.channels, &targets.channels);
    if scope.segments.is_empty() && scope.offers.is_empty() && scope.channels.is_empty() {
        c.problem(
            &["suppressions", name, "scope"],
            format!("suppressions.{name}.scope: an empty scope would hold back nobody; name segments, offers or channels, or leave scope out to hold back everything"),
        );
        valid = false;
    }
    valid.then(|| Scope::Only {
        segments: scope.segments.clone(),
        offers: scope.offers.clone(),
        channels: scope.channels.clone(),
    })
}

/// The `channels` a scope names.
fn named_channels<'a>(channels: &'a [String], held: &[String]) -> Vec<&'a str> {
    channels
        .iter()
        .filter(|c| held.contains(c))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_holds_back_whole_segments_and_offers_or_their_named_channels() {
        let channels = vec!["email".to_string(), "mail".to_string()];
        let scope = Scope::Only {
            segments: vec!["a".into()],
            offers: vec![],
            channels: vec!["email".into()],
        };
        // Segment a on e-mail only; nothing else.
        assert_eq!(scope.segment_channels("a", &channels), Some(vec!["email"]));
        assert_eq!(scope.segment_channels("b", &channels), Some(vec![]));
        assert_eq!(Scope::Everything.segment_channels("b", &channels), None);
        assert_eq!(scope.offer_channels("x", &channels), Some(vec![]));
        assert_eq!(scope.describe(), "segments a, on channels email");
        let email = Scope::Only {
            segments: vec![],
            offers: vec![],
            channels: vec!["email".into()],
        };
        assert_eq!(email.segment_channels("b", &channels), Some(vec!["email"]));
        assert_eq!(email.offer_channels("x", &channels), Some(vec!["email"]));
        assert_eq!(email.describe(), "channels email");
        let offer = Scope::Only {
            segments: vec![],
            offers: vec!["x".into()],
            channels: vec![],
        };
        assert_eq!(offer.offer_channels("x", &channels), None);
        assert_eq!(offer.offer_channels("y", &channels), Some(vec![]));
        assert_eq!(Scope::Everything.offer_channels("y", &channels), None);
    }
}
