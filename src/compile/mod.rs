//! What every part of a pipeline uses to compile itself from its spec: where a field of the
//! YAML is (so every problem names its line), the problems found so far, the project folder
//! relative paths resolve against, and reading and parsing the SQL files and conditions the
//! pipeline names.
//!
//! Compiling never touches data, and collects *every* problem in one pass.

mod dag;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

pub(crate) use dag::topological_order;

use crate::location::{Diagnostic, Location};
use crate::spec::{self, ConditionSpec, TextError};
use crate::sql::{Condition, Params, Rule, SqlQuery, parse_condition, parse_query};

/// The most channels one offer may list, and the segments in all: segments and offers keep
/// the channels left to reach a customer after suppressions as the bits of one BIGINT.
pub(crate) const MAX_CHANNELS: usize = 62;

/// The compile context of one pipeline file.
pub(crate) struct Compiler<'a> {
    file: &'a Path,
    text: &'a str,
    root: PathBuf,
    problems: Vec<Diagnostic>,
    /// The pipeline's declared `channels:`, when it declares them.
    channels: Option<Vec<String>>,
}

impl<'a> Compiler<'a> {
    /// `text` is the pipeline file's YAML, used to locate problems.
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            root: project_root(file),
            problems: Vec::new(),
            channels: None,
        }
    }

    /// Checks the pipeline's `channels:` (named as channels, each once) and keeps them: every
    /// segment and offer channel must then be one of them.
    pub(crate) fn declare_channels(&mut self, channels: &[String]) {
        self.check_channels(&["channels"], channels);
        self.channels = Some(channels.to_vec());
    }

    /// The folder relative paths in the pipeline resolve against.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where the field at `path` (e.g. `["segments", "list", "x"]`) is written.
    pub(crate) fn at(&self, path: &[&str]) -> Location {
        let (line, column) = spec::locate(self.text, path);
        Location::new(self.file, line, column)
    }

    /// A path from the pipeline, relative to the project root (kept short for messages).
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if self.root == Path::new(".") {
            path.to_owned()
        } else {
            self.root.join(path)
        }
    }

    /// How many problems were found so far.
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// Records a problem at the field `path`.
    pub(crate) fn problem(&mut self, path: &[&str], message: impl Into<String>) {
        let at = self.at(path);
        self.problems.push(Diagnostic::new(at, message));
    }

    pub(crate) fn problem_at(&mut self, at: Location, message: impl Into<String>) {
        self.problems.push(Diagnostic::new(at, message));
    }

    /// Every problem found, or `Ok` when there were none.
    pub(crate) fn finish(self) -> Result<PathBuf, Vec<Diagnostic>> {
        if self.problems.is_empty() {
            Ok(self.root)
        } else {
            Err(self.problems)
        }
    }

    /// Names become SQL tables and folder names: the entry at `path` must be a safe name.
    pub(crate) fn check_name(&mut self, path: &[&str], name: &str) {
        if !is_valid_name(name) {
            let rule = match name.len() > MAX_NAME {
                true => format!("names are at most {MAX_NAME} characters long"),
                false => {
                    "names may use lower-case letters, digits and _ and start with a letter or _"
                        .to_string()
                }
            };
            self.problem(
                path,
                format!(
                    "{}: {rule} (they become SQL tables and folder names)",
                    path.join(".")
                ),
            );
        }
    }

    /// Records each channel `channels` (the list at `path`) names more than once (a channel
    /// listed twice would publish every member's row for it twice), and each not named as a
    /// channel is: suppression scopes, consent among them, hold channels back by their exact
    /// name, so `Email` or `e-mail` beside a consent rule for `email` would reach customers
    /// who withdrew their consent.
    pub(crate) fn check_channels(&mut self, path: &[&str], channels: &[String]) {
        let mut seen = std::collections::BTreeSet::new();
        for channel in channels {
            if !is_valid_name(channel) {
                self.problem(
                    path,
                    format!(
                        "{}: \"{channel}\" is not a channel name: channels are named in lower-case letters, digits and _ (email, sms, push), as suppression scopes name them",
                        path.join(".")
                    ),
                );
            } else if !seen.insert(channel.as_str()) {
                self.problem(
                    path,
                    format!(
                        "{}: \"{channel}\" is listed twice; list each channel once",
                        path.join(".")
                    ),
                );
            } else if let Some(declared) = self.channels.as_ref().filter(|d| !d.contains(channel)) {
                let guess = closest(channel, declared)
                    .map(|name| format!("did you mean {name}? "))
                    .unwrap_or_default();
                let problem = format!(
                    "{}: \"{channel}\" is not one of the pipeline's channels ({}); {guess}name a declared channel, or declare it under `channels:`",
                    path.join("."),
                    declared.join(", ")
                );
                self.problem(path, problem);
            }
        }
    }

    /// Reads and parses a query file named in the pipeline (`what` names the field).
    pub(crate) fn read_sql(
        &mut self,
        at: Location,
        file: &Path,
        params: &Params,
        what: &str,
    ) -> Option<SqlQuery> {
        let path = self.resolve(file);
        let text = match spec::read_text(&path) {
            Ok(text) => text,
            Err(TextError::Read { source, .. }) => {
                let folder = if self.root == Path::new(".") {
                    String::new()
                } else {
                    format!(" {}", self.root.display())
                };
                self.problem_at(
                    at,
                    format!(
                        "{what}: cannot read {}: {source}; create the file or fix the path (relative to the project folder{folder})",
                        path.display(),
                    ),
                );
                return None;
            }
            Err(err) => {
                self.problem_at(at, format!("{what}: {err}"));
                return None;
            }
        };
        match parse_query(&path, &text, params) {
            Ok(query) => Some(query),
            Err(problems) => {
                self.problems.extend(problems);
                None
            }
        }
    }

    /// A condition, parsed as a SQL expression over the profile.
    pub(crate) fn condition(
        &mut self,
        at: Location,
        name: &str,
        spec: &ConditionSpec,
        params: &Params,
    ) -> Option<Condition> {
        let (text, reason) = match spec {
            ConditionSpec::Expr(text) => (text.clone(), format!("{name}: {text}")),
            ConditionSpec::Described { sql, reason } => (sql.clone(), reason.clone()),
        };
        match parse_condition(&at, &text, params) {
            Ok(expr) => Some(Condition {
                name: name.to_string(),
                text,
                expr,
                reason,
                at,
            }),
            Err(message) => {
                self.problem_at(at, format!("condition {name}: {message}"));
                None
            }
        }
    }

    /// Named conditions under `section` (e.g. an offer's `eligible:`), each at its line.
    pub(crate) fn conditions(
        &mut self,
        section: &[&str],
        specs: &IndexMap<String, ConditionSpec>,
        params: &Params,
    ) -> Vec<Condition> {
        let mut list = Vec::new();
        for (name, spec) in specs {
            let mut path = section.to_vec();
            path.push(name.as_str());
            let at = self.at(&path);
            if let Some(condition) = self.condition(at, name, spec, params) {
                list.push(condition);
            }
        }
        list
    }

    /// A rule given as named conditions or a SQL file (segments and suppressions alike).
    pub(crate) fn rule(
        &mut self,
        section: &[&str],
        conditions: &IndexMap<String, ConditionSpec>,
        sql: Option<&Path>,
        params: &Params,
    ) -> Option<Rule> {
        let field = section.join(".");
        match (sql, conditions.is_empty()) {
            (Some(_), false) | (None, true) => {
                self.problem(
                    section,
                    format!("{field}: give either conditions or sql, not both or neither"),
                );
                None
            }
            (Some(file), true) => {
                let mut path = section.to_vec();
                path.push("sql");
                let at = self.at(&path);
                self.read_sql(at, file, params, &format!("{field}.sql"))
                    .map(|q| Rule::Sql(Box::new(q)))
            }
            (None, false) => {
                let mut path = section.to_vec();
                path.push("conditions");
                Some(Rule::Conditions(self.conditions(&path, conditions, params)))
            }
        }
    }
}

/// The folder relative paths resolve against: the project (parent of `pipelines/`) when the
/// file sits in a `pipelines` folder, otherwise the file's own folder.
pub(crate) fn project_root(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if dir.file_name().is_some_and(|n| n == "pipelines") {
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    } else {
        dir.to_owned()
    }
}

/// The one of `names` closest to `name`, if it is a typo away (at most two letters added,
/// removed or changed).
fn closest<'n>(name: &str, names: &'n [String]) -> Option<&'n str> {
    let distance = |other: &str| {
        let (a, b): (Vec<char>, Vec<char>) = (name.chars().collect(), other.chars().collect());
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.iter().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (above + 1)
                    .min(row[j] + 1)
                    .min(diagonal + usize::from(ca != cb));
                diagonal = above;
            }
        }
        row[b.len()]
    };
    (names.iter())
        .map(|other| (distance(other), other.as_str()))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, other)| other)
}

/// Whether `name` is one slip of the keyboard from `other`: a letter added, dropped, changed,
/// or two neighbours swapped (`emial`, `emai`, `emsil` for `email`), past the first letter,
/// which is rarely the one mistyped. Names of their own a letter apart at the start (`mail`
/// and `email`, `sms` and `mms`) are not slips.
pub(crate) fn one_slip(name: &str, other: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (name.chars().collect(), other.chars().collect());
    if a == b || a.first() != b.first() || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    // The first position they differ at; what follows it must then be the same.
    let at = (a.iter().zip(&b)).take_while(|(x, y)| x == y).count();
    let swapped = a.len() == b.len()
        && at + 1 < a.len()
        && a[at] == b[at + 1]
        && a[at + 1] == b[at]
        && a[at + 2..] == b[at + 2..];
    let changed = a.len() == b.len() && a[at + 1..] == b[at + 1..];
    let added = a.len() == b.len() + 1 && a[at + 1..] == b[at..];
    let dropped = b.len() == a.len() + 1 && a[at..] == b[at + 1..];
    swapped || changed || added || dropped
}

/// Names that become SQL identifiers and folder names: lower-case letters, digits, `_`.
/// The longest name, as PostgreSQL and Athena take identifiers.
const MAX_NAME: usize = 63;

pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_a_typo_away_is_guessed() {
        let names = ["email".to_string(), "sms".to_string(), "push".to_string()];
        assert_eq!(closest("emial", &names), Some("email"));
        assert_eq!(closest("mms", &names), Some("sms"));
        assert_eq!(closest("letter", &names), None);
    }

    #[test]
    fn project_root_is_the_parent_of_pipelines() {
        assert_eq!(project_root(Path::new("pipelines/a.yaml")), Path::new("."));
        assert_eq!(
            project_root(Path::new("/p/pipelines/a.yaml")),
            Path::new("/p")
        );
        assert_eq!(
            project_root(Path::new("/p/other/a.yaml")),
            Path::new("/p/other")
        );
        assert_eq!(project_root(Path::new("a.yaml")), Path::new("."));
    }

    #[test]
    fn names_must_be_safe_identifiers() {
        assert!(is_valid_name("lapsing_high_value"));
        assert!(!is_valid_name("../etc"));
        assert!(!is_valid_name("Upper"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
    }

    #[test]
    fn one_slip_is_a_typo_past_the_first_letter() {
        for typo in ["emial", "emai", "emaill", "emsil", "mail"] {
            assert_eq!(one_slip(typo, "email"), typo != "mail", "{typo}");
        }
        assert!(!one_slip("mms", "sms"));
        assert!(!one_slip("post", "push"));
        assert!(!one_slip("email", "email"));
        assert!(one_slip("pusj", "push") && one_slip("sm", "sms") && one_slip("smss", "sms"));
    }
}
