//! Control groups: a stable hash of (salt, key) puts a fixed share of customers in `control`,
//! the same day after day and in every segment or offer they move to; A/B splits divide the
//! rest into variants the same way.
//!
//! A key's bucket is `segflow_bucket(salt, key)` in [0, 10000). Groups are decided in order:
//! the global holdout (`global_control`), then the segment's or offer's own holdout
//! (`control`), then its split variant, else `treatment`. Raising a percentage only adds
//! customers to control.

use crate::compile::{Compiler, is_valid_name};
use crate::functions::BUCKETS;
use crate::spec::{HoldoutSpec, SplitSpec};
use crate::sql::literal;

/// A deterministic control group: keys whose bucket is below `below` (out of 10,000).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Holdout {
    pub(crate) salt: String,
    pub(crate) below: u32,
}

/// Treated members divided into variants by bucket ranges `[previous upper, upper)`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Split {
    pub(crate) salt: String,
    pub(crate) variants: Vec<(String, u32)>,
}

/// Compiles a `holdout:` at `path`.
pub(crate) fn compile_holdout(
    c: &mut Compiler,
    path: &[&str],
    spec: &HoldoutSpec,
) -> Option<Holdout> {
    if !(0.0..=100.0).contains(&spec.percent) {
        c.problem(path, "holdout.percent: use a share between 0 and 100");
        return None;
    }
    let below = (spec.percent * f64::from(BUCKETS) / 100.0).round() as u32;
    if below == 0 && spec.percent > 0.0 {
        // A share that rounds to no bucket would silently leave the control group empty.
        c.problem(
            path,
            format!(
                "holdout.percent: {} is less than one bucket (0.01%): the control group would be empty; use at least 0.01, or 0 for none",
                spec.percent
            ),
        );
        return None;
    }
    // A key is in the group when its bucket is below `percent × 100`: a share between two
    // buckets (33.3301) would be rounded, the group one bucket larger or smaller than it says.
    let buckets = spec.percent * f64::from(BUCKETS) / 100.0;
    if (buckets - buckets.round()).abs() > 1e-6 {
        let step = |n: f64| n * 100.0 / f64::from(BUCKETS);
        c.problem(
            path,
            format!(
                "holdout.percent: {} is not a whole number of buckets, which are 0.01% each; use {} or {}",
                spec.percent,
                step(buckets.floor()),
                step(buckets.ceil())
            ),
        );
        return None;
    }
    Some(Holdout {
        salt: spec.salt.clone(),
        below,
    })
}

/// Records a problem for each salt of a segment's or offer's own groups that is also the salt
/// of a group decided before it (`global`, then `holdout`). Groups are cut from the buckets of
/// their salts in order, so a salt used twice cuts the same buckets twice: the later group
/// would come out smaller than asked, or empty, and a split's shares skewed. `path` is the
/// segment's or offer's entry, `what` how messages name it (e.g. `segments.list.vip`).
pub(crate) fn check_salts(
    c: &mut Compiler,
    path: &[&str],
    what: &str,
    global: Option<&Holdout>,
    holdout: Option<&Holdout>,
    split: Option<&Split>,
) {
    let own = [
        ("holdout", holdout.map(|h| &h.salt)),
        ("split", split.map(|s| &s.salt)),
    ];
    for (group, salt) in own {
        if let Some(salt) = salt.filter(|salt| salt.starts_with("segflow-")) {
            let at: Vec<&str> = path.iter().copied().chain([group, "salt"]).collect();
            c.problem(
                &at,
                format!("{what}.{group}.salt: \"{salt}\": salts starting with segflow- are segflow's own (offers' capacity tie-breaks); choose another"),
            );
        }
    }
    let earlier = |salt: &str, own_holdout: bool| {
        if global.is_some_and(|g| g.salt == salt) {
            Some("the global holdout's salt")
        } else if own_holdout && holdout.is_some_and(|h| h.salt == salt) {
            Some("the salt of its own holdout")
        } else {
            None
        }
    };
    let mut report = |group: &str, salt: &str, clash: &str, effect: &str| {
        let at: Vec<&str> = path.iter().copied().chain([group, "salt"]).collect();
        c.problem(
            &at,
            format!(
                "{what}.{group}.salt: \"{salt}\" is also {clash}; the same buckets would decide both groups, so {effect}. Give the {group} a salt of its own"
            ),
        );
    };
    if let Some(h) = holdout
        && let Some(clash) = earlier(&h.salt, false)
    {
        report(
            "holdout",
            &h.salt,
            clash,
            "this control group would come out smaller than asked, or empty",
        );
    }
    if let Some(s) = split
        && let Some(clash) = earlier(&s.salt, true)
    {
        report(
            "split",
            &s.salt,
            clash,
            "the variants would not get the shares asked",
        );
    }
}

/// Compiles a `split:` at `path`.
pub(crate) fn compile_split(c: &mut Compiler, path: &[&str], spec: &SplitSpec) -> Option<Split> {
    // Weights are shares: any positive whole numbers, summed without overflow.
    let total: u64 = spec.variants.values().map(|w| u64::from(*w)).sum();
    if spec.variants.len() < 2 || spec.variants.values().any(|w| *w == 0) {
        c.problem(
            path,
            "split.variants: name at least two variants, each with a positive weight",
        );
        return None;
    }
    if total > 1_000_000 {
        c.problem(
            path,
            format!("split.variants: the weights add up to {total}; use shares that add up to at most 1000000 (e.g. 50 and 50)"),
        );
        return None;
    }
    let mut cumulative = 0;
    let mut variants = Vec::new();
    for (name, weight) in &spec.variants {
        if !is_valid_name(name)
            || matches!(name.as_str(), "treatment" | "control" | "global_control")
        {
            c.problem(
                path,
                format!("split.variants.{name}: variant names are lower-case identifiers other than treatment/control"),
            );
        }
        cumulative += u64::from(*weight);
        let upper = cumulative * u64::from(BUCKETS) / total;
        variants.push((name.clone(), upper as u32));
    }
    Some(Split {
        salt: spec.salt.clone(),
        variants,
    })
}

/// The holdouts and split of one segment or offer.
pub(crate) struct Groups<'a> {
    pub(crate) target: &'a str,
    pub(crate) holdout: Option<&'a Holdout>,
    pub(crate) split: Option<&'a Split>,
}

fn bucket_below(salt: &str, key: &str, below: u32) -> String {
    format!("segflow_bucket({}, {key}) < {below}", literal(salt))
}

/// The SQL expression giving a row's group: `key` is the key expression, `target` the
/// expression naming the row's segment or offer.
pub(crate) fn group_case(
    global: Option<&Holdout>,
    targets: &[Groups<'_>],
    key: &str,
    target: &str,
) -> String {
    let mut case = String::from("CASE");
    if let Some(global) = global {
        case += &format!(
            " WHEN {} THEN 'global_control'",
            bucket_below(&global.salt, key, global.below)
        );
    }
    for groups in targets {
        let is = format!("{target} = {}", literal(groups.target));
        if let Some(holdout) = groups.holdout {
            case += &format!(
                " WHEN {is} AND {} THEN 'control'",
                bucket_below(&holdout.salt, key, holdout.below)
            );
        }
        if let Some(split) = groups.split {
            for (variant, upper) in &split.variants {
                case += &format!(
                    " WHEN {is} AND {} THEN {}",
                    bucket_below(&split.salt, key, *upper),
                    literal(variant)
                );
            }
        }
    }
    if case == "CASE" {
        "'treatment'".to_string()
    } else {
        case + " ELSE 'treatment' END"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_go_global_then_own_holdout_then_split() {
        let global = Holdout {
            salt: "g".into(),
            below: 500,
        };
        let own = Holdout {
            salt: "s".into(),
            below: 1000,
        };
        let split = Split {
            salt: "ab".into(),
            variants: vec![("a".into(), 5000), ("b".into(), 10000)],
        };
        let sql = group_case(
            Some(&global),
            &[Groups {
                target: "x",
                holdout: Some(&own),
                split: Some(&split),
            }],
            "k",
            "segment",
        );
        assert_eq!(
            sql,
            "CASE WHEN segflow_bucket('g', k) < 500 THEN 'global_control' \
             WHEN segment = 'x' AND segflow_bucket('s', k) < 1000 THEN 'control' \
             WHEN segment = 'x' AND segflow_bucket('ab', k) < 5000 THEN 'a' \
             WHEN segment = 'x' AND segflow_bucket('ab', k) < 10000 THEN 'b' \
             ELSE 'treatment' END"
        );
        assert_eq!(group_case(None, &[], "k", "segment"), "'treatment'");
    }
}
