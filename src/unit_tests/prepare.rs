//! Test files checked against the pipeline before anything runs: tables, columns and values of
//! the given rows, parameters, the run date, what is expected and its columns. Every problem is
//! collected, each at its file, line and column, with what to do.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use indexmap::IndexMap;

use super::compare::Cell;
use super::rows::{self, RowError};
use super::spec::{Locator, Row, TestFileSpec, TestSpec, scalar_text};
use crate::engine::{self, EngineError, EngineOptions};
use crate::location::{Diagnostic, Location};
use crate::pipeline::Pipeline;
use crate::sources;
use crate::sql::{ParamError, Params};

/// The schema of every table a test may give rows for, from the real pipeline: sources as
/// their files are read, models as DataFusion plans them over those sources.
pub struct Tables {
    pub sources: IndexMap<String, SchemaRef>,
    /// A model's output schema, or why it cannot be planned (its tests then fail with that).
    pub models: IndexMap<String, Result<SchemaRef, String>>,
}

impl Tables {
    pub async fn discover(pipeline: &Pipeline) -> Result<Self, super::UnitTestError> {
        let options = EngineOptions::default();
        let stores = pipeline.open_stores(options.store_timeout)?;
        let (ctx, _) = engine::session(&options, &stores).await?;
        sources::register_all(&ctx, pipeline.sources.values()).await?;
        let mut sources = IndexMap::new();
        for name in pipeline.sources.keys() {
            let table = ctx
                .table_provider(name.as_str())
                .await
                .map_err(|e| EngineError::execution(format!("source {name}"), e))?;
            sources.insert(name.clone(), rows::nullable(&table.schema()));
        }
        let mut models = IndexMap::new();
        for model in &pipeline.models {
            let what = format!("model {}", model.name);
            let planned = engine::plan_query(&ctx, &what, &model.query, &pipeline.params).await;
            let schema = match planned {
                Ok(df) => {
                    let schema = rows::nullable(df.schema().as_arrow());
                    engine::register_view(&ctx, &what, &model.name, df)?;
                    Ok(schema)
                }
                Err(err) => Err(crate::error::chain(&err)),
            };
            models.insert(model.name.clone(), schema);
        }
        Ok(Self { sources, models })
    }

    fn names(&self) -> String {
        self.sources
            .keys()
            .chain(self.models.keys())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a test expects rows of.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Model(String),
    /// The segment's audience, after suppressions.
    Segment(String),
    /// The keys a suppression rule matches.
    Suppression(String),
    /// The `offers/` output, of one offer or of all.
    Offers(Option<String>),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Model(name) => format!("model {name}"),
            Target::Segment(name) => format!("segment {name}"),
            Target::Suppression(name) => format!("suppression {name}"),
            Target::Offers(None) => "offers".into(),
            Target::Offers(Some(name)) => format!("offer {name}"),
        }
    }

    /// The columns the target's rows have, when known before running.
    fn columns(&self, pipeline: &Pipeline, tables: &Tables) -> Option<Vec<String>> {
        let key = pipeline.key().unwrap_or_default().to_string();
        let fixed = |names: &[&str]| {
            Some(
                std::iter::once(key.clone())
                    .chain(names.iter().map(|s| s.to_string()))
                    .collect(),
            )
        };
        match self {
            Target::Model(name) => tables
                .models
                .get(name)?
                .as_ref()
                .ok()
                .map(|s| s.fields().iter().map(|f| f.name().clone()).collect()),
            Target::Segment(_) => Some(
                [key.clone(), "test_group".into(), "reasons".into()]
                    .into_iter()
                    .chain(
                        pipeline
                            .activation_columns
                            .iter()
                            .filter(|c| **c != key)
                            .cloned(),
                    )
                    .collect(),
            ),
            Target::Suppression(_) => fixed(&["suppression", "reason", "detail", "offer"]),
            Target::Offers(_) => {
                fixed(&["rank", "offer", "score", "channel", "test_group", "reasons"])
            }
        }
    }
}

/// One test, checked and ready to run.
#[derive(Debug, Clone)]
pub struct PreparedTest {
    pub name: String,
    pub description: Option<String>,
    pub at: Location,
    /// The parameters bound for the test's run date and overrides.
    pub params: Params,
    /// Rows of sources and models, in the table's schema.
    pub given: IndexMap<String, RecordBatch>,
    pub target: Target,
    /// The compared columns; `None` compares every column of the result.
    pub columns: Option<Vec<String>>,
    pub expected: Vec<Vec<Cell>>,
    /// Why the test cannot run (a model it gives rows for does not plan).
    pub blocked: Option<String>,
}

/// Test names already used, so each is unique across the pipeline's files.
#[derive(Default)]
pub struct Names(HashMap<String, Location>);

/// Where a value was written: on the test, or at the top of the file for every test.
#[derive(Clone, Copy)]
enum Level {
    File,
    Test(usize),
}

struct FileChecker<'a> {
    pipeline: &'a Pipeline,
    tables: &'a Tables,
    locator: Locator<'a>,
    problems: &'a mut Vec<Diagnostic>,
}

impl FileChecker<'_> {
    fn at(&self, level: Level, path: &[&str]) -> Location {
        match level {
            Level::File => self.locator.file_at(path),
            Level::Test(i) => self.locator.in_test(i, path),
        }
    }

    fn problem(&mut self, level: Level, path: &[&str], message: String) {
        let at = self.at(level, path);
        self.problems.push(Diagnostic::new(at, message));
    }

    /// Given rows decoded into their tables' schemas; `Err` holds why a table cannot be read.
    fn given(
        &mut self,
        level: Level,
        given: &IndexMap<String, Vec<Row>>,
    ) -> IndexMap<String, Result<RecordBatch, String>> {
        let mut batches = IndexMap::new();
        for (table, rows) in given {
            let (kind, schema) = match (
                self.tables.sources.get(table),
                self.tables.models.get(table),
            ) {
                (Some(schema), _) => ("source", schema.clone()),
                (None, Some(Ok(schema))) => ("model", schema.clone()),
                (None, Some(Err(message))) => {
                    batches.insert(
                        table.clone(),
                        Err(format!(
                            "model {table} cannot be planned, so its given rows cannot be read: {message}"
                        )),
                    );
                    continue;
                }
                (None, None) => {
                    let message = format!(
                        "given.{table}: no source or model named \"{table}\"; the pipeline's tables are: {}",
                        self.tables.names()
                    );
                    self.problem(level, &["given", table], message);
                    continue;
                }
            };
            let unknown = rows::unknown_columns(&schema, rows);
            for (row, column) in &unknown {
                let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let message = format!(
                    "given.{table} row {}: {kind} {table} has no column \"{column}\"; its columns are: {}",
                    row + 1,
                    have.join(", ")
                );
                self.problem(level, &["given", table, &row.to_string(), column], message);
            }
            if !unknown.is_empty() {
                continue;
            }
            match rows::decode(&schema, rows) {
                Ok(batch) => {
                    batches.insert(table.clone(), Ok(batch));
                }
                Err(RowError {
                    row,
                    column,
                    message,
                }) => {
                    let row_text = row.to_string();
                    let mut path = vec!["given", table.as_str(), row_text.as_str()];
                    let what = match &column {
                        Some(column) => {
                            path.push(column);
                            format!("given.{table} row {}, column {column}", row + 1)
                        }
                        None => format!("given.{table} row {}", row + 1),
                    };
                    self.problem(level, &path, format!("{what}: {message}"));
                }
            }
        }
        batches
    }

    fn run_date(
        &mut self,
        index: usize,
        test: &TestSpec,
        file: &TestFileSpec,
    ) -> Option<NaiveDate> {
        let (level, text) = match (&test.run_date, &file.run_date) {
            (Some(text), _) => (Level::Test(index), text),
            (None, Some(text)) => (Level::File, text),
            (None, None) => {
                self.problem(
                    Level::Test(index),
                    &[],
                    format!(
                        "test {}: no run_date; give the date the test runs for (e.g. run_date: 2026-11-20) on the test or at the top of the file, so it gives the same result every day",
                        test.name
                    ),
                );
                return None;
            }
        };
        match crate::sql::iso_date(text.trim()) {
            Some(date) => Some(date),
            None => {
                self.problem(
                    level,
                    &["run_date"],
                    format!("run_date: \"{text}\" is not a date; write it like 2026-11-20"),
                );
                None
            }
        }
    }

    fn params(
        &mut self,
        index: usize,
        test: &TestSpec,
        file: &TestFileSpec,
        date: NaiveDate,
    ) -> Option<Params> {
        let mut overrides: IndexMap<&str, (Level, &serde_yaml::Value)> = IndexMap::new();
        for (name, value) in &file.params {
            overrides.insert(name, (Level::File, value));
        }
        for (name, value) in &test.params {
            overrides.insert(name, (Level::Test(index), value));
        }
        let mut texts = Vec::new();
        let mut ok = true;
        for (name, (level, value)) in overrides {
            let Some(text) = scalar_text(value) else {
                self.problem(
                    level,
                    &["params", name],
                    format!(
                        "params.{name}: give a single value (a number, true/false, a date or text)"
                    ),
                );
                ok = false;
                continue;
            };
            let item = (name.to_string(), text);
            if let Err(err) = self.pipeline.params.bind(date, std::slice::from_ref(&item)) {
                let message = match err {
                    ParamError::Unknown { known, .. } => {
                        format!("params.{name}: no such parameter; {known}")
                    }
                    ParamError::Invalid {
                        value, expected, ..
                    } => {
                        format!(
                            "params.{name}: {value} is not {expected}, the parameter's declared type"
                        )
                    }
                    ParamError::RunDate => {
                        "params.run_date: set the run date with run_date: on the test or the file"
                            .to_string()
                    }
                };
                self.problem(level, &["params", name], message);
                ok = false;
                continue;
            }
            texts.push(item);
        }
        if !ok {
            return None;
        }
        self.pipeline.params.bind(date, &texts).ok()
    }

    fn target(&mut self, index: usize, test: &TestSpec) -> Option<Target> {
        let level = Level::Test(index);
        let expect = &test.expect;
        let named = [
            expect.model.is_some(),
            expect.segment.is_some(),
            expect.suppression.is_some(),
            expect.offers.is_some(),
        ];
        if named.iter().filter(|n| **n).count() != 1 {
            self.problem(
                level,
                &["expect"],
                "expect: name exactly one of model, segment, suppression or offers".into(),
            );
            return None;
        }
        let pipeline = self.pipeline;
        if let Some(name) = &expect.model {
            let models = pipeline.models.iter().map(|m| m.name.as_str()).collect();
            return self.named(level, "model", name, models, Target::Model);
        }
        if let Some(name) = &expect.segment {
            let segments = pipeline.segment_names();
            return self.named(level, "segment", name, segments, Target::Segment);
        }
        if let Some(name) = &expect.suppression {
            let suppressions = pipeline.suppressions.iter().map(|s| s.name.as_str());
            let suppressions = suppressions.collect();
            return self.named(
                level,
                "suppression",
                name,
                suppressions,
                Target::Suppression,
            );
        }
        self.offers_target(level, expect.offers.as_ref())
    }

    /// The target named `name` among `names`, or a problem naming the ones there are.
    fn named(
        &mut self,
        level: Level,
        field: &str,
        name: &str,
        names: Vec<&str>,
        target: fn(String) -> Target,
    ) -> Option<Target> {
        if names.contains(&name) {
            return Some(target(name.to_string()));
        }
        let known = if names.is_empty() {
            "the pipeline has none".to_string()
        } else {
            format!("the pipeline has: {}", names.join(", "))
        };
        self.problem(
            level,
            &["expect", field],
            format!("expect.{field}: no {field} named \"{name}\"; {known}"),
        );
        None
    }

    /// `offers: true` for every offer's rows, or `offers: <name>` for one offer's.
    fn offers_target(
        &mut self,
        level: Level,
        offers: Option<&serde_yaml::Value>,
    ) -> Option<Target> {
        let names = self.pipeline.offer_names();
        let target = match offers {
            Some(serde_yaml::Value::Bool(true)) => Some(Target::Offers(None)),
            Some(serde_yaml::Value::String(name)) if names.contains(&name.as_str()) => {
                Some(Target::Offers(Some(name.clone())))
            }
            _ => None,
        };
        if target.is_some() && !names.is_empty() {
            return target;
        }
        let message = if names.is_empty() {
            "expect.offers: the pipeline has no offers".to_string()
        } else {
            format!(
                "expect.offers: write true for every offer's rows, or one offer's name; the pipeline's offers are: {}",
                names.join(", ")
            )
        };
        self.problem(level, &["expect", "offers"], message);
        None
    }

    /// The compared columns and the expected rows as cells.
    fn expected(
        &mut self,
        index: usize,
        test: &TestSpec,
        target: Option<&Target>,
    ) -> (Option<Vec<String>>, Vec<Vec<Cell>>) {
        let level = Level::Test(index);
        let expect = &test.expect;
        let available = target.and_then(|t| t.columns(self.pipeline, self.tables));
        let explicit = expect.columns.is_some();
        let columns: Option<Vec<String>> = match (&expect.columns, expect.rows.first()) {
            (Some(columns), _) => Some(columns.clone()),
            (None, Some(first)) => Some(first.keys().cloned().collect()),
            (None, None) => None,
        };
        if let Some(columns) = &columns {
            if explicit && columns.is_empty() {
                self.problem(
                    level,
                    &["expect", "columns"],
                    "expect.columns: list at least one column to compare".into(),
                );
            }
            for (n, column) in columns.iter().enumerate() {
                if columns[..n].contains(column) {
                    self.problem(
                        level,
                        &["expect", "columns"],
                        format!("expect.columns: \"{column}\" is listed twice"),
                    );
                }
                if let (Some(available), Some(target)) = (&available, target)
                    && !available.contains(column)
                {
                    let path: Vec<&str> = if explicit {
                        vec!["expect", "columns"]
                    } else {
                        vec!["expect", "rows", "0", column]
                    };
                    self.problem(
                        level,
                        &path,
                        format!(
                            "expect: {} has no column \"{column}\"; its columns are: {}",
                            target.describe(),
                            available.join(", ")
                        ),
                    );
                }
            }
        }
        let compared = columns.clone().unwrap_or_default();
        let schema = match target {
            Some(Target::Model(name)) => self.tables.models.get(name).and_then(|s| s.as_ref().ok()),
            _ => None,
        };
        let mut cells = Vec::new();
        for (r, row) in expect.rows.iter().enumerate() {
            for column in row.keys().filter(|c| !compared.contains(c)) {
                let message = if explicit {
                    format!(
                        "expect.rows row {}: \"{column}\" is not in expect.columns; add it there or remove it from the row",
                        r + 1
                    )
                } else {
                    format!(
                        "expect.rows row {}: \"{column}\" is not a key of the first row, whose keys are the compared columns; list every compared column in expect.columns",
                        r + 1
                    )
                };
                self.problem(level, &["expect", "rows", &r.to_string(), column], message);
            }
            // A number written unquoted for a model's text column is compared as YAML
            // retyped it, not as written.
            for (column, value) in row.iter().filter(|(_, v)| v.is_number()) {
                let text = schema
                    .and_then(|s| s.field_with_name(column).ok())
                    .is_some_and(|f| rows::is_text(f.data_type()));
                if text && compared.contains(column) {
                    let number = rows::expected_cell(value).unwrap_or_default();
                    let message = format!(
                        "expect.rows row {}, column {column}: {}",
                        r + 1,
                        rows::unquoted(number)
                    );
                    self.problem(level, &["expect", "rows", &r.to_string(), column], message);
                }
            }
            // A compared column a row leaves out is expected to be NULL.
            cells.push(
                compared
                    .iter()
                    .map(|c| row.get(c).and_then(rows::expected_cell))
                    .collect(),
            );
        }
        (columns, cells)
    }
}

/// Checks every test of one file; problems are added to `problems`.
pub fn prepare_file(
    pipeline: &Pipeline,
    tables: &Tables,
    path: &Path,
    text: &str,
    file: &TestFileSpec,
    names: &mut Names,
    problems: &mut Vec<Diagnostic>,
) -> Vec<PreparedTest> {
    let mut checker = FileChecker {
        pipeline,
        tables,
        locator: Locator::new(path, text),
        problems,
    };
    let shared = checker.given(Level::File, &file.given);
    let mut prepared = Vec::new();
    for (index, test) in file.tests.iter().enumerate() {
        let at = checker.locator.test(index);
        let before = checker.problems.len();
        if test.name.trim().is_empty() {
            checker.problem(
                Level::Test(index),
                &["name"],
                "name: give the test a name that says what it checks".into(),
            );
        } else if let Some(first) = names.0.get(&test.name) {
            checker.problem(
                Level::Test(index),
                &["name"],
                format!(
                    "name: a test named \"{}\" already exists at {first}; give each test its own name",
                    test.name
                ),
            );
        } else {
            names.0.insert(test.name.clone(), at.clone());
        }
        let date = checker.run_date(index, test, file);
        let params = date.and_then(|date| checker.params(index, test, file, date));
        let own = checker.given(Level::Test(index), &test.given);
        let target = checker.target(index, test);
        let (columns, expected) = checker.expected(index, test, target.as_ref());
        if checker.problems.len() > before {
            continue;
        }
        let (Some(params), Some(target)) = (params, target) else {
            continue;
        };
        let mut given = IndexMap::new();
        let mut blocked = None;
        for (table, batch) in shared
            .iter()
            .filter(|(t, _)| !own.contains_key(*t))
            .chain(&own)
        {
            match batch {
                Ok(batch) => {
                    given.insert(table.clone(), batch.clone());
                }
                Err(message) => blocked = Some(message.clone()),
            }
        }
        prepared.push(PreparedTest {
            name: test.name.clone(),
            description: test.description.clone(),
            at,
            params,
            given,
            target,
            columns,
            expected,
            blocked,
        });
    }
    prepared
}
