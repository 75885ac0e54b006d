//! The DataFusion side of a run: the session (memory limit, spilling, object stores, segflow's
//! SQL functions), sources registered as tables under their contract, models planned with bound
//! parameters.

mod sources;

use datafusion::common::DataFusionError;
use datafusion::dataframe::DataFrame;
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use sources::{SourceInput, arrow_type, register_sources, source_table_url};

use crate::functions::{self, IdentifierStats};
use crate::location::Location;
use crate::pipeline::{Model, Params, SqlQuery};

/// Problems found while planning or executing SQL.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{at}: source {name}: nothing at {uri}; check the path or generate the data")]
    SourceMissing {
        at: Location,
        name: String,
        uri: String,
    },
    #[error("{at}: source {name} ({uri}) cannot be read: {message}")]
    SourceUnreadable {
        at: Location,
        name: String,
        uri: String,
        message: String,
    },
    #[error(
        "{at}: source {name} does not match its column contract:\n{}\nfix the data or the `columns:` of the source",
        .differences.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
    )]
    Contract {
        at: Location,
        name: String,
        differences: Vec<String>,
    },
    #[error("{at}: {what}: {message}")]
    Plan {
        at: Location,
        what: String,
        message: String,
    },
    #[error("{what}: {message}")]
    Execution { what: String, message: String },
    #[error("--memory-limit {0}: expected a size like 512MiB, 4GiB or 2000000000")]
    MemoryLimit(String),
}

impl EngineError {
    /// True when the pipeline (not the data or the machine) must change: exit code 2.
    pub fn is_invalid_pipeline(&self) -> bool {
        !matches!(
            self,
            EngineError::Execution { .. } | EngineError::SourceUnreadable { .. }
        )
    }

    pub fn execution(what: impl Into<String>, err: DataFusionError) -> Self {
        EngineError::Execution {
            what: what.into(),
            message: clean_message(&err),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Bytes DataFusion may hold before sorts, joins and aggregations spill to disk.
    pub memory_limit: Option<usize>,
}

/// Parses sizes like `4GiB`, `512MB`, `2g` or a plain number of bytes.
pub fn parse_size(text: &str) -> Result<usize, EngineError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| EngineError::MemoryLimit(text.into()))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(EngineError::MemoryLimit(text.into())),
    };
    Ok((number * scale) as usize)
}

/// A DataFusion session for one run, with segflow's functions registered.
pub fn session(options: &EngineOptions) -> Result<(SessionContext, IdentifierStats), EngineError> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(true);
    config.options_mut().sql_parser.collect_spans = true;
    let mut runtime =
        RuntimeEnvBuilder::new().with_disk_manager_builder(DiskManagerBuilder::default());
    if let Some(limit) = options.memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let runtime = runtime
        .build_arc()
        .map_err(|e| EngineError::execution("starting DataFusion", e))?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let stats = functions::register(&ctx);
    Ok((ctx, stats))
}

/// Plans a query with the run's parameters bound; nothing is read yet.
pub async fn plan_query(
    ctx: &SessionContext,
    what: &str,
    query: &SqlQuery,
    params: &Params,
) -> Result<DataFrame, EngineError> {
    let state = ctx.state();
    let plan = state
        .statement_to_plan(query.statement.clone())
        .await
        .map_err(|err| plan_error(what, query, &err))?;
    DataFrame::new(state, plan)
        .with_param_values(params.param_values())
        .map_err(|err| plan_error(what, query, &err))
}

/// Plans SQL that segflow generated (from the pipeline's rules) with the run's parameters.
pub async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
    params: &Params,
) -> Result<DataFrame, EngineError> {
    let state = ctx.state();
    let plan = state
        .create_logical_plan(sql)
        .await
        .map_err(|e| EngineError::execution("generated SQL", e))?;
    DataFrame::new(state, plan)
        .with_param_values(params.param_values())
        .map_err(|e| EngineError::execution("generated SQL", e))
}

/// One row of a small aggregate: its text columns (labels) and its integer columns (counts).
#[derive(Debug, Clone, PartialEq)]
pub struct CountRow {
    pub labels: Vec<String>,
    pub counts: Vec<u64>,
}

/// Runs a small aggregate (GROUP BY over a few labels) and returns its rows. Only for results
/// of a few rows per segment or offer: the tables themselves are never collected.
pub async fn count_rows(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<Vec<CountRow>, EngineError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Int64Type};
    let batches = plan_sql(ctx, sql, params)
        .await?
        .collect()
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    let mut rows = Vec::new();
    for batch in &batches {
        let mut labels = Vec::new();
        let mut counts = Vec::new();
        for column in batch.columns() {
            let failed = |e| EngineError::execution(what, DataFusionError::from(e));
            if column.data_type().is_integer() {
                counts.push(cast(column, &DataType::Int64).map_err(failed)?);
            } else {
                labels.push(cast(column, &DataType::Utf8).map_err(failed)?);
            }
        }
        for row in 0..batch.num_rows() {
            rows.push(CountRow {
                labels: labels
                    .iter()
                    .map(|a| a.as_string::<i32>().value(row).to_string())
                    .collect(),
                counts: counts
                    .iter()
                    .map(|a| a.as_primitive::<Int64Type>().value(row).max(0) as u64)
                    .collect(),
            });
        }
    }
    Ok(rows)
}

/// Plans a model and registers it as a view under its name.
pub async fn register_view(
    ctx: &SessionContext,
    model: &Model,
    params: &Params,
) -> Result<DataFrame, EngineError> {
    let df = plan_query(ctx, &format!("model {}", model.name), &model.query, params).await?;
    ctx.register_table(model.name.as_str(), df.clone().into_view())
        .map_err(|e| EngineError::execution(format!("model {}", model.name), e))?;
    Ok(df)
}

/// Points a planning error at the SQL: DataFusion's span when it has one, else the first
/// quoted name in the message found in the file.
fn plan_error(what: &str, query: &SqlQuery, err: &DataFusionError) -> EngineError {
    let message = clean_message(err);
    let at = err
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|span| span.start.line > 0)
        .map(|span| {
            Location::new(
                &query.path,
                span.start.line as usize,
                span.start.column as usize,
            )
        })
        .or_else(|| {
            quoted_names(&message).find_map(|name| {
                let bare = name.rsplit('.').next().unwrap_or(name);
                crate::location::find_identifier(&query.text, bare)
                    .map(|offset| Location::at_offset(&query.path, &query.text, offset))
            })
        })
        .unwrap_or_else(|| Location::file(&query.path));
    EngineError::Plan {
        at,
        what: what.to_string(),
        message,
    }
}

/// DataFusion's message without its category prefix and backtrace.
fn clean_message(err: &DataFusionError) -> String {
    let message = err.strip_backtrace();
    [
        "Error during planning: ",
        "Schema error: ",
        "External error: ",
        "Execution error: ",
    ]
    .iter()
    .fold(message, |m, prefix| {
        m.trim_start_matches(prefix).to_string()
    })
}

fn quoted_names(message: &str) -> impl Iterator<Item = &str> {
    message.split(['\'', '"', '`']).skip(1).step_by(2).chain(
        message
            .split("named ")
            .skip(1)
            .filter_map(|rest| rest.split(['.', ' ', ',']).next().filter(|s| !s.is_empty())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("512mb").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
    }
}
