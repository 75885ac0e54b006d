//! Models: named SQL queries over sources and other models, found by name in the SQL (no
//! `ref()` macro), run in dependency order as views or materialized once as Parquet.

use crate::objects::Folder;
use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use indexmap::IndexMap;

use crate::compile::{Compiler, topological_order};
use crate::engine::{self, EngineError, PlanError, TableLayout};
use crate::erasure::not_erased;
use crate::features::{self, Feature};
use crate::location::Location;
use crate::spec::ModelSpec;
use crate::sql::{Params, SqlQuery, ident};
use crate::store::{Output, OutputKind};

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) query: SqlQuery,
    pub(crate) materialize: bool,
    pub(crate) publish: bool,
    /// A declared feature table, maintained incrementally; `query` computes the same rows from
    /// all its events.
    pub(crate) feature: Option<Arc<Feature>>,
}

impl Model {
    /// A feature table as a model: read by name, its query the full computation.
    pub(crate) fn from_feature(
        feature: Feature,
        description: Option<String>,
        publish: bool,
        file: &std::path::Path,
        params: &Params,
    ) -> Result<Self, Vec<crate::location::Diagnostic>> {
        let query = crate::sql::parse_query(file, &feature.query_text(), params)?;
        Ok(Self {
            name: feature.name.clone(),
            description,
            query,
            materialize: true,
            publish,
            feature: Some(Arc::new(feature)),
        })
    }

    /// Sources and models this model reads.
    pub(crate) fn reads(&self) -> &BTreeSet<String> {
        &self.query.tables
    }

    fn what(&self) -> String {
        format!("model {}", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Compiles `models:` into run order: each model after every model it reads. `tables` are the
/// names the pipeline's SQL may read (sources and models).
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, ModelSpec>,
    sources: &[&str],
    tables: &[String],
    params: &Params,
) -> Vec<Model> {
    let mut models = IndexMap::new();
    for (name, spec) in specs {
        c.check_name(&["models", name], name);
        if sources.contains(&name.as_str()) {
            c.problem(
                &["models", name],
                format!("models.{name}: a source already has this name; rename one of them"),
            );
        }
        let at = c.at(&["models", name, "sql"]);
        if let Some(query) = c.read_sql(at, &spec.sql, params, &format!("models.{name}.sql")) {
            models.insert(
                name.clone(),
                Model {
                    name: name.clone(),
                    description: spec.description.clone(),
                    query,
                    materialize: spec.materialize || spec.publish,
                    publish: spec.publish,
                    feature: None,
                },
            );
        }
    }
    for model in models.values() {
        check_reads(c, &format!("model {}", model.name), &model.query, tables);
    }
    let deps: IndexMap<String, BTreeSet<String>> = models
        .iter()
        .map(|(name, model)| (name.clone(), model.reads().clone()))
        .collect();
    match topological_order(&deps) {
        Ok(order) => order
            .iter()
            .filter_map(|name| models.shift_remove(name))
            .collect(),
        Err(cycle) => {
            c.problem(
                &["models", &cycle[0], "sql"],
                format!(
                    "models form a cycle: {}; a model cannot read itself, directly or through others",
                    cycle.join(" -> ")
                ),
            );
            Vec::new()
        }
    }
}

/// Every table a query reads must be a source or a model (declared ones count even when their
/// SQL failed, so one broken file is reported once).
pub(crate) fn check_reads(c: &mut Compiler, what: &str, query: &SqlQuery, tables: &[String]) {
    for table in &query.tables {
        if !tables.contains(table) {
            c.problem_at(
                query.locate(table),
                format!(
                    "{what} reads unknown table \"{table}\"; the pipeline's tables are: {}",
                    tables.join(", ")
                ),
            );
        }
    }
}

/// Plans a model and registers it as a view under its name, reading no rows.
pub(crate) async fn register_view(
    ctx: &SessionContext,
    model: &Model,
    params: &Params,
) -> Result<(), ModelError> {
    if let Some(feature) = &model.feature {
        features::check_plan(ctx, feature, params).await?;
    }
    let df = plan(ctx, model, params).await?;
    engine::register_view(ctx, &model.what(), &model.name, df)?;
    Ok(())
}

/// A model's query; a feature's on the run's date, its days cut as its time column's zone cuts
/// them.
async fn plan(
    ctx: &SessionContext,
    model: &Model,
    params: &Params,
) -> Result<DataFrame, ModelError> {
    let what = model.what();
    Ok(match &model.feature {
        Some(feature) => {
            let feature = feature.with_clock(ctx).await;
            let sql = feature.query_on(params.run_date());
            engine::plan_step(ctx, &what, &sql, params).await?
        }
        None => {
            let df = engine::plan_query(ctx, &what, &model.query, params).await?;
            check_columns(model, &df)?;
            df
        }
    })
}

/// A model's columns must be its own: two of one name cannot be written to a table (and a
/// reader would take one for the other), and `run_date`, which segflow writes into every
/// published table as the run's date, would replace it in the model's files.
fn check_columns(model: &Model, df: &DataFrame) -> Result<(), ModelError> {
    let names: Vec<&str> = (df.schema().fields().iter())
        .map(|f| f.name().as_str())
        .collect();
    let twice = (names.iter().enumerate()).find(|(i, name)| names[..*i].contains(name));
    let problem = match twice {
        Some((_, name)) => Some((
            *name,
            format!(
                "the query returns two columns named {name}; name them apart (e.g. c.{name} AS crm_{name})"
            ),
        )),
        None if model.publish && names.contains(&crate::sql::RUN_DATE) => Some((
            crate::sql::RUN_DATE,
            "the query returns a column named run_date, which segflow writes into every published table as the run's date; name it otherwise".to_string(),
        )),
        None if model.publish => apart_by_case(&names),
        None => None,
    };
    let Some((name, problem)) = problem else {
        return Ok(());
    };
    let text = &model.query.text;
    // A name apart from another only by case is quoted where the query gives it.
    let quoted = crate::location::find_in_code(text, &format!("\"{name}\""));
    let at = match quoted.or_else(|| crate::location::find_identifier(text, name)) {
        Some(offset) => Location::at_offset(&model.query.path, text, offset),
        None => Location::file(&model.query.path),
    };
    Err(ModelError::Plan(PlanError::Invalid {
        at,
        what: model.what(),
        problem,
    }))
}

/// Published columns whose names differ only by case (`Email`, `email`; `RUN_DATE` beside the
/// `run_date` segflow adds): most readers of Parquet (DuckDB, Spark, BigQuery) match column
/// names whatever their case, and would take one for the other or refuse the table.
fn apart_by_case<'a>(names: &[&'a str]) -> Option<(&'a str, String)> {
    let lower = |name: &str| name.to_lowercase();
    if let Some(name) = (names.iter()).find(|name| lower(name) == crate::sql::RUN_DATE) {
        return Some((
            name,
            format!(
                "the query returns a column named {name}, which readers that ignore case take for the run_date segflow writes into every published table; name it otherwise"
            ),
        ));
    }
    let (i, name) = (names.iter().enumerate())
        .find(|(i, name)| names[..*i].iter().any(|other| lower(other) == lower(name)))?;
    let first = names[..i]
        .iter()
        .find(|other| lower(other) == lower(name))?;
    Some((
        name,
        format!(
            "the query returns columns named {first} and {name}, which most readers of Parquet (DuckDB, Spark, BigQuery) take for one column; name them apart"
        ),
    ))
}

/// What running one model produced.
pub(crate) struct ModelRun {
    /// Rows written, for a materialized model; `None` for a view.
    pub(crate) rows: Option<u64>,
    /// The published table, for a model declared `publish: true`.
    pub(crate) output: Option<Output>,
    /// Whether erased keys were left out of it (see [`plan_rows`]).
    pub(crate) without_erased: bool,
}

/// A model's rows as a run computes them, and whether erased keys were left out: a
/// materialized model that has the key column leaves out erased customers, and is sorted by
/// key when published (the erasure filter is a join, which does not keep the query's order;
/// sorted, the same inputs give the same bytes).
pub(crate) async fn plan_rows(
    ctx: &SessionContext,
    key: Option<&str>,
    model: &Model,
    params: &Params,
) -> Result<(DataFrame, bool), ModelError> {
    let what = model.what();
    let df = plan(ctx, model, params).await?;
    let Some(key) =
        key.filter(|k| model.materialize && df.schema().field_with_unqualified_name(k).is_ok())
    else {
        return Ok((df, false));
    };
    let scratch = format!("__segflow_unfiltered_{}", model.name);
    engine::register_view(ctx, &what, &scratch, df)?;
    let k = ident(key);
    let order = if model.publish {
        format!(" ORDER BY {k}")
    } else {
        String::new()
    };
    let sql = format!("SELECT * FROM {scratch} WHERE {}{order}", not_erased(&k));
    Ok((engine::plan_step(ctx, &what, &sql, params).await?, true))
}

/// Runs one model: a view is only planned; a materialized model is streamed to Parquet (in
/// `run_dir` when published, in `work_dir` otherwise) and read back from there.
pub(crate) async fn run(
    ctx: &SessionContext,
    key: Option<&str>,
    model: &Model,
    params: &Params,
    run_dir: &Folder,
    work_dir: &Folder,
) -> Result<ModelRun, ModelError> {
    if !model.materialize {
        register_view(ctx, model, params).await?;
        return Ok(ModelRun {
            rows: None,
            output: None,
            without_erased: false,
        });
    }
    let (df, without_erased) = plan_rows(ctx, key, model, params).await?;
    let relative = format!("models/{}", model.name);
    let base = if model.publish { run_dir } else { work_dir };
    let dir = base.join(&relative);
    let layout = if model.publish {
        TableLayout::published(None, params.run_date())
    } else {
        TableLayout::scratch()
    };
    let written = engine::write_frame(&model.what(), df, &dir, base, layout).await?;
    engine::register_parquet(ctx, &model.name, &dir).await?;
    let rows = written.rows();
    let output = model
        .publish
        .then(|| written.into_output(&model.name, OutputKind::Model, &relative));
    Ok(ModelRun {
        rows: Some(rows),
        output,
        without_erased,
    })
}
