//! The DataFusion side of a run: the session (memory limit, spilling, segflow's SQL functions),
//! planning SQL with bound parameters, and streaming a query's result into Parquet and reading
//! it back. Every step of a run goes through these few functions.

mod aside;
mod ballista;
mod build_side;
mod float_stats;
mod partial_stage;
mod pool;
mod row_number;
mod rules;
mod small_side;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::config::{ConfigOptions, SpillCompression, TableParquetOptions};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::TrackConsumersPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::physical_plan::common::spawn_buffered;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, execute_stream};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;

pub(crate) use aside::{Aside, write_frame_setting_aside};
#[cfg(feature = "ballista")]
pub(crate) use row_number::RowNumbers;
pub use rules::ConditionExplanation;
pub(crate) use rules::{
    RuleColumns, check_conditions, check_key, check_key_kind, check_one_row_per_key, check_score,
    explain_conditions, locate_failure, locate_query_failure, register_rule_query,
};

use crate::functions::{self, IdentifierStats};
use crate::location::{Location, find_identifier, find_in_code};
use crate::objects::{Folder, Stores};
use crate::sql::{Params, SqlQuery};
pub(crate) use crate::store::Part;
pub(crate) use crate::store::TableLayout;
use crate::store::{ReadBy, Space, StoreError, Written, write_stream, write_stream_split};

/// A DataFusion error as people read it: no category prefix, no backtrace, and — for errors
/// raised while reading data — no quoted values, which may be a customer's data.
#[derive(Debug)]
pub struct QueryError {
    error: Box<DataFusionError>,
    redact: bool,
}

impl From<DataFusionError> for QueryError {
    fn from(err: DataFusionError) -> Self {
        Self {
            error: Box::new(err),
            redact: false,
        }
    }
}

impl QueryError {
    /// An error raised while rows were read or computed: its message may quote row values.
    pub(crate) fn from_data(err: DataFusionError) -> Self {
        Self {
            error: Box::new(err),
            redact: true,
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = clean_message(&self.error);
        // The pool's report of its consumers and DataFusion's advice name no row's value.
        let memory = matches!(
            self.error.find_root(),
            DataFusionError::ResourcesExhausted(_)
        );
        if self.redact && !memory {
            f.write_str(&redact_quoted(&message))
        } else {
            f.write_str(&message)
        }
    }
}

/// The message with every quoted part (`'…'`, `"…"`) emptied: errors raised while reading data
/// quote the values they failed on, and those must never reach a log. A regular expression's
/// parser prints the pattern, which SQL may build from row values, unquoted on the lines after
/// `regex parse error:` (then a caret under the fault, then `error: …`): those lines go too.
pub fn redact_quoted(message: &str) -> String {
    let message = redact_numbers(&redact_regex_patterns(message));
    let mut out = String::with_capacity(message.len());
    // (the closing quote, whether the quoted text is kept): type names are not data.
    let mut quote: Option<(char, bool)> = None;
    for c in message.chars() {
        match quote {
            Some((q, keep)) if c == q => {
                if !keep {
                    out.push('…');
                }
                out.push(c);
                quote = None;
            }
            Some((_, true)) => out.push(c),
            Some((_, false)) => {}
            None => {
                let keep = out.trim_end().ends_with("type");
                // An apostrophe inside a word (`Can't`, `isn't`) opens nothing.
                let in_word =
                    c == '\'' && out.chars().next_back().is_some_and(char::is_alphanumeric);
                out.push(c);
                if (c == '\'' && !in_word) || c == '"' {
                    quote = Some((c, keep));
                }
            }
        }
    }
    if quote.is_some_and(|(_, keep)| !keep) {
        out.push('…');
    }
    out
}

/// Arrow's arithmetic and casts name the number they failed on, unquoted: `Overflowing on
/// 1e37`, `Overflow happened on: 123 * 1000`, `1.2E20 is too large to store in a Decimal128`;
/// so do DataFusion's date functions: `Unable to parse date from 2026, 2, 29` (`make_date` of
/// a customer's birthday this year).
fn redact_numbers(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, line) in message.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut line = line.to_string();
        for marker in [
            "Overflowing on ",
            "Overflow happened on: ",
            "Unable to parse date from ",
            "Unable to parse time from ",
        ] {
            if let Some(at) = line.find(marker) {
                line.truncate(at + marker.len());
                line.push('…');
            }
        }
        // A CSV value arrow could not parse, and its whole line: `Error while parsing value
        // 'O'Brien' as type 'Int64' for column 1 at line 5. Row data: '[…]'`.
        const ROW: &str = ". Row data: '";
        if let Some(at) = line.find(ROW) {
            line.truncate(at + ROW.len());
            line.push_str("…'");
        }
        // `Can't cast value 100000 to type Int16`, `Cannot cast 1 year to IntervalYearMonth`,
        // and a quoted value that may hold quotes itself: `Cannot cast string 'O'Brien' to …`.
        for (from, to) in [
            ("Can't cast value ", " to type "),
            ("Cannot cast ", " to Interval"),
            ("Cannot cast string '", "' to value of "),
            ("Cannot cast value '", "' to value of "),
            ("Error while parsing value '", "' as type '"),
            ("date_bin timestamp value ", " overflows "),
        ] {
            if let Some(start) = line.find(from).map(|at| at + from.len())
                && let Some(end) = line[start..].rfind(to).map(|at| start + at)
            {
                line.replace_range(start..end, "…");
            }
        }
        if let Some(at) = line.find(" is too large to store in ") {
            let start = line[..at].rfind(' ').map_or(0, |s| s + 1);
            line.replace_range(start..at, "…");
        }
        out.push_str(&redact_loose_numbers(&line));
    }
    out
}

/// Every other number of a data error's line goes too, unless it says where or how large
/// (`line 7`, `column 1`, `321.0 KB`, `Decimal128(38, 2)`, `ExternalSorter[0]#12`): functions
/// name the value they failed on in messages of their own (`invalid Unicode scalar value:
/// 1114112` from `chr` of a key plus a number, `negative count not allowed: -3`), more than a
/// list of them could follow.
fn redact_loose_numbers(line: &str) -> String {
    const PLACES: [&str; 8] = [
        "line",
        "column",
        "field",
        "row group",
        "partition",
        "precision",
        "scale",
        "Max is",
    ];
    const UNITS: [&str; 17] = [
        "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "bytes", "rows", "fields",
        "columns", "batches", "files", "ms", "%",
    ];
    const TYPES: [&str; 10] = [
        "Decimal32",
        "Decimal64",
        "Decimal128",
        "Decimal256",
        "FixedSizeBinary",
        "FixedSizeList",
        "Time32",
        "Time64",
        "Timestamp",
        "Duration",
    ];
    let glued = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    while at < line.len() {
        let c = line[at..].chars().next().unwrap_or_default();
        let signed = c == '-' && bytes.get(at + 1).is_some_and(u8::is_ascii_digit);
        // A time's hour is glued to the `T` after its date: `2026-02-29T10:30:00`.
        let mut back = line[..at].chars().rev();
        let iso_time = back.next() == Some('T') && back.next().is_some_and(|c| c.is_ascii_digit());
        let starts = (c.is_ascii_digit() || signed)
            && (iso_time || !line[..at].chars().next_back().is_some_and(glued));
        if !starts {
            out.push(c);
            at += c.len_utf8();
            continue;
        }
        let mut end = at + usize::from(signed);
        let digits = |from: usize| {
            from + bytes[from..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        end = digits(end);
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
            if bytes.get(end + 1 + sign).is_some_and(u8::is_ascii_digit) {
                end = digits(end + 1 + sign);
            }
        }
        let before = line[..at].trim_end();
        let after = line[end..].strip_prefix(' ').unwrap_or(&line[end..]);
        let unit = UNITS.iter().any(|unit| {
            after
                .strip_prefix(unit)
                .is_some_and(|rest| !rest.chars().next().is_some_and(char::is_alphanumeric))
        });
        let open = line[..at]
            .rfind('(')
            .filter(|open| !line[*open..at].contains(')'));
        let in_type = open.is_some_and(|open| TYPES.iter().any(|t| line[..open].ends_with(t)));
        let keep = unit
            || in_type
            || PLACES.iter().any(|place| before.ends_with(place))
            || before.ends_with('#')
            || before.ends_with("UTF-")
            || (line[..at].ends_with('[') && line[end..].starts_with(']'));
        out.push_str(match keep {
            true => &line[at..end],
            false => "…",
        });
        at = end;
    }
    out
}

fn redact_regex_patterns(message: &str) -> String {
    // DataFusion's `regexp_count` (and arrow's regular expressions) print the pattern after this,
    // to the end of the message (a pattern may span lines).
    const NOT_COMPILED: &str = "Regular expression did not compile:";
    let mut out = Vec::new();
    let mut in_pattern = false;
    for line in message.split('\n') {
        // The regex parser's own heading, within the Debug form arrow prints.
        if in_pattern && line.trim_end().ends_with("regex parse error:") {
            out.push(line);
            continue;
        }
        if in_pattern && !line.trim_start().starts_with("error:") {
            continue;
        }
        if in_pattern {
            out.push("    …");
        }
        if let Some(at) = line.find(NOT_COMPILED) {
            out.push(&line[..at + NOT_COMPILED.len()]);
            in_pattern = true;
            continue;
        }
        in_pattern = line.trim_end().ends_with("regex parse error:");
        out.push(line);
    }
    if in_pattern {
        out.push("    …");
    }
    out.join("\n")
}

/// DataFusion's message already says everything its inner errors say.
impl std::error::Error for QueryError {}

impl QueryError {
    /// DataFusion's own location of the problem in the SQL, when it has one.
    fn span_in(&self, query: &SqlQuery) -> Option<Location> {
        self.error
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
    }
}

/// SQL that does not plan against the data's schemas: the pipeline must change (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{at}: {what}")]
    Query {
        at: Location,
        what: String,
        #[source]
        source: QueryError,
    },
    /// A problem segflow found in a plan (a condition that is not true/false, a missing key).
    #[error("{at}: {what}: {problem}")]
    Invalid {
        at: Location,
        what: String,
        problem: String,
    },
}

/// A query that planned but failed while it ran, or whose result could not be written (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what}")]
    Execution {
        what: String,
        #[source]
        source: QueryError,
    },
    #[error("{what}")]
    Write {
        what: String,
        #[source]
        source: StoreError,
    },
    /// A query failed on the data because of one rule's expression (e.g. a division by zero).
    #[error("{at}: {what}")]
    Located {
        at: Location,
        what: String,
        #[source]
        source: QueryError,
    },
    /// DataFusion's memory pool ran out under `--memory-limit`.
    #[error(
        "{what} needs more memory than --memory-limit {} allows (only sorts and aggregations spill); run it with --memory-limit {} or more",
        size(*.limit),
        size(advised(*.limit))
    )]
    OutOfMemory {
        what: String,
        limit: usize,
        #[source]
        source: QueryError,
    },
    /// A profile segments or offers read has customers with more than one row.
    #[error(
        "{}: model {profile} has more than one row for {keys} {key} values ({rows} rows); segments and offers read one row per customer, so make {profile} return one row per {key} (GROUP BY {key}, or keep the first row of each with ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY …) = 1)",
        .file.display()
    )]
    DuplicateKeys {
        /// The model's SQL file.
        file: std::path::PathBuf,
        profile: String,
        key: String,
        keys: u64,
        rows: u64,
    },
    /// A profile segments or offers read has rows without a key, which no audience can reach.
    #[error(
        "{}: model {profile} has {rows} rows without a {key}; segments and offers reach customers by their {key}, so these would be left out of every audience and offer without a word: give them a {key}, or leave them out of {profile} (WHERE {key} IS NOT NULL)",
        .file.display()
    )]
    NullKeys {
        /// The model's SQL file.
        file: std::path::PathBuf,
        profile: String,
        key: String,
        rows: u64,
    },
    #[error("starting DataFusion")]
    Session(#[source] QueryError),
    /// The Ballista cluster cannot run the queries: its scheduler does not answer, or this
    /// build has no Ballista client.
    #[error("--engine ballista://{scheduler}: {problem}")]
    Cluster { scheduler: String, problem: String },
    /// The cluster stopped answering in the middle of a query: its scheduler or an executor
    /// went away.
    #[error(
        "{what}: the Ballista cluster stopped answering ({problem}); check that its scheduler and executors are running"
    )]
    ClusterLost { what: String, problem: String },
    /// What sorts and aggregations spilled filled the disk of the temporary folder, or the
    /// part of it a run takes (see [`spill_room`]).
    #[error(
        "{what}: no room left on the disk of {} for what sorts and aggregations spill beyond --memory-limit ({why}); free space there, set TMPDIR to a folder on a disk with more room, or raise --memory-limit",
        .folder.display()
    )]
    DiskFull {
        what: String,
        folder: std::path::PathBuf,
        why: &'static str,
    },
    #[error(
        "{variable}={value:?} is not a valid value for DataFusion's {key}; unset it or give a valid value"
    )]
    Setting {
        variable: String,
        value: String,
        key: String,
    },
}

/// Why there is no room to spill, when an I/O error in `err`'s chain says so: a full disk, or
/// DataFusion's refusal to spill more than [`spill_room`] (told by its text, whose advice names
/// a setting segflow has no way to pass, so it is not shown).
fn no_space_left(err: &DataFusionError) -> Option<&'static str> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull {
                return Some("the disk is full");
            }
            if io.to_string().contains("exceeded the allowable limit") {
                return Some(
                    "a run spills at most nine tenths of what the disk had free when it started",
                );
            }
        }
        cause = error.source();
    }
    None
}

/// How many bytes a session may spill at once into `folder`: nine tenths of what its disk has
/// free when the session starts, so a run never takes the last of a disk other processes
/// share. DataFusion's own cap, 100 GB whatever the disk, is more than a small disk holds and
/// less than a large one could give; its error then advises a setting segflow has no way to
/// pass. `None` when the disk cannot be asked (DataFusion's cap then stays).
fn spill_room(folder: &Path) -> Option<u64> {
    let disk = rustix::fs::statvfs(folder).ok()?;
    let free = disk.f_bavail.saturating_mul(disk.f_frsize);
    Some(free / 10 * 9)
}

/// How many sorted runs of a spilled sort one merge pass reads under `--memory-limit`.
const SPILL_MERGE_FAN_IN: usize = 8;

/// The run's `--memory-limit` in bytes (0: none), for the advice when memory runs out.
static MEMORY_LIMIT: AtomicUsize = AtomicUsize::new(0);

fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Twice the limit that was too small, and at least 512 MiB.
fn advised(limit: usize) -> usize {
    limit.saturating_mul(2).max(512 << 20)
}

impl EngineError {
    pub(crate) fn execution(what: impl Into<String>, err: DataFusionError) -> Self {
        let limit = MEMORY_LIMIT.load(Ordering::Relaxed);
        let out_of_memory = matches!(err.find_root(), DataFusionError::ResourcesExhausted(_));
        if let Some(problem) = ballista::lost(&err) {
            return EngineError::ClusterLost {
                what: what.into(),
                problem,
            };
        }
        // In this process DataFusion writes files only when it spills, into the temporary
        // folder (the run's own tables are written by segflow, whose errors name the file).
        if let Some(why) = no_space_left(&err) {
            return EngineError::DiskFull {
                what: what.into(),
                folder: std::env::temp_dir(),
                why,
            };
        }
        let (what, source) = (what.into(), QueryError::from_data(err));
        if out_of_memory && limit > 0 {
            EngineError::OutOfMemory {
                what,
                limit,
                source,
            }
        } else {
            EngineError::Execution { what, source }
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where queries run.
    pub engine: Engine,
    /// Bytes DataFusion may hold before sorts, joins and aggregations spill to disk.
    pub memory_limit: Option<usize>,
    /// How long a request to an object store (with its retries) may take.
    pub store_timeout: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            engine: Engine::Local,
            memory_limit: None,
            store_timeout: crate::objects::DEFAULT_TIMEOUT,
        }
    }
}

/// Where a run's queries execute: DataFusion in this process, or the executors of an Apache
/// DataFusion Ballista cluster, planned by its scheduler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    #[default]
    Local,
    /// The cluster's scheduler, `host:port`.
    Ballista(String),
}

/// The port a Ballista scheduler listens on unless told otherwise.
pub const BALLISTA_PORT: u16 = 50050;

impl std::str::FromStr for Engine {
    type Err = String;

    /// `local`, or `ballista://host[:port]` (port 50050 by default).
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "local" {
            return Ok(Engine::Local);
        }
        let invalid = || format!("expected local or ballista://HOST:PORT, not {text:?}");
        let address = text.strip_prefix("ballista://").ok_or_else(invalid)?;
        let address = address.trim_end_matches('/');
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid())?),
            None => (address, BALLISTA_PORT),
        };
        if host.is_empty() || host.contains(['/', '@', '?']) {
            return Err(invalid());
        }
        Ok(Engine::Ballista(format!("{host}:{port}")))
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::Ballista(scheduler) => write!(f, "ballista://{scheduler}"),
        }
    }
}

/// Any DataFusion setting can be overridden for a run from the environment, as DataFusion
/// names them: `datafusion.execution.batch_size` is `DATAFUSION_EXECUTION_BATCH_SIZE`.
fn overrides_from_env(options: &mut ConfigOptions) -> Result<(), EngineError> {
    let keys: Vec<String> = options.entries().into_iter().map(|e| e.key).collect();
    for key in keys {
        let variable = key.replace('.', "_").to_uppercase();
        if let Ok(value) = std::env::var(&variable)
            && options.set(&key, &value).is_err()
        {
            return Err(EngineError::Setting {
                variable,
                value,
                key,
            });
        }
    }
    Ok(())
}

/// A DataFusion session for one run, with segflow's functions and the run's object stores
/// registered: in this process, or a client of a Ballista cluster.
pub(crate) async fn session(
    options: &EngineOptions,
    stores: &Stores,
) -> Result<(SessionContext, IdentifierStats), EngineError> {
    // What spills goes to a space of the session's own, which a killed process leaves to the
    // next one to remove (see `store::Space`); the session holds it, and removes it when
    // dropped.
    let spill = Space::create(&format!(
        "spill-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
    .map_err(|source| EngineError::Write {
        what: "making a folder to spill to".into(),
        source,
    })?;
    let runtime = runtime_env(options.memory_limit, spill.path())?;
    let config = session_config(options.memory_limit.is_some())?.with_extension(Arc::new(spill));
    let ctx = match &options.engine {
        Engine::Local => {
            let state = SessionStateBuilder::new()
                .with_config(config)
                .with_runtime_env(runtime)
                .with_default_features()
                .with_physical_optimizer_rules(physical_optimizer_rules())
                .build();
            SessionContext::new_with_state(state)
        }
        Engine::Ballista(scheduler) => {
            let config = config.with_extension(Arc::new(OnCluster::default()));
            ballista::client(scheduler, config, runtime, options.store_timeout).await?
        }
    };
    for (url, store) in stores.iter() {
        ctx.register_object_store(&url, store.clone());
    }
    // After the client is made: a Ballista client replaces the functions of the state it is
    // made from.
    let stats = functions::register(&ctx);
    match options.engine {
        Engine::Local => Ok((ctx, stats)),
        Engine::Ballista(_) => Ok((ctx, stats.counted_elsewhere())),
    }
}

/// The settings of a session: segflow's, then any DataFusion setting from the environment.
/// `bounded`: a memory limit is set.
pub(crate) fn session_config(bounded: bool) -> Result<SessionConfig, EngineError> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_create_default_catalog_and_schema(true);
    config.options_mut().sql_parser.collect_spans = true;
    // A feature's per-day partials group events by customer and day, and most groups hold one
    // event (a month of 1M customers: 11.9M events, 8.8M groups). Aggregating them twice, in
    // partial and final stages, builds a hash table nearly as large as the input for nothing;
    // past half as many groups as rows, the partial stage passes rows through instead
    // (DataFusion's default: 80%). A first run at 1M customers: `customer_features` 108 → 85 s
    // and peak RSS 4.1 → 3.3 GiB, side by side; a daily run the same within noise.
    config
        .options_mut()
        .execution
        .skip_partial_aggregation_probe_ratio_threshold = 0.5;
    // Spark, Hive and Impala write timestamps as INT96, which DataFusion reads in nanoseconds
    // by default: dates outside 1677–2262 (a `9999-12-31` "valid until") wrap around to other
    // dates. Microseconds hold any year.
    config.options_mut().execution.parquet.coerce_int96 = Some("us".into());
    if bounded {
        // Hash joins hold their build side in memory and cannot spill: joining ten million
        // customers to their features and addresses needs gigabytes. Under a memory limit,
        // sort-merge joins sort (and spill) both sides instead; slower, but bounded.
        config.options_mut().optimizer.prefer_hash_join = false;
        // Aggregations group in their final stage only: each partial stage hands on the groups
        // of its first batch and passes the rest through as partial states. A partial stage
        // out of memory does not spill: it emits every group it holds as one batch, gives its
        // memory back to the pool and hands the batch on a slice at a time, so the batch, as
        // large as the stage's share of the pool, is held outside the pool, one per partition,
        // and each slice reports the whole batch's size, so the repartition after it spills
        // slice after slice. A first run at 10M customers under 3 GiB held so 300 MB batches
        // in `campaign_contacts`' totals (23M (customer, offer) groups from 156M events) and
        // in the offers' held channels (18M groups), and peaked at 3.9–4.4 GiB; a final stage
        // spills its groups at its share instead. Few groups cost the repartition a little
        // more; without a limit partial stages are kept (they reduce rows where they can).
        let execution = &mut config.options_mut().execution;
        execution.skip_partial_aggregation_probe_rows_threshold = 0;
        execution.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        // What spills is written once and read once: LZ4 costs little CPU and writes the
        // identifiers and hashes that make up most of a spilled row in about half the bytes
        // (a first run at 10M customers spills gigabytes in its sorts).
        config.options_mut().execution.spill_compression = SpillCompression::Lz4Frame;
    }
    overrides_from_env(config.options_mut())?;
    Ok(config)
}

/// Spilling to temporary files, and under a memory limit a fair pool of that size.
fn runtime_env(memory_limit: Option<usize>, spill: &Path) -> Result<Arc<RuntimeEnv>, EngineError> {
    MEMORY_LIMIT.store(memory_limit.unwrap_or(0), Ordering::Relaxed);
    // A sort that spilled merges its sorted runs back with memory it takes outside the fair
    // shares, as much as the pool has left, for as many runs as it can read at once: at 10M
    // customers one such merge held 658 MB of a 3 GiB pool and the sorts beside it could not
    // get the little they needed. Merging at most 8 runs at a time (in passes when there are
    // more) bounds what one merge takes to a few batches per run.
    let mut disk =
        DiskManagerBuilder::default().with_mode(DiskManagerMode::Directories(vec![spill.into()]));
    if let Some(room) = spill_room(spill) {
        disk = disk.with_max_temp_directory_size(room);
    }
    if memory_limit.is_some() {
        disk = disk.with_max_spill_merge_fan_in(SPILL_MERGE_FAN_IN);
    }
    let mut runtime = RuntimeEnvBuilder::new()
        .with_disk_manager_builder(disk)
        .with_cache_manager(fresh_listings());
    if let Some(limit) = memory_limit {
        // A fair pool, not DataFusion's greedy default: every operator that can spill (sorts,
        // aggregations) gets its share and spills at it, so one big sort cannot starve the
        // others, and together they leave headroom to what cannot spill ([`pool`]); the five
        // largest consumers are named when memory runs out.
        let fair = pool::FairPool::new(limit);
        let tracked = TrackConsumersPool::new(fair, NonZeroUsize::new(5).expect("5 > 0"));
        runtime = runtime.with_memory_pool(Arc::new(tracked));
    }
    runtime
        .build_arc()
        .map_err(|e| EngineError::Session(e.into()))
}

/// DataFusion's caches, but not of folder listings: DataFusion keeps a folder's listing for
/// as long as the process lives, and a run rewrites folders it has read (a scratch table
/// written again, a result read back): they must be listed anew.
pub(crate) fn fresh_listings() -> CacheManagerConfig {
    CacheManagerConfig::default().with_list_files_cache_limit(0)
}

/// DataFusion's physical optimizer rules, with segflow's: float columns' statistics, which
/// leave NaN out, are not taken as exact ([`float_stats`]), hash joins build the side of known
/// size ([`build_side`]), under a memory limit a small side is still collected rather than
/// sorted ([`small_side`]), and rows are numbered per key in one pass ([`row_number`]).
pub(crate) fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = scheduler_physical_optimizer_rules();
    let after = rules
        .iter()
        .position(|r| r.name() == build_side::BuildKnownSide::AFTER)
        .map_or(0, |i| i + 1);
    rules.insert(after, Arc::new(build_side::BuildKnownSide));
    rules.insert(after + 1, Arc::new(small_side::CollectSmallSide));
    rules.push(Arc::new(row_number::RowNumbers));
    rules
}

/// The physical optimizer rules of a Ballista scheduler: DataFusion's, after float columns'
/// statistics are made inexact ([`float_stats`]); the other rules of this process are for
/// plans run here.
pub(crate) fn scheduler_physical_optimizer_rules()
-> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = PhysicalOptimizer::new().rules;
    rules.insert(0, Arc::new(float_stats::InexactFloatStatistics));
    rules
}

/// Plans a query from the pipeline's SQL files with the run's parameters bound; nothing is
/// read yet. Errors point into the SQL file.
pub(crate) async fn plan_query(
    ctx: &SessionContext,
    what: &str,
    query: &SqlQuery,
    params: &Params,
) -> Result<DataFrame, PlanError> {
    let state = ctx.state();
    let located = |err: DataFusionError| {
        let source = QueryError::from(err);
        if let Some((at, problem)) = whole_number_param(query, params, &source.to_string()) {
            return PlanError::Invalid {
                at,
                what: what.to_string(),
                problem,
            };
        }
        PlanError::Query {
            at: locate(query, &source),
            what: what.to_string(),
            source,
        }
    };
    let plan = state
        .statement_to_plan(query.statement.clone())
        .await
        .map_err(located)?;
    let df = DataFrame::new(state, plan)
        .with_param_values(params.param_values())
        .map_err(located)?;
    if let Some(careless) = rules::careless(ctx, &df) {
        let offset = find_in_code(&query.text, careless.number()).unwrap_or(0);
        return Err(PlanError::Invalid {
            at: Location::at_offset(&query.path, &query.text, offset),
            what: what.to_string(),
            problem: careless.problem(),
        });
    }
    // Constant expressions are folded when a plan is optimized, not when it is built: a
    // literal that cannot be cast (text in a number, a time that does not exist in a column's
    // time zone) fails there, so `validate` optimizes too. Only the query's own literals and
    // parameters are folded: the message holds no row values.
    df.clone().into_optimized_plan().map_err(located)?;
    Ok(df)
}

/// A DOUBLE parameter holding a whole number (`lookback_days: 365.0`) where SQL needs a whole
/// number (days added to a date): DataFusion says `Date32 - Float64`, at the query's start. The
/// parameter is what to change, so the error points at its use and says so.
fn whole_number_param(
    query: &SqlQuery,
    params: &Params,
    message: &str,
) -> Option<(Location, String)> {
    if !message.contains("Float64") || !message.contains("Date") {
        return None;
    }
    params.iter().find_map(|(name, value)| {
        let crate::sql::Value::Float(number) = value else {
            return None;
        };
        let offset = find_in_code(&query.text, &format!("${name}"))?;
        (number.fract() == 0.0).then(|| {
            let at = Location::at_offset(&query.path, &query.text, offset);
            let problem = format!(
                "{message}: ${name} is {number:?}, a DOUBLE, where a whole number is needed; write it {number} under params"
            );
            (at, problem)
        })
    })
}

/// Plans SQL that segflow generated (from the pipeline's rules) with the run's parameters.
pub(crate) async fn plan_sql(
    ctx: &SessionContext,
    sql: &str,
    params: &Params,
) -> Result<DataFrame, QueryError> {
    let state = ctx.state();
    let plan = state.create_logical_plan(sql).await?;
    Ok(DataFrame::new(state, plan).with_param_values(params.param_values())?)
}

/// Plans SQL generated from the pipeline entry at `at` (a condition, a segment, a check): a
/// failure points there, since that is what the user must change.
pub(crate) async fn plan_located(
    ctx: &SessionContext,
    sql: &str,
    params: &Params,
    at: &Location,
    what: &str,
) -> Result<DataFrame, PlanError> {
    plan_sql(ctx, sql, params)
        .await
        .map_err(|source| PlanError::Query {
            at: at.clone(),
            what: what.to_string(),
            source,
        })
}

/// Plans generated SQL; a failure is an error of the step that generated it.
pub(crate) async fn plan_step(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<DataFrame, EngineError> {
    plan_sql(ctx, sql, params)
        .await
        .map_err(|source| EngineError::Execution {
            what: what.to_string(),
            source: QueryError {
                redact: true,
                ..source
            },
        })
}

/// Registers a planned query as a view named `name`, replacing any table of that name.
pub(crate) fn register_view(
    ctx: &SessionContext,
    what: &str,
    name: &str,
    df: DataFrame,
) -> Result<(), EngineError> {
    replace_table(ctx, name, df).map_err(|source| EngineError::Execution {
        what: what.to_string(),
        source: QueryError {
            redact: true,
            ..source
        },
    })
}

/// Registers a planned query as a view named `name`, replacing any table of that name.
pub(crate) fn replace_table(
    ctx: &SessionContext,
    name: &str,
    df: DataFrame,
) -> Result<(), QueryError> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, df.into_view())?;
    Ok(())
}

/// The rows of a query with a small result (a count, a check's verdict), logging its time and
/// plan at debug level as a written table's are.
pub(crate) async fn collect(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>, EngineError> {
    let df = plan_step(ctx, what, sql, params).await?;
    let clock = Instant::now();
    let task = Arc::new(df.task_ctx());
    let plan = df
        .create_physical_plan()
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    let batches = datafusion::physical_plan::collect(plan.clone(), task)
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    tracing::debug!(
        what,
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "collected"
    );
    log_plan_metrics(what, &plan);
    Ok(batches)
}

/// One row of a small aggregate: its text columns (labels) and its integer columns (counts).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CountRow {
    pub(crate) labels: Vec<String>,
    pub(crate) counts: Vec<u64>,
}

/// Runs a small aggregate (GROUP BY over a few labels) and returns its rows. Only for results
/// of a few rows per segment or offer: the tables themselves are never collected.
pub(crate) async fn count_rows(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<Vec<CountRow>, EngineError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Int64Type};
    let batches = collect(ctx, what, sql, params).await?;
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

/// The rows of a small query as text (NULL as `None`): for `explain`, which looks at a few
/// customers. Never for tables: those stream.
pub(crate) async fn text_rows(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
) -> Result<Vec<Vec<Option<String>>>, EngineError> {
    use datafusion::arrow::array::Array;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let batches = plan_step(ctx, what, sql, params)
        .await?
        .collect()
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::execution(what, e.into()))?;
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, f)| (!column.is_null(row)).then(|| f.value(row).to_string()))
                .collect();
            rows.push(cells);
        }
    }
    Ok(rows)
}

/// The first column of text rows, as a set (e.g. the keys a table lists).
pub(crate) fn first_column(rows: Vec<Vec<Option<String>>>) -> HashSet<String> {
    rows.into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect()
}

/// The first two columns of text rows, as first → second (NULL as `None`); rows whose first
/// column is NULL are left out.
pub(crate) fn first_two(rows: Vec<Vec<Option<String>>>) -> HashMap<String, Option<String>> {
    rows.into_iter()
        .filter_map(|row| {
            let mut cells = row.into_iter();
            Some((cells.next()??, cells.next().flatten()))
        })
        .collect()
}

/// The sort order a plan's single output stream guarantees, as Parquet records it: readers
/// may then skip sorting (the same rows in the same order give the same bytes, too).
fn sorted_by(plan: &Arc<dyn ExecutionPlan>) -> Vec<SortingColumn> {
    if plan.output_partitioning().partition_count() != 1 {
        return Vec::new();
    }
    let Some(ordering) = plan.output_ordering() else {
        return Vec::new();
    };
    let mut columns = Vec::new();
    for sort in ordering.iter() {
        let Some(column) = sort.expr.downcast_ref::<Column>() else {
            break;
        };
        columns.push(SortingColumn {
            column_idx: column.index() as i32,
            descending: sort.options.descending,
            nulls_first: sort.options.nulls_first,
        });
    }
    columns
}

/// The sort order a query's SQL asks for, as Parquet records it: on a Ballista cluster the
/// plan the client holds says nothing of its order. The keys of the outermost ORDER BY that the
/// result keeps as columns (an `ORDER BY day` of `CAST(t AS DATE) AS day` included), as far as
/// they go; `Sorted::complete` when they are all of its keys.
fn ordered_by(df: &DataFrame) -> Sorted {
    use datafusion::logical_expr::{Expr, LogicalPlan};
    let mut plan = df.logical_plan();
    let mut projections = Vec::new();
    let sort = loop {
        match plan {
            LogicalPlan::Sort(sort) => break sort,
            LogicalPlan::Projection(p) => {
                projections.push(p);
                plan = &p.input;
            }
            _ => {
                return Sorted {
                    columns: Vec::new(),
                    complete: true,
                };
            }
        }
    };
    // A key's column in the result: the projections' output that computes it, from the
    // innermost out.
    let column_of = |key: &Expr| -> Option<usize> {
        let mut key = key.clone();
        let mut index = None;
        for projection in projections.iter().rev() {
            let i = projection
                .expr
                .iter()
                .position(|e| e.clone().unalias() == key)?;
            key = Expr::Column(projection.schema.qualified_field(i).into());
            index = Some(i);
        }
        match (index, &key) {
            (Some(i), _) => Some(i),
            (None, Expr::Column(c)) => df.schema().index_of_column_by_name(None, &c.name),
            (None, _) => None,
        }
    };
    let mut columns = Vec::new();
    for key in &sort.expr {
        let Some(index) = column_of(&key.expr) else {
            break;
        };
        columns.push(SortingColumn {
            column_idx: index as i32,
            descending: !key.asc,
            nulls_first: key.nulls_first,
        });
    }
    Sorted {
        complete: columns.len() == sort.expr.len(),
        columns,
    }
}

/// What [`ordered_by`] found.
#[derive(Debug)]
struct Sorted {
    columns: Vec<SortingColumn>,
    /// No ORDER BY, or every key of it is in `columns`.
    complete: bool,
}

/// The sort order of a query's result: what its plan guarantees, or on a cluster what its SQL
/// asks for (`asked`, from [`ordered_by`]).
fn result_order(asked: Vec<SortingColumn>, plan: &Arc<dyn ExecutionPlan>) -> Vec<SortingColumn> {
    let physical = sorted_by(plan);
    if physical.is_empty() && plan.output_partitioning().partition_count() == 1 {
        asked
    } else {
        physical
    }
}

/// A query's result being read to be written: its rows, the order they come in, and what to
/// do once they are written.
struct Execution {
    stream: SendableRecordBatchStream,
    order: Vec<SortingColumn>,
    done: Executed,
}

/// What is left to do once a result is written.
enum Executed {
    /// In process: log where the time went.
    Here(Arc<dyn ExecutionPlan>),
    /// On a cluster: delete the copy the executors wrote.
    Cluster(Folder),
}

impl Executed {
    async fn finish(self, what: &str) -> Result<(), EngineError> {
        match self {
            Executed::Here(plan) => log_plan_metrics(what, &plan),
            Executed::Cluster(dir) => crate::store::delete_folder(&dir)
                .await
                .map_err(|source| write_error(what, source))?,
        }
        Ok(())
    }
}

/// Whether the rows of a result may repeat a group of its aggregation: a table of partial
/// aggregates that its readers sum again may leave out the final stage (see [`partial_stage`]).
/// A cluster runs the query whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Groups {
    Whole,
    MayRepeat,
}

/// Batches a result's last operator may produce ahead of the writer encoding them.
const AHEAD_OF_THE_WRITER: usize = 2;

/// Whether the plan ends merging sorted partitions into one stream, maybe under projections:
/// work done where the result is polled, not in tasks of its own.
fn merges_here(plan: &Arc<dyn ExecutionPlan>) -> bool {
    use datafusion::physical_plan::projection::ProjectionExec;
    use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
    if plan.downcast_ref::<SortPreservingMergeExec>().is_some() {
        return true;
    }
    plan.downcast_ref::<ProjectionExec>().is_some()
        && plan.children().first().is_some_and(|c| merges_here(c))
}

/// Runs a query for writing. In process, its plan streams here. On a cluster, the executors
/// write the result into the scratch space they share with this process (see
/// [`share_scratch`]) and this process reads it back from storage: streaming millions of rows
/// to the client over Arrow Flight is many times slower, and holds the executor serving them
/// in memory.
async fn execute(what: &str, df: DataFrame, groups: Groups) -> Result<Execution, EngineError> {
    let task = Arc::new(df.task_ctx());
    let asked = ordered_by(&df);
    let Some(cluster) = task.session_config().get_extension::<OnCluster>() else {
        let mut plan = df
            .create_physical_plan()
            .await
            .map_err(|e| EngineError::execution(what, e))?;
        if groups == Groups::MayRepeat {
            plan = partial_stage::without_final_stage(plan)
                .map_err(|e| EngineError::execution(what, e))?;
        }
        let order = result_order(asked.columns, &plan);
        let stream =
            execute_stream(plan.clone(), task).map_err(|e| EngineError::execution(what, e))?;
        // The plan's last operator runs where its stream is polled: a merge of sorted
        // partitions would otherwise take turns on one core with the Parquet encoder writing
        // its rows. In a task of its own it works a few batches ahead of the writer.
        let stream = match merges_here(&plan) {
            true => spawn_buffered(stream, AHEAD_OF_THE_WRITER),
            false => stream,
        };
        return Ok(Execution {
            stream,
            order,
            done: Executed::Here(plan),
        });
    };
    let Some(scratch) = &cluster.scratch else {
        let missing = "a cluster session writes only once it shares scratch space";
        return Err(EngineError::execution(
            what,
            DataFusionError::Internal(missing.into()),
        ));
    };
    static RESULTS: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch.join(&format!(
        "result-{}",
        RESULTS.fetch_add(1, Ordering::Relaxed)
    ));
    let schema = Arc::new(df.schema().as_arrow().clone());
    // The executors write one file per partition of the result, each sorted if the query
    // sorts (see `cluster::sink`), and this process merges them.
    // When the result's columns cannot say how it is sorted, one task gathers and writes the
    // result in its order instead.
    let (write, merge) = match asked.complete {
        true => (DataFrameWriteOptions::new(), asked.columns.as_slice()),
        false => (
            DataFrameWriteOptions::new().with_single_file_output(true),
            &[][..],
        ),
    };
    let target = match asked.complete {
        true => dir.clone(),
        false => dir.join("part-00000.parquet"),
    };
    let (_, files) = write_on_cluster(df, &target, !asked.complete, write)
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    let stream = read_result(&dir, files, schema, merge, task.runtime_env())
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    Ok(Execution {
        stream,
        order: asked.columns,
        done: Executed::Cluster(dir),
    })
}

/// Has the executors write a query's result as Parquet into `target` (a folder, or with
/// `is_file` one file) and returns its row count and number of files, once the files are found to hold the rows
/// the executors counted: a task Ballista runs again (its executor lost) writes its partition
/// again, and a run must not publish those rows twice.
async fn write_on_cluster(
    df: DataFrame,
    target: &Folder,
    is_file: bool,
    write: DataFrameWriteOptions,
) -> Result<(u64, usize), DataFusionError> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::UInt64Type;
    let runtime = df.task_ctx().runtime_env();
    let counts = df
        .write_parquet(&target.url(is_file), write, Some(scratch_parquet()))
        .await?;
    let rows = counts
        .iter()
        .filter_map(|batch| batch.column(0).as_primitive_opt::<UInt64Type>())
        .flat_map(|counts| counts.iter().flatten())
        .sum::<u64>();
    let written = match is_file {
        true => 1,
        false => (target.files().await)
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .len(),
    };
    let here = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    // From the files' footers: no row is read.
    let found = match written {
        0 => 0,
        _ => {
            here.read_parquet(target.url(is_file), ParquetReadOptions::default())
                .await?
                .count()
                .await? as u64
        }
    };
    if found != rows {
        return Err(DataFusionError::Execution(format!(
            "the executors of the cluster wrote {found} rows where their tasks counted \
             {rows} (a task ran again after its executor was lost); run again"
        )));
    }
    Ok((rows, written))
}

/// Reads back, in this process, the `files` the executors wrote of a result into `dir`: merged
/// by `order` when the query sorts (each file is sorted), one after the other otherwise.
async fn read_result(
    dir: &Folder,
    files: usize,
    schema: SchemaRef,
    order: &[SortingColumn],
    runtime: Arc<RuntimeEnv>,
) -> Result<SendableRecordBatchStream, DataFusionError> {
    use datafusion::logical_expr::{Expr, SortExpr};
    // One partition per file, none split: a sorted file read in one piece stays sorted, and
    // DataFusion merges sorted partitions without sorting them again.
    let partitions = if order.is_empty() { 1 } else { files.max(1) };
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    config.options_mut().optimizer.repartition_file_scans = false;
    let here = SessionContext::new_with_config_rt(config, runtime);
    let sorts: Vec<SortExpr> = order
        .iter()
        .map(|c| {
            let name = schema.field(c.column_idx as usize).name();
            let column = Expr::Column(datafusion::common::Column::new_unqualified(name));
            column.sort(!c.descending, c.nulls_first)
        })
        .collect();
    let options = ParquetReadOptions::default().schema(&schema);
    if sorts.is_empty() {
        return here
            .read_parquet(dir.url(false), options)
            .await?
            .execute_stream()
            .await;
    }
    let options = options.file_sort_order(vec![sorts.clone()]);
    let result = here.read_parquet(dir.url(false), options).await?;
    result.sort(sorts)?.execute_stream().await
}

/// How executors write scratch tables: encoded as this process writes its own
/// ([`ReadBy::ThisRun`]: LZ4, no min/max statistics).
fn scratch_parquet() -> TableParquetOptions {
    let (codec, statistics) = ReadBy::ThisRun.encoding();
    let mut options = TableParquetOptions::default();
    options.global.compression = Some(codec.into());
    options.global.statistics_enabled = Some(statistics.into());
    // One writer per task: an executor already runs a task per core.
    options.global.allow_single_file_parallelism = false;
    options
}

/// Streams a planned query into Parquet at `target` (a folder, or a `.parquet` file); paths in
/// the result are relative to `root`; `layout` says which columns are required and which
/// constant columns every row carries (the sort order is read from the plan).
pub(crate) async fn write_frame(
    what: &str,
    df: DataFrame,
    target: &Folder,
    root: &Folder,
    layout: TableLayout,
) -> Result<Written, EngineError> {
    let result = execute(what, df, Groups::Whole).await?;
    write_result(what, result, target, root, layout).await
}

/// Streams an executed query into Parquet at `target`, as [`write_frame`] does.
async fn write_result(
    what: &str,
    result: Execution,
    target: &Folder,
    root: &Folder,
    mut layout: TableLayout,
) -> Result<Written, EngineError> {
    let clock = Instant::now();
    layout.sorted_by = result.order.clone();
    let written = write_stream(result.stream, target, root, &layout).await;
    let (files, schema) = written.map_err(|source| write_error(what, source))?;
    let written = Written { files, schema };
    tracing::debug!(
        what,
        target = %root.relative(target.path()),
        rows = written.rows(),
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "written"
    );
    result.done.finish(what).await?;
    Ok(written)
}

/// A failure while streaming a query into Parquet: the query's own, or the write's.
fn write_error(what: &str, source: StoreError) -> EngineError {
    match source {
        StoreError::Query(err) => EngineError::execution(what, err),
        source => EngineError::Write {
            what: what.to_string(),
            source,
        },
    }
}

/// Where the time went, operator by operator (EXPLAIN ANALYZE): rows, time, spills; at debug
/// level. Plans and metrics hold no row values.
fn log_plan_metrics(what: &str, plan: &Arc<dyn ExecutionPlan>) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let analyzed = DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true);
        tracing::debug!(what, "plan with metrics:\n{analyzed}");
    }
}

/// Streams a planned query sorted by the text column `column` (then by what each table is sorted
/// by) into one table per value: `parts` say where each goes. Returns what each part wrote, in
/// order.
pub(crate) async fn write_frame_split(
    what: &str,
    df: DataFrame,
    column: &str,
    mut parts: Vec<Part>,
    root: &Folder,
) -> Result<Vec<Written>, EngineError> {
    let clock = Instant::now();
    let result = execute(what, df, Groups::Whole).await?;
    // Each table is sorted by what follows the split column in the result's order, its column
    // indices shifted past the column the tables leave out.
    let split = result.stream.schema().index_of(column).ok();
    if let (Some(split), Some((first, rest))) = (split, result.order.split_first())
        && first.column_idx as usize == split
    {
        let within: Vec<SortingColumn> = rest
            .iter()
            .map(|c| SortingColumn {
                column_idx: c.column_idx - i32::from(c.column_idx as usize > split),
                ..*c
            })
            .collect();
        for part in &mut parts {
            part.layout.sorted_by = within.clone();
        }
    }
    let tables = write_stream_split(result.stream, column, &parts, root)
        .await
        .map_err(|source| write_error(what, source))?;
    let written: Vec<Written> = tables
        .into_iter()
        .map(|(files, schema)| Written { files, schema })
        .collect();
    tracing::debug!(
        what,
        tables = written.len(),
        rows = written.iter().map(Written::rows).sum::<u64>(),
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "written"
    );
    result.done.finish(what).await?;
    Ok(written)
}

/// Streams a planned query into one folder per day of its date column `column` below `target`,
/// its rows in any order (a writer per day stays open: keep the query to a month or so of
/// days); returns the days written. The query's partial aggregates are written without their
/// final stage: a group may take more than one row, which its readers sum again.
pub(crate) async fn write_frame_by_day(
    what: &str,
    df: DataFrame,
    column: &str,
    target: &Folder,
    root: &Folder,
) -> Result<Vec<chrono::NaiveDate>, EngineError> {
    let result = execute(what, df, Groups::MayRepeat).await?;
    let days = crate::store::write_stream_by_day(result.stream, column, target, root)
        .await
        .map_err(|source| write_error(what, source))?;
    result.done.finish(what).await?;
    Ok(days)
}

/// Runs SQL segflow generated and streams the result into Parquet at `target`.
pub(crate) async fn write_query(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    target: &Folder,
    root: &Folder,
    layout: TableLayout,
) -> Result<Written, EngineError> {
    let observed = write_query_observed(ctx, what, sql, params, target, root, layout, ());
    observed.await.map(|(written, ())| written)
}

/// Sees every batch of a result on its way into Parquet (see [`write_query_observed`]).
pub(crate) trait Observer: Send + 'static {
    fn observe(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError>;

    /// Called once, after the last batch was written.
    fn finish(&mut self) {}
}

/// Nothing to see: a plain [`write_query`] (an uncontended lock per batch is all it costs).
impl Observer for () {
    fn observe(&mut self, _: &RecordBatch) -> Result<(), DataFusionError> {
        Ok(())
    }
}

/// An observer only when there is one.
impl<O: Observer> Observer for Option<O> {
    fn observe(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError> {
        match self {
            Some(observer) => observer.observe(batch),
            None => Ok(()),
        }
    }

    fn finish(&mut self) {
        if let Some(observer) = self {
            observer.finish();
        }
    }
}

/// [`write_query`], showing each batch of the result to `observer` on its way into Parquet, in
/// the result's order, and handing the observer back: what a step counts of a table it
/// publishes is taken from the rows as they are written instead of reading the table again.
/// On a cluster the result streams through this process too (see [`execute`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_query_observed<O: Observer>(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    target: &Folder,
    root: &Folder,
    layout: TableLayout,
    observer: O,
) -> Result<(Written, O), EngineError> {
    let df = plan_step(ctx, what, sql, params).await?;
    let mut result = execute(what, df, Groups::Whole).await?;
    let shared = Arc::new(std::sync::Mutex::new(observer));
    let seeing = Arc::clone(&shared);
    let schema = result.stream.schema();
    let observed = result.stream.map(move |batch| {
        let batch = batch?;
        let mut observer = seeing.lock().unwrap_or_else(PoisonError::into_inner);
        observer.observe(&batch)?;
        Ok(batch)
    });
    result.stream = Box::pin(RecordBatchStreamAdapter::new(schema, observed));
    let written = write_result(what, result, target, root, layout).await?;
    // The stream, and with it the other handle on the observer, is gone once written.
    let observer = Arc::into_inner(shared).ok_or_else(|| {
        let held = "the observed stream outlived its write".into();
        EngineError::execution(what, DataFusionError::Internal(held))
    })?;
    let mut observer = observer
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    observer.finish();
    Ok((written, observer))
}

/// Streams generated SQL into scratch Parquet under `work_dir` and registers it as `table`, so
/// later steps read the result instead of recomputing it; returns its row count.
pub(crate) async fn materialize(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    work_dir: &Folder,
    table: &str,
) -> Result<u64, EngineError> {
    let dir = work_dir.join(table.trim_start_matches("__segflow_"));
    if on_cluster(ctx) {
        return materialize_on_cluster(ctx, what, sql, params, &dir, table).await;
    }
    let written = write_query(
        ctx,
        what,
        sql,
        params,
        &dir,
        work_dir,
        TableLayout::scratch(),
    )
    .await?;
    register_parquet(ctx, table, &dir).await?;
    Ok(written.rows())
}

/// Marks a session whose queries run on a Ballista cluster, and where its executors write
/// results for this process to read (see [`share_scratch`]).
#[derive(Debug, Default)]
struct OnCluster {
    scratch: Option<Folder>,
}

pub(crate) fn on_cluster(ctx: &SessionContext) -> bool {
    ctx.state().config().get_extension::<OnCluster>().is_some()
}

/// Gives a cluster's session scratch space its executors share with this process: they write
/// the results this process publishes there instead of streaming their rows here. Nothing to
/// do in process.
pub(crate) fn share_scratch(ctx: &SessionContext, scratch: &Folder) {
    if on_cluster(ctx) {
        let shared = OnCluster {
            scratch: Some(scratch.clone()),
        };
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(shared));
    }
}

/// [`materialize`] on a cluster: the executors write the table's partitions themselves, into
/// scratch space they share with this process (the run's prefix on an object store), instead
/// of streaming every row through this process; only the row count comes back.
async fn materialize_on_cluster(
    ctx: &SessionContext,
    what: &str,
    sql: &str,
    params: &Params,
    dir: &Folder,
    table: &str,
) -> Result<u64, EngineError> {
    // A table written again in the same run replaces the last: a write with fewer partitions
    // than the last would leave some of its files behind.
    crate::store::delete_folder(dir)
        .await
        .map_err(|source| write_error(what, source))?;
    let df = plan_step(ctx, what, sql, params).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let (rows, _) = write_on_cluster(df, dir, false, DataFrameWriteOptions::new())
        .await
        .map_err(|e| EngineError::execution(what, e))?;
    if rows > 0 {
        return register_parquet(ctx, table, dir).await.map(|()| rows);
    }
    // No rows, maybe no file.
    register_empty(ctx, what, table, schema, dir).await?;
    Ok(0)
}

/// Registers `table` as a table of no rows and these columns. On a cluster it is one Parquet
/// file of no rows written into `dir`, not an empty table: Ballista plans an empty input as
/// an operator that its scheduler miscounts when one task reads several partitions of a
/// UNION, and the query then never finishes.
pub(crate) async fn register_empty(
    ctx: &SessionContext,
    what: &str,
    table: &str,
    schema: SchemaRef,
    dir: &Folder,
) -> Result<(), EngineError> {
    if !on_cluster(ctx) {
        let empty = datafusion::datasource::empty::EmptyTable::new(schema);
        return ctx
            .deregister_table(table)
            .and_then(|_| ctx.register_table(table, Arc::new(empty)))
            .map(|_| ())
            .map_err(|e| EngineError::execution(what, e));
    }
    crate::store::delete_folder(dir)
        .await
        .map_err(|source| write_error(what, source))?;
    let nothing = Box::pin(datafusion::physical_plan::EmptyRecordBatchStream::new(
        schema,
    ));
    write_stream(nothing, dir, dir, &TableLayout::scratch())
        .await
        .map_err(|source| write_error(what, source))?;
    register_parquet(ctx, table, dir).await
}

/// Registers Parquet (a folder of files, or one `.parquet` file) as a table, replacing any
/// table of that name.
/// Whether a run has the table `dir`: a run made before the pipeline declared what writes a
/// table has none. `what` reads it, for the error.
pub(crate) async fn table_exists(what: &str, dir: &Folder) -> Result<bool, EngineError> {
    dir.exists().await.map_err(|source| EngineError::Write {
        what: what.into(),
        source: crate::store::StoreError::object("reading", dir, source),
    })
}

pub(crate) async fn register_parquet(
    ctx: &SessionContext,
    name: &str,
    path: &Folder,
) -> Result<(), EngineError> {
    let what = format!("reading back {name}");
    let location = path.url(path.path().as_ref().ends_with(".parquet"));
    let url = ListingTableUrl::parse(location).map_err(|e| EngineError::execution(&what, e))?;
    register_listing(ctx, &what, name, vec![url]).await
}

/// Registers the Parquet files of several folders as one table, replacing any of that name.
pub(crate) async fn register_parquet_folders(
    ctx: &SessionContext,
    what: &str,
    name: &str,
    folders: &[Folder],
) -> Result<(), EngineError> {
    let urls = folders
        .iter()
        .map(|f| ListingTableUrl::parse(f.url(false)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::execution(what, e))?;
    register_listing(ctx, what, name, urls).await
}

/// Registers the Parquet files at `urls` (the schema read from the first) as table `name`.
async fn register_listing(
    ctx: &SessionContext,
    what: &str,
    name: &str,
    urls: Vec<ListingTableUrl>,
) -> Result<(), EngineError> {
    let failed = |e| EngineError::execution(what, e);
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let first = urls.first().ok_or_else(|| {
        failed(DataFusionError::Internal(
            "no Parquet folder to read".into(),
        ))
    })?;
    let schema = options
        .infer_schema(&ctx.state(), first)
        .await
        .map_err(failed)?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(failed)?;
    ctx.deregister_table(name).map_err(failed)?;
    ctx.register_table(name, Arc::new(table)).map_err(failed)?;
    Ok(())
}

/// Where a planning error points in the SQL: DataFusion's span when it has one, else the first
/// quoted name in the message found in the file, else the file's start.
fn locate(query: &SqlQuery, err: &QueryError) -> Location {
    err.span_in(query)
        .or_else(|| {
            let message = err.to_string();
            quoted_names(&message).find_map(|name| {
                let bare = name.rsplit('.').next().unwrap_or(name);
                find_identifier(&query.text, bare)
                    .map(|offset| Location::at_offset(&query.path, &query.text, offset))
            })
        })
        .unwrap_or_else(|| Location::file(&query.path))
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
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Int64Type};
    use datafusion::physical_plan::metrics::MetricsSet;

    use super::*;

    /// A metric of the plan's operators (`of` reads it from one operator's), summed over the
    /// tree.
    fn summed(plan: &Arc<dyn ExecutionPlan>, of: fn(&MetricsSet) -> Option<usize>) -> usize {
        let own = plan.metrics().as_ref().and_then(of).unwrap_or(0);
        own + plan
            .children()
            .into_iter()
            .map(|c| summed(c, of))
            .sum::<usize>()
    }

    /// Every spill of the plan's operators.
    fn spills(plan: &Arc<dyn ExecutionPlan>) -> usize {
        summed(plan, MetricsSet::spill_count)
    }

    /// Rows the plan's partial aggregation stages passed through as partial states, without
    /// grouping them.
    fn passed_through(plan: &Arc<dyn ExecutionPlan>) -> usize {
        summed(plan, |m| {
            m.sum_by_name("skipped_aggregation_rows")
                .map(|v| v.as_usize())
        })
    }

    /// A session of two partitions with a view `t` of 100,000 rows (`k`, `v`), whose sorted
    /// results end merging the two sorted partitions.
    async fn two_partitions() -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        let table = "SELECT v % 7 AS k, v FROM generate_series(1, 100000) AS t(v)";
        ctx.sql(&format!("CREATE VIEW t AS {table}")).await.unwrap();
        ctx
    }

    /// A sorted result ends merging its sorted partitions, which is handed to a task of its
    /// own, projected or not; an unsorted one does not.
    #[tokio::test]
    async fn a_merge_of_sorted_partitions_is_found_under_projections() {
        let ctx = two_partitions().await;
        for (sql, merges) in [
            ("SELECT k, v FROM t ORDER BY v", true),
            ("SELECT v + 1 AS w, k FROM t ORDER BY v", true),
            ("SELECT k, COUNT(*) AS n FROM t GROUP BY k", false),
        ] {
            let plan = ctx
                .sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap();
            let shown = DisplayableExecutionPlan::new(plan.as_ref()).indent(true);
            assert_eq!(merges_here(&plan), merges, "{sql}\n{shown}");
        }
    }

    /// The merge of a sorted result runs before the writer asks for its rows: its first
    /// batches are produced while nothing polls the result's stream. (Polled where the result
    /// is written, it would not have produced a row yet.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sorted_result_is_merged_ahead_of_its_writer() {
        let ctx = two_partitions().await;
        let df = ctx.sql("SELECT k, v FROM t ORDER BY v").await.unwrap();
        let execution = execute("sorted", df, Groups::Whole).await.unwrap();
        let Executed::Here(plan) = &execution.done else {
            panic!("ran in process")
        };
        let mut merge = plan.clone();
        while !merge.name().contains("SortPreservingMerge") {
            let child = Arc::clone(merge.children()[0]);
            merge = child;
        }
        let merged = || merge.metrics().and_then(|m| m.output_rows()).unwrap_or(0);
        // Not a measure of speed: the merge's task starts at once, and ten seconds is the
        // longest the test waits for it to produce its first batches.
        for _ in 0..1000 {
            if merged() > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(merged() > 0, "nothing merged before the stream was polled");
        let rows: usize = execution
            .stream
            .map(|batch| batch.unwrap().num_rows())
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .sum();
        assert_eq!(rows, 100_000);
    }

    /// Executors write a scratch table as this process writes its own (LZ4, no min/max
    /// statistics, see `TableLayout::scratch`): the files `write_on_cluster` has DataFusion
    /// write, here in this process, are read back to see how each column was encoded.
    #[tokio::test]
    async fn executors_write_scratch_tables_as_this_process_does() {
        use datafusion::parquet::basic::Compression;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let ctx = SessionContext::new();
        let df = ctx
            .sql("SELECT v AS n, CAST(v AS VARCHAR) AS s FROM generate_series(1, 5000) AS t(v)")
            .await
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = Folder::local(tmp.path()).join("scratch");
        let (rows, files) = write_on_cluster(df, &dir, false, DataFrameWriteOptions::new())
            .await
            .unwrap();
        assert_eq!(rows, 5000);
        assert!(files > 0);
        let mut chunks = 0;
        for entry in std::fs::read_dir(tmp.path().join("scratch")).unwrap() {
            let reader =
                SerializedFileReader::new(std::fs::File::open(entry.unwrap().path()).unwrap());
            let metadata = reader.unwrap().metadata().clone();
            for group in metadata.row_groups() {
                for column in group.columns() {
                    assert_eq!(column.compression(), Compression::LZ4_RAW);
                    assert!(column.statistics().is_none(), "{column:?}");
                    chunks += 1;
                }
            }
        }
        assert!(chunks >= 2);
    }

    /// A session under a 16 MiB limit, and a sort of 600k hashes that spills in it.
    async fn spilling_sort() -> (SessionContext, &'static str) {
        let options = EngineOptions {
            memory_limit: Some(16 << 20),
            ..EngineOptions::default()
        };
        let (ctx, _) = session(&options, &Stores::default()).await.unwrap();
        // Each sort's merge reserves 10 MB up front by default; a pool this small leaves
        // room for 1 MB.
        let reserve = "SET datafusion.execution.sort_spill_reservation_bytes = 1048576";
        ctx.sql(reserve).await.unwrap();
        let sql = "SELECT value, encode(sha256(CAST(value AS VARCHAR)), 'hex') AS h \
                   FROM generate_series(1, 600000) ORDER BY h";
        (ctx, sql)
    }

    #[tokio::test]
    async fn a_sort_many_times_larger_than_the_limit_spills_and_comes_back_whole_and_sorted() {
        let (ctx, sql) = spilling_sort().await;
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .unwrap();
        let hashes: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let h = cast(b.column(1), &DataType::Utf8).unwrap();
                let h = h.as_string::<i32>().clone();
                (0..h.len()).map(move |i| h.value(i).to_string())
            })
            .collect();
        assert_eq!(hashes.len(), 600_000);
        assert!(hashes.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        // More sorted runs than one merge pass reads: merged in passes.
        assert!(
            spills(&plan) > SPILL_MERGE_FAN_IN,
            "{} spills",
            spills(&plan)
        );
    }

    #[test]
    fn a_full_disk_while_spilling_says_where_and_what_to_do() {
        // As Arrow's writer of spill files reports it.
        let full = DataFusionError::IoError(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let full = std::io::Error::other(full);
        let arrow = datafusion::arrow::error::ArrowError::IoError("IO error".into(), full);
        let err = DataFusionError::Context(
            "spilling".into(),
            Box::new(DataFusionError::ArrowError(Box::new(arrow), None)),
        );
        let err = EngineError::execution("feature f", err);
        assert!(matches!(err, EngineError::DiskFull { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.starts_with("feature f: no room left on the disk of "));
        assert!(message.contains("(the disk is full)"), "{message}");
        assert!(message.contains("set TMPDIR"), "{message}");
        let other = std::io::Error::from_raw_os_error(libc::EACCES);
        let err = DataFusionError::IoError(other);
        assert!(matches!(
            EngineError::execution("feature f", err),
            EngineError::Execution { .. }
        ));
    }

    #[tokio::test]
    async fn a_sort_that_spills_more_than_the_disk_gives_says_where_and_what_to_do() {
        let (ctx, sql) = spilling_sort().await;
        let disk = &ctx.runtime_env().disk_manager;
        let room = disk.max_temp_directory_size();
        let space = ctx.state().config().get_extension::<Space>().unwrap();
        // Nine tenths of the disk's free space (which other processes move a little).
        let now = spill_room(space.path()).unwrap();
        assert!(room > 0 && room.abs_diff(now) < now / 100, "{room} {now}");
        // A disk with 1 MB left to give.
        disk.set_max_temp_directory_size(1 << 20).unwrap();
        let err = ctx.sql(sql).await.unwrap().collect().await.unwrap_err();
        let err = EngineError::execution("model m", err);
        assert!(matches!(err, EngineError::DiskFull { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("(a run spills at most nine tenths"),
            "{message}"
        );
        assert!(message.contains("set TMPDIR"), "{message}");
    }

    #[tokio::test]
    async fn a_session_spills_into_a_space_of_its_own_removed_with_the_session() {
        let options = EngineOptions {
            memory_limit: Some(64 << 20),
            ..EngineOptions::default()
        };
        let (ctx, _) = session(&options, &Stores::default()).await.unwrap();
        let space = ctx.state().config().get_extension::<Space>().unwrap();
        let dir = space.path().to_path_buf();
        // Where DataFusion's sorts and aggregations create their spill files.
        let file = (ctx.runtime_env().disk_manager)
            .create_tmp_file("a test")
            .unwrap();
        let spilled = file.path().unwrap().to_path_buf();
        assert!(spilled.starts_with(&dir), "{spilled:?} not in {dir:?}");
        std::fs::write(&spilled, b"rows").unwrap();
        drop((file, space, ctx));
        assert!(!dir.exists(), "{dir:?} left behind");
    }

    #[tokio::test]
    async fn aggregations_group_in_their_final_stage_only_under_a_memory_limit() {
        // 400k rows in 50k groups: a partial stage keeps them (one group in eight rows).
        let sql = "SELECT value % 50000 AS k, COUNT(*) AS n, SUM(value) AS total \
                   FROM generate_series(1, 400000) GROUP BY value % 50000";
        for limit in [None, Some(256 << 20)] {
            let options = EngineOptions {
                memory_limit: limit,
                ..EngineOptions::default()
            };
            let (ctx, _) = session(&options, &Stores::default()).await.unwrap();
            let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await;
            let plan = plan.unwrap();
            let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
                .await
                .unwrap();
            let counts: Vec<i64> = batches
                .iter()
                .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
                .collect();
            assert_eq!(counts.len(), 50_000, "one row per group");
            assert!(counts.iter().all(|&n| n == 8), "each group whole");
            match limit {
                None => assert_eq!(passed_through(&plan), 0, "the partial stage groups"),
                Some(_) => assert!(passed_through(&plan) > 300_000, "passed through"),
            }
        }
    }

    #[test]
    fn memory_errors_keep_the_settings_they_name() {
        let err = DataFusionError::Context(
            "sorting".into(),
            Box::new(DataFusionError::ResourcesExhausted(
                "increase the config: 'datafusion.runtime.memory_limit' of ExternalSorter[1]"
                    .into(),
            )),
        );
        let shown = QueryError::from_data(err).to_string();
        assert!(
            shown.contains("'datafusion.runtime.memory_limit' of ExternalSorter[1]"),
            "{shown}"
        );
    }

    #[test]
    fn values_quoted_by_data_errors_are_removed() {
        assert_eq!(
            redact_quoted("Cannot cast string 'William' to value of Float64 type"),
            "Cannot cast string '…' to value of Float64 type"
        );
        assert_eq!(redact_quoted("row \"a,b"), "row \"…");
        assert_eq!(
            redact_quoted("value 'x' as type 'Date32' at line 3"),
            "value '…' as type 'Date32' at line 3"
        );
        // A pattern built from a row's value, as the regex parser prints it.
        assert_eq!(
            redact_quoted(
                "External error: regex parse error:\n    Bob's(\n         ^\nerror: unclosed group"
            ),
            "External error: regex parse error:\n    …\nerror: unclosed group"
        );
        assert_eq!(
            redact_quoted("regex parse error:\n    Bob("),
            "regex parse error:\n    …"
        );
        assert_eq!(
            redact_quoted(
                "Arrow error: Compute error: Regular expression did not compile: (?i)Fran\nçois("
            ),
            "Arrow error: Compute error: Regular expression did not compile:\n    …"
        );
        assert_eq!(
            redact_quoted(
                "Regular expression did not compile: Syntax(\n~~~\nregex parse error:\n    Bob(\n    ^\nerror: unclosed group\n~~~)"
            ),
            "Regular expression did not compile:\nregex parse error:\n    …\nerror: unclosed group\n~~~)"
        );
        // An encoding's name is not a value.
        assert_eq!(
            redact_quoted("Csv error: Encountered invalid UTF-8 data for line 1101 and field 2"),
            "Csv error: Encountered invalid UTF-8 data for line 1101 and field 2"
        );
        // Numbers that casts and arithmetic failed on.
        assert_eq!(
            redact_quoted("Cast error: Cannot cast to Decimal128(38, 2). Overflowing on 1e37"),
            "Cast error: Cannot cast to Decimal128(38, 2). Overflowing on …"
        );
        assert_eq!(
            redact_quoted("Arrow error: Overflow happened on: 123456789 * 1000"),
            "Arrow error: Overflow happened on: …"
        );
        assert_eq!(
            redact_quoted("Execution error: Unable to parse date from 2026, 2, 29"),
            "Execution error: Unable to parse date from …"
        );
        assert_eq!(
            redact_quoted("date_bin timestamp value 1700000000 * scale 1000 overflows i64"),
            "date_bin timestamp value … overflows i64"
        );
        assert_eq!(
            redact_quoted(
                "error: 1200.5 is too large to store in a Decimal128 of precision 38. Max is 99"
            ),
            "error: … is too large to store in a Decimal128 of precision 38. Max is 99"
        );
        assert_eq!(
            redact_quoted("Arrow error: Cast error: Can't cast value 1000000000000 to type Int32"),
            "Arrow error: Cast error: Can't cast value … to type Int32"
        );
        assert_eq!(
            redact_quoted("Cannot cast string 'O'Brien' to value of Float64 type"),
            "Cannot cast string '…' to value of Float64 type"
        );
        assert_eq!(
            redact_quoted(
                "Cannot cast 3 years 2 days to IntervalYearMonth. Only year and month fields are allowed."
            ),
            "Cannot cast … to IntervalYearMonth. Only year and month fields are allowed."
        );
        // Numbers functions name in messages of their own; places and sizes stay.
        assert_eq!(
            redact_quoted("Execution error: invalid Unicode scalar value: 1114112"),
            "Execution error: invalid Unicode scalar value: …"
        );
        assert_eq!(
            redact_quoted("negative count not allowed: -3; Overflow happened on FACTORIAL(21)"),
            "negative count not allowed: …; Overflow happened on FACTORIAL(…)"
        );
        assert_eq!(
            redact_quoted("Cannot convert 2026-02-29T10:30:00.5 to epoch, 1.5e-3 or 0.25"),
            "Cannot convert …-…-…T…:…:… to epoch, … or …"
        );
        let kept = "Resources exhausted: Failed to allocate additional 321.0 KB for \
                    ExternalSorter[0]#12 with 2 GiB, 10% left; Decimal128(38, 2) at line 7, \
                    column 3 of row group 2 in Int64 or Utf8View";
        assert_eq!(redact_quoted(kept), kept);
        // A CSV value with a quote and the markers of the message in it, and its row.
        assert_eq!(
            redact_quoted(
                "Parser error: Error while parsing value 'Jeanne d'Arc for column 9' as type 'Int64' for column 1 at line 7. Row data: '[1, Jeanne d'Arc for column 9]'"
            ),
            "Parser error: Error while parsing value '…' as type 'Int64' for column 1 at line 7. Row data: '…'"
        );
    }
}
