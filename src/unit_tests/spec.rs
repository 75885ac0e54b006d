//! Test files as written: plain serde data. Every struct denies unknown fields, so a typo is an
//! error naming the allowed keys at the line serde_yaml reports.

use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::location::Diagnostic;
use crate::location::Location;

/// One row: column name → value, in the order written.
pub type Row = IndexMap<String, serde_yaml::Value>;

/// A test file: defaults shared by its tests, then the tests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFileSpec {
    /// The run date of every test that does not set its own.
    #[serde(default)]
    pub run_date: Option<String>,
    /// Parameter overrides for every test (a test's own `params` win).
    #[serde(default)]
    pub params: IndexMap<String, serde_yaml::Value>,
    /// Rows for every test (a test's own `given` replaces a table given here).
    #[serde(default)]
    pub given: IndexMap<String, Vec<Row>>,
    pub tests: Vec<TestSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The date the pipeline runs for (`$run_date`); required here or at the top of the file.
    #[serde(default)]
    pub run_date: Option<String>,
    /// Parameter overrides, typed like `--param`.
    #[serde(default)]
    pub params: IndexMap<String, serde_yaml::Value>,
    /// Rows of sources (all others are empty) or of models (replacing their SQL).
    #[serde(default)]
    pub given: IndexMap<String, Vec<Row>>,
    pub expect: ExpectSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    #[serde(default)]
    pub model: Option<String>,
    /// A segment's audience, after suppressions.
    #[serde(default)]
    pub segment: Option<String>,
    /// The keys a suppression rule matches.
    #[serde(default)]
    pub suppression: Option<String>,
    /// `true` for every offer row, or an offer's name for its rows only.
    #[serde(default)]
    pub offers: Option<serde_yaml::Value>,
    /// The columns compared (default: the keys of the first row).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The rows expected, in any order; `[]` expects none.
    pub rows: Vec<Row>,
}

/// Parses a test file, reporting errors as `file:line:column: field.path: message`.
pub fn parse(file: &Path, text: &str) -> Result<TestFileSpec, Diagnostic> {
    if let Err(crate::spec::SpecError::Yaml { at, message }) =
        crate::spec::check_shape(file, text, true)
    {
        return Err(Diagnostic::new(at, message));
    }
    serde_yaml::from_str(text).map_err(|err| {
        let (at, mut message) = crate::spec::describe_yaml_error(file, &err);
        if message.contains("missing field \"tests\"") {
            message =
                "a test file lists its tests under \"tests:\" (see `segflow test --help`)".into();
        }
        Diagnostic::new(at, message)
    })
}

/// The text of a YAML value as written, for parameters: `100`, `2.5`, `true`, `2026-01-31`.
pub fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Tagged(tagged) => scalar_text(&tagged.value),
        serde_yaml::Value::Null
        | serde_yaml::Value::Sequence(_)
        | serde_yaml::Value::Mapping(_) => None,
    }
}

/// Where each test of a file starts, so problems inside a test point at their line.
///
/// `spec::locate` walks one mapping at a time; test items hold sequences of rows themselves,
/// so each item is located here and paths inside it are located within the item's lines.
pub struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    /// 0-based `[first, end)` line ranges of the items of `tests:`.
    items: Vec<(usize, usize)>,
}

impl<'a> Locator<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            items: item_ranges(text, "tests"),
        }
    }

    /// The start of test `index` (its `- ` line).
    pub fn test(&self, index: usize) -> Location {
        match self.items.get(index) {
            Some(&(first, _)) => {
                let line = self.text.lines().nth(first).unwrap_or("");
                let column = line.len() - line.trim_start().len() + 1;
                Location::new(self.file, first + 1, column)
            }
            None => self.file_at(&["tests"]),
        }
    }

    /// A path inside test `index`, e.g. `["given", "customers", "0", "first_name"]`.
    pub fn in_test(&self, index: usize, path: &[&str]) -> Location {
        if path.is_empty() {
            return self.test(index);
        }
        let Some(&(first, end)) = self.items.get(index) else {
            return self.file_at(&["tests"]);
        };
        let block: Vec<&str> = self.text.lines().skip(first).take(end - first).collect();
        let (line, column) = crate::spec::locate(&block.join("\n"), path);
        Location::new(self.file, first + line, column)
    }

    /// A path from the top of the file, e.g. `["given", "customers"]`.
    pub fn file_at(&self, path: &[&str]) -> Location {
        let (line, column) = crate::spec::locate(self.text, path);
        Location::new(self.file, line, column)
    }
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_item(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("- ") || t == "-"
}

/// Line ranges of the items of the top-level sequence `key:` written in block style.
fn item_ranges(text: &str, key: &str) -> Vec<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| {
        indent_of(l) == 0
            && l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
    }) else {
        return Vec::new();
    };
    let mut starts = Vec::new();
    let mut item_indent = None;
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate().skip(start + 1) {
        if is_blank(line) {
            continue;
        }
        let indent = indent_of(line);
        let expected = *item_indent.get_or_insert(indent);
        if indent < expected || (indent == expected && !is_item(line)) {
            end = i;
            break;
        }
        if indent == expected {
            starts.push(i);
        }
    }
    let mut ranges = Vec::new();
    for (n, &first) in starts.iter().enumerate() {
        let mut last = starts.get(n + 1).copied().unwrap_or(end);
        // Comments and blank lines before the next item belong to it.
        while last > first + 1 && is_blank(lines[last - 1]) {
            last -= 1;
        }
        ranges.push((first, last));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# tests for the unit pipeline
run_date: 2026-11-20
tests:
  - name: first
    given:
      customers:
        - { customer_id: 1, first_nme: Ada }
        - customer_id: 2
          first_name: Bob
    expect:
      model: profile
      rows:
        - { customer_id: 1 }

  # the second test
  - name: second
    given:
      purchases:
        - { customer_id: 1, amount: x }
    expect: { model: spend, rows: [] }
";

    #[test]
    fn parses_tests_with_defaults() {
        let spec = parse(Path::new("t.yaml"), FILE).unwrap();
        assert_eq!(spec.run_date.as_deref(), Some("2026-11-20"));
        assert_eq!(spec.tests.len(), 2);
        assert_eq!(spec.tests[0].given["customers"].len(), 2);
        assert_eq!(spec.tests[0].expect.model.as_deref(), Some("profile"));
        assert!(spec.tests[1].expect.rows.is_empty());
    }

    #[test]
    fn unknown_keys_are_located_and_list_the_allowed_ones() {
        let text = FILE.replace("      model: profile", "      modle: profile");
        let err = parse(Path::new("t.yaml"), &text).unwrap_err().to_string();
        assert!(err.starts_with("t.yaml:11:"), "{err}");
        assert!(err.contains("unknown field \"modle\""), "{err}");
        assert!(err.contains("expected one of"), "{err}");
    }

    #[test]
    fn a_file_without_tests_says_where_they_go() {
        let err = parse(Path::new("t.yaml"), "run_date: 2026-01-01\n").unwrap_err();
        assert!(err.to_string().contains("under \"tests:\""), "{err}");
    }

    #[test]
    fn tests_and_paths_inside_them_are_located() {
        let locator = Locator::new(Path::new("t.yaml"), FILE);
        assert_eq!(locator.test(0).to_string(), "t.yaml:4:3");
        assert_eq!(locator.test(1).to_string(), "t.yaml:16:3");
        let at = locator.in_test(0, &["given", "customers", "0", "first_nme"]);
        assert_eq!(at.to_string(), "t.yaml:7:29");
        let at = locator.in_test(0, &["given", "customers", "1", "first_name"]);
        assert_eq!(at.to_string(), "t.yaml:9:11");
        let at = locator.in_test(1, &["given", "purchases", "0", "amount"]);
        assert_eq!(at.to_string(), "t.yaml:19:29");
        let at = locator.in_test(1, &["expect", "model"]);
        assert_eq!(at.to_string(), "t.yaml:20:15");
        assert_eq!(locator.file_at(&["run_date"]).to_string(), "t.yaml:2:1");
    }

    #[test]
    fn items_may_sit_at_the_same_indent_as_their_key() {
        let text = "tests:\n- name: a\n  expect: {model: m, rows: []}\n- name: b\n  expect: {model: m, rows: []}\nrun_date: 2026-01-01\n";
        assert_eq!(item_ranges(text, "tests"), vec![(1, 3), (3, 5)]);
    }

    #[test]
    fn parameters_become_text_like_on_the_command_line() {
        let value: serde_yaml::Value = serde_yaml::from_str("2.5").unwrap();
        assert_eq!(scalar_text(&value).as_deref(), Some("2.5"));
        let value: serde_yaml::Value = serde_yaml::from_str("2026-01-31").unwrap();
        assert_eq!(scalar_text(&value).as_deref(), Some("2026-01-31"));
        assert_eq!(scalar_text(&serde_yaml::Value::Null), None);
    }
}
