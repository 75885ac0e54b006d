//! Compiled segments: each one's rule, control group, split and channels.

use crate::compile::{Compiler, MAX_CHANNELS};
use crate::holdouts::{Groups, Holdout, Split, check_salts, compile_holdout, compile_split};
use crate::location::Location;
use crate::spec::SegmentsSpec;
use crate::sql::{Params, Rule};
use crate::suppressions::Reach;

#[derive(Debug, Clone)]
pub(crate) struct Segments {
    /// The profile model every condition reads (materialized by the run).
    pub(crate) from: String,
    /// Where `from:` is written.
    pub(crate) from_at: Location,
    /// The global control group: these customers receive nothing, in every segment and offer.
    pub(crate) holdout: Option<Holdout>,
    pub(crate) list: Vec<Segment>,
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) rule: Rule,
    pub(crate) holdout: Option<Holdout>,
    pub(crate) split: Option<Split>,
    pub(crate) channels: Vec<String>,
    pub(crate) at: Location,
}

impl Segments {
    /// The channels the segments are activated through, once each, in name order.
    pub(crate) fn channel_names(&self) -> Vec<&str> {
        let names: std::collections::BTreeSet<&str> = self
            .list
            .iter()
            .flat_map(|s| &s.channels)
            .map(String::as_str)
            .collect();
        names.into_iter().collect()
    }

    /// Each segment with the channels suppressions may hold it back on.
    pub(crate) fn reach(&self) -> Vec<Reach<'_>> {
        self.list
            .iter()
            .map(|s| Reach {
                name: &s.name,
                channels: &s.channels,
                suppressed_by: &[],
            })
            .collect()
    }

    /// Each segment's holdout and split, for the group expression.
    pub(crate) fn groups(&self) -> Vec<Groups<'_>> {
        self.list
            .iter()
            .map(|s| Groups {
                target: &s.name,
                holdout: s.holdout.as_ref(),
                split: s.split.as_ref(),
            })
            .collect()
    }
}

/// Compiles `segments:`; `models` are the models a profile may be.
pub(crate) fn compile(
    c: &mut Compiler,
    spec: &SegmentsSpec,
    params: &Params,
    models: &[&str],
) -> Segments {
    if !models.contains(&spec.from.as_str()) {
        c.problem(
            &["segments", "from"],
            format!(
                "segments.from: \"{}\" is not a model of this pipeline (models: {})",
                spec.from,
                models.join(", ")
            ),
        );
    }
    let global = spec
        .holdout
        .as_ref()
        .and_then(|h| compile_holdout(c, &["segments", "holdout"], h));
    if spec.list.is_empty() {
        c.problem(
            &["segments", "list"],
            "segments.list: declare at least one segment, or remove `segments:`",
        );
    }
    let mut list = Vec::new();
    for (name, segment) in &spec.list {
        let path = ["segments", "list", name.as_str()];
        c.check_name(&path, name);
        let channels = segment.channels.clone().unwrap_or_default();
        c.check_channels(&["segments", "list", name, "channels"], &channels);
        let Some(rule) = c.rule(&path, &segment.conditions, segment.sql.as_deref(), params) else {
            continue;
        };
        let holdout = segment
            .holdout
            .as_ref()
            .and_then(|h| compile_holdout(c, &["segments", "list", name, "holdout"], h));
        let split = segment
            .split
            .as_ref()
            .and_then(|s| compile_split(c, &["segments", "list", name, "split"], s));
        check_salts(
            c,
            &path,
            &format!("segments.list.{name}"),
            global.as_ref(),
            holdout.as_ref(),
            split.as_ref(),
        );
        list.push(Segment {
            name: name.clone(),
            description: segment.description.clone(),
            rule,
            holdout,
            split,
            channels,
            at: c.at(&path),
        });
    }
    let segments = Segments {
        from: spec.from.clone(),
        from_at: c.at(&["segments", "from"]),
        holdout: global,
        list,
    };
    let channels = segments.channel_names().len();
    if channels > MAX_CHANNELS {
        c.problem(
            &["segments", "list"],
            format!(
                "segments.list: segments reach customers on at most {MAX_CHANNELS} channels in all; these name {channels}"
            ),
        );
    }
    segments
}
