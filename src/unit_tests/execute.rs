//! One test, run in memory: a fresh session holding the given rows, the models the expectation
//! needs, then the same steps as `segflow run` for segments, suppressions and offers, writing
//! into a scratch folder that is removed afterwards.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::compare;
use super::prepare::{PreparedTest, Tables, Target};
use super::rows;
use crate::engine::{self, EngineError, EngineOptions};
use crate::objects::{Folder, Stores};
use crate::pipeline::Pipeline;
use crate::run::RunError;
use crate::sql::{Params, Rule, literal};
use crate::store::RunDirs;
use crate::{erasure, models, offers, segments, suppressions};

/// The table a test's output folder is read back as.
const OUTPUT: &str = "__segflow_test_output";

/// Runs one test; `None` when it passed, else the diff or the error.
pub async fn run_test(pipeline: &Pipeline, tables: &Tables, test: &PreparedTest) -> Option<String> {
    if let Some(blocked) = &test.blocked {
        return Some(blocked.clone());
    }
    let what = test.target.describe();
    let workspace = match Workspace::new() {
        Ok(workspace) => workspace,
        Err(err) => {
            return Some(format!(
                "cannot create a scratch folder for the test: {err}"
            ));
        }
    };
    let (schema, batches) = match actual(pipeline, tables, test, &workspace).await {
        Ok(result) => result,
        Err(err) => {
            return Some(format!(
                "{what} could not run: {}",
                crate::error::chain(&err)
            ));
        }
    };
    let columns: Vec<String> = test
        .columns
        .clone()
        .unwrap_or_else(|| schema.fields().iter().map(|f| f.name().clone()).collect());
    let mut indices = Vec::new();
    for column in &columns {
        match schema.index_of(column) {
            Ok(i) => indices.push(i),
            Err(_) => {
                let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Some(format!(
                    "{what} has no column \"{column}\"; its columns are: {}",
                    have.join(", ")
                ));
            }
        }
    }
    let actual = match rows::actual_cells(&batches, &indices) {
        Ok(cells) => cells,
        Err(err) => return Some(format!("{what}: cannot display the rows: {err}")),
    };
    let kinds: Vec<compare::Kind> = (indices.iter())
        .map(|i| compare::Kind::of(schema.field(*i).data_type()))
        .collect();
    let diff = compare::compare(&test.expected, &actual, &kinds);
    (!diff.matches()).then(|| format!("{what}: {}\n{}", diff.summary(), diff.render(&columns)))
}

/// A scratch folder for the files segments, suppressions and offers write; removed on drop.
struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "segflow-test-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(dir.join("run"))?;
        std::fs::create_dir_all(dir.join("work"))?;
        Ok(Self { dir })
    }

    fn run_dir(&self) -> Folder {
        Folder::local(&self.dir.join("run"))
    }

    fn work_dir(&self) -> Folder {
        Folder::local(&self.dir.join("work"))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn register_rows(
    ctx: &SessionContext,
    name: &str,
    schema: &SchemaRef,
    batch: Option<&RecordBatch>,
) -> Result<(), RunError> {
    let batch = batch
        .cloned()
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
    let table = MemTable::try_new(schema.clone(), vec![vec![batch]])
        .map_err(|e| EngineError::execution(format!("given rows of {name}"), e))?;
    ctx.register_table(name, Arc::new(table))
        .map_err(|e| EngineError::execution(format!("given rows of {name}"), e))?;
    Ok(())
}

/// The models the expectation reads, directly or through other models, stopping at models
/// replaced by given rows.
fn needed_models(pipeline: &Pipeline, test: &PreparedTest) -> BTreeSet<String> {
    let mut needed = BTreeSet::new();
    match &test.target {
        Target::Model(name) => {
            needed.insert(name.clone());
        }
        Target::Segment(_) | Target::Suppression(_) | Target::Offers(_) => {
            // Suppressions and segments are planned together on the profile, as in a run.
            let sql_rules = pipeline
                .segments
                .iter()
                .flat_map(|s| s.list.iter().map(|s| &s.rule))
                .chain(pipeline.suppressions.iter().map(|s| &s.rule));
            for rule in sql_rules {
                if let Rule::Sql(query) = rule {
                    needed.extend(query.tables.iter().cloned());
                }
            }
            needed.extend(pipeline.segments.iter().map(|s| s.from.clone()));
            needed.extend(pipeline.offers.iter().map(|o| o.from.clone()));
        }
    }
    // Models are in run order: walking back, each needed model adds what it reads.
    for model in pipeline.models.iter().rev() {
        if needed.contains(&model.name) && !test.given.contains_key(&model.name) {
            needed.extend(model.reads().iter().cloned());
        }
    }
    needed
}

async fn collect(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<(SchemaRef, Vec<RecordBatch>), RunError> {
    let df = engine::plan_step(ctx, what, sql, params).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    Ok((schema, batches))
}

async fn read_back(
    ctx: &SessionContext,
    what: &str,
    dir: &Folder,
    filter: &str,
    params: &Params,
) -> Result<(SchemaRef, Vec<RecordBatch>), RunError> {
    engine::register_parquet(ctx, OUTPUT, dir).await?;
    collect(
        ctx,
        what,
        &format!("SELECT * FROM {OUTPUT} {filter}"),
        params,
    )
    .await
}

/// The rows of the test's target, computed the way `segflow run` computes them.
async fn actual(
    pipeline: &Pipeline,
    tables: &Tables,
    test: &PreparedTest,
    workspace: &Workspace,
) -> Result<(SchemaRef, Vec<RecordBatch>), RunError> {
    let (ctx, _) = engine::session(&EngineOptions::default(), &Stores::default()).await?;
    // A handful of rows: one partition plans and runs fastest.
    ctx.sql("SET datafusion.execution.target_partitions = 1")
        .await
        .map_err(|e| EngineError::execution("test session", e))?;
    let params = &test.params;
    let (run_dir, work_dir) = (workspace.run_dir(), workspace.work_dir());
    for (name, schema) in &tables.sources {
        register_rows(&ctx, name, schema, test.given.get(name))?;
    }
    if let Some(key) = pipeline.key() {
        let erasure = pipeline.erasure.as_ref();
        erasure::register(&ctx, key, erasure, &[], &run_dir, params).await?;
    }
    let needed = needed_models(pipeline, test);
    for model in pipeline.models.iter().filter(|m| needed.contains(&m.name)) {
        match test.given.get(&model.name) {
            Some(batch) => register_rows(&ctx, &model.name, &batch.schema(), Some(batch))?,
            None => {
                let what = format!("model {}", model.name);
                let (df, _) = models::plan_rows(&ctx, pipeline.key(), model, params).await?;
                engine::register_view(&ctx, &what, &model.name, df)?;
            }
        }
    }
    let what = test.target.describe();
    let (key, _) = match (&test.target, pipeline.audience()) {
        (Target::Model(name), _) => {
            return collect(&ctx, &what, &format!("SELECT * FROM {name}"), params).await;
        }
        (_, Some(audience)) => audience,
        (_, None) => unreachable!("tests of segments, suppressions and offers need a key"),
    };
    // As in a run: a profile with two rows for a customer, or rows without a key, fails the
    // test rather than give audiences and offers a run would refuse to publish.
    for profile in pipeline.profile_files() {
        engine::check_one_row_per_key(&ctx, profile, key, params).await?;
    }
    let rules = &pipeline.suppressions;
    let keep = erasure::Keep::default();
    suppressions::evaluate(
        &ctx,
        rules,
        key,
        &pipeline.profiles(),
        params,
        keep,
        &work_dir,
    )
    .await?;
    let dirs = RunDirs {
        run_dir: &run_dir,
        work_dir: &work_dir,
        previous_run: None,
    };
    match &test.target {
        Target::Model(_) => unreachable!("returned above"),
        Target::Suppression(name) => {
            let sql = format!(
                "SELECT * FROM {} WHERE suppression = {}",
                suppressions::MATCHES,
                literal(name)
            );
            collect(&ctx, &what, &sql, params).await
        }
        Target::Segment(name) => {
            let segments = pipeline.segments.as_ref().expect("checked when prepared");
            segments::evaluate(&ctx, key, segments, rules, params, keep, &work_dir).await?;
            let columns = &pipeline.activation_columns;
            segments::publish(&ctx, key, segments, columns, params, dirs).await?;
            let audience = run_dir.join(&format!("audiences/segment={name}"));
            read_back(&ctx, &what, &audience, "", params).await
        }
        Target::Offers(offer) => {
            let offers = pipeline.offers.as_ref().expect("checked when prepared");
            offers::evaluate(&ctx, key, offers, rules, params, keep, &work_dir).await?;
            let refused = offers::decide(&ctx, key, offers, params, &work_dir).await?;
            let global = pipeline.segments.as_ref().and_then(|s| s.holdout.as_ref());
            offers::publish(&ctx, key, offers, global, &refused, params, dirs).await?;
            let filter = offer
                .as_ref()
                .map(|o| format!("WHERE offer = {}", literal(o)))
                .unwrap_or_default();
            read_back(&ctx, &what, &run_dir.join("offers"), &filter, params).await
        }
    }
}
