//! Erasure: customers who asked to be forgotten leave every file of every run, for good.
//!
//! The keys of the erasure source are hashed (SHA-256 of the key as text) and kept in
//! `state/erased` of every run, so no later run brings an erased customer back even once the
//! request list or the CRM forgets them, and no erased key is stored in clear. Every keyed table
//! a run writes filters with [`not_erased`]; a run that sees new erasures also rewrites the
//! earlier published runs that still hold them (see `run::scrub`).

use crate::objects::Folder;

use datafusion::prelude::SessionContext;

use crate::compile::Compiler;
use crate::engine::{self, EngineError, PlanError, TableLayout};
use crate::location::Location;
use crate::spec::ErasureSpec;
use crate::sql::{KeyFilter, Params, ident};
use crate::store::{Output, OutputKind, Written};

/// The hashed keys of every customer erased so far.
pub(crate) const ERASED: &str = "__segflow_erased";
/// Where a run keeps them, relative to its folder.
pub(crate) const STATE: &str = "state/erased";

/// `erasure:` compiled: the source listing keys to forget.
#[derive(Debug, Clone)]
pub(crate) struct Erasure {
    pub(crate) source: String,
    /// Where `erasure.source` is written.
    pub(crate) at: Location,
}

/// Compiles `erasure:`: its source must exist, and the pipeline must say which column is the
/// key to forget.
pub(crate) fn compile(
    c: &mut Compiler,
    spec: &ErasureSpec,
    sources: &[&str],
    key: Option<&str>,
) -> Option<Erasure> {
    if !sources.contains(&spec.source.as_str()) {
        c.problem(
            &["erasure", "source"],
            format!("erasure.source: no source named \"{}\"", spec.source),
        );
    }
    if key.is_none() {
        c.problem(
            &["erasure"],
            "erasure: name the pipeline's key (e.g. key: customer_id), the column whose values the erasure source lists",
        );
        return None;
    }
    Some(Erasure {
        source: spec.source.clone(),
        at: c.at(&["erasure", "source"]),
    })
}

/// The text an erased key is kept as: the SHA-256 of `key` (a SQL expression) as text without
/// the spaces around it, in hex. Requests and the data alike: a profile's `"C4 "` is the
/// customer a request for `C4` names.
pub(crate) fn key_sha256(key: &str) -> String {
    format!("encode(sha256(trim(CAST({key} AS VARCHAR))), 'hex')")
}

/// A predicate keeping only keys that were never erased; `key` is the (quoted, qualified)
/// key column.
pub(crate) fn not_erased(key: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {ERASED} __e WHERE __e.key_sha256 = {})",
        key_sha256(key)
    )
}

/// Whether anyone was ever erased: an empty list leaves nothing out of a run.
pub(crate) async fn any_erased(ctx: &SessionContext, params: &Params) -> Result<bool, EngineError> {
    let sql = format!("SELECT 1 FROM {ERASED} LIMIT 1");
    let listed = engine::plan_step(ctx, "erasure", &sql, params)
        .await?
        .count()
        .await
        .map_err(|e| EngineError::execution("erasure", e))?;
    Ok(listed > 0)
}

/// The column [`marked`] adds.
pub(crate) const MARK: &str = "__segflow_erased_key";

/// `sql`'s rows, each with whether its `key` (quoted) was erased in the boolean column
/// [`MARK`]: each row's key hashed once. For a query of one row per key whose erased keys are
/// needed again, in memory (see `engine::write_frame_setting_aside`); a query over many rows
/// per key can then leave them out with [`not_among`], a join on the key itself, instead of
/// hashing every row's key with [`not_erased`].
pub(crate) fn marked(sql: &str, key: &str) -> String {
    format!(
        "SELECT kept.*, __e.key_sha256 IS NOT NULL AS {MARK} FROM ({sql}) AS kept \
         LEFT JOIN {ERASED} __e ON __e.key_sha256 = {}",
        key_sha256(&format!("kept.{key}"))
    )
}

/// SQL that holds when `key` is not among the erased keys `table` holds (column `k`, set aside
/// from a query [`marked`]).
pub(crate) fn not_among(table: &str, key: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM {table} __e WHERE __e.k = {key})")
}

/// Which rows of its rules a step keeps (see [`kept_union`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keep<'a> {
    /// Only these keys (`explain` of one customer); every key when `None`.
    pub(crate) only: Option<&'a KeyFilter>,
    /// Tables this run wrote without erased keys (materialized models with the key column).
    pub(crate) clean: &'a [String],
}

/// A rule's keyed rows for [`kept_union`]: its query, and the one table it reads when it is a
/// rule of conditions (SQL that reads only that table's rows).
pub(crate) struct Part<'a> {
    pub(crate) sql: String,
    pub(crate) reads: Option<&'a str>,
}

/// The rows of every query in `parts` together (`UNION ALL`) whose key was never erased,
/// restricted to `keep.only` when given: how every step starts from its rules. Erased keys are
/// found by hashing every row's key (SHA-256, about 100 ns a row); rules that read only a table
/// `keep` says is clean need not be: at 1M customers, 6.8M keys after the profile.
pub(crate) fn kept_union(key: &str, parts: &[Part], keep: Keep) -> String {
    let k = ident(key);
    let (clean, other): (Vec<&Part>, Vec<&Part>) = parts
        .iter()
        .partition(|p| p.reads.is_some_and(|t| keep.clean.iter().any(|c| c == t)));
    let union = |parts: &[&Part]| {
        let sql: Vec<&str> = parts.iter().map(|p| p.sql.as_str()).collect();
        sql.join(" UNION ALL ")
    };
    let mut kept = Vec::new();
    if !clean.is_empty() {
        kept.push(format!(
            "SELECT * FROM ({}) WHERE {k} IS NOT NULL",
            union(&clean)
        ));
    }
    if !other.is_empty() {
        kept.push(format!(
            "SELECT * FROM ({}) WHERE {k} IS NOT NULL AND {}",
            union(&other),
            not_erased(&k)
        ));
    }
    let kept = kept.join(" UNION ALL ");
    match keep.only {
        Some(only) => format!("SELECT * FROM ({kept}) WHERE {}", only.predicate(&k)),
        None => kept,
    }
}

/// Checks, reading no rows, that the erasure source has the key column.
pub(crate) async fn plan(
    ctx: &SessionContext,
    key: &str,
    erasure: &Erasure,
) -> Result<(), PlanError> {
    engine::check_key(ctx, &erasure.source, key, &erasure.at, "erasure.source").await
}

/// Checks, once the profile is planned, that the erasure source's key is of its kind: keys are
/// matched as text, and `2272.0` is not `2272`.
pub(crate) async fn check_key_kind(
    ctx: &SessionContext,
    key: &str,
    erasure: &Erasure,
    profile: &str,
) -> Result<(), PlanError> {
    let table = (erasure.source.as_str(), &erasure.at, "erasure.source");
    engine::check_key_kind(ctx, table, key, profile).await
}

/// Registers the erased keys: today's erasure list plus every key erased before (from the
/// state of the `earlier` runs: the previous run, and for a rerun of an earlier date the
/// newest run too, since an erasure is never undone), and writes them to this run's
/// `state/erased`. Returns that output, or `None` when nobody was ever erased (then nothing
/// is kept in state).
pub(crate) async fn register(
    ctx: &SessionContext,
    key: &str,
    erasure: Option<&Erasure>,
    earlier: &[&Folder],
    run_dir: &Folder,
    params: &Params,
) -> Result<Option<Output>, EngineError> {
    let none = "SELECT CAST(NULL AS VARCHAR) AS key_sha256 WHERE false";
    let mut previous = Vec::new();
    for state in earlier.iter().map(|run| run.join(STATE)) {
        if engine::table_exists("erasure list", &state).await? {
            previous.push(state);
        }
    }
    if erasure.is_none() && previous.is_empty() {
        let empty = engine::plan_step(ctx, "erasure list", none, params).await?;
        engine::register_view(ctx, "erasure list", ERASED, empty)?;
        return Ok(None);
    }
    let mut parts = vec![none.to_string()];
    if let Some(erasure) = erasure {
        let k = ident(key);
        parts.push(format!(
            "SELECT {} AS key_sha256 FROM {} WHERE {k} IS NOT NULL",
            key_sha256(&k),
            ident(&erasure.source)
        ));
    }
    for (i, dir) in previous.iter().enumerate() {
        let table = format!("__segflow_previously_erased_{i}");
        engine::register_parquet(ctx, &table, dir).await?;
        parts.push(format!("SELECT CAST(key_sha256 AS VARCHAR) FROM {table}"));
    }
    let sql = format!(
        "SELECT DISTINCT key_sha256 FROM ({}) ORDER BY key_sha256",
        parts.join(" UNION ALL ")
    );
    let target = run_dir.join(STATE);
    let written = engine::write_query(
        ctx,
        "erasure list",
        &sql,
        params,
        &target,
        run_dir,
        TableLayout {
            not_null: vec!["key_sha256".into()],
            ..TableLayout::default()
        },
    )
    .await?;
    engine::register_parquet(ctx, ERASED, &target).await?;
    Ok(Some(written.into_output(
        "erased",
        OutputKind::State,
        STATE,
    )))
}

/// Registers the erased keys kept in a published run's state (for rewriting earlier runs);
/// false when that run erased nobody.
pub(crate) async fn register_published(
    ctx: &SessionContext,
    run_dir: &Folder,
) -> Result<bool, EngineError> {
    let dir = run_dir.join(STATE);
    if !engine::table_exists("erasure list", &dir).await? {
        return Ok(false);
    }
    engine::register_parquet(ctx, ERASED, &dir).await?;
    Ok(true)
}

/// Whether the registered `table` has the key column and holds an erased key.
pub(crate) async fn holds_erased(
    ctx: &SessionContext,
    table: &str,
    key: &str,
    params: &Params,
) -> Result<bool, EngineError> {
    let has_key = ctx
        .table(table)
        .await
        .map_err(|e| EngineError::execution("erasure", e))?
        .schema()
        .field_with_unqualified_name(key)
        .is_ok();
    if !has_key {
        return Ok(false);
    }
    let sql = format!(
        "SELECT 1 FROM {table} WHERE NOT ({}) LIMIT 1",
        not_erased(&ident(key))
    );
    let found = engine::plan_step(ctx, "erasure", &sql, params)
        .await?
        .count()
        .await
        .map_err(|e| EngineError::execution("erasure", e))?;
    Ok(found > 0)
}

/// Writes the registered `table` without erased keys to `target`.
pub(crate) async fn rewrite_without_erased(
    ctx: &SessionContext,
    table: &str,
    key: &str,
    params: &Params,
    target: &Folder,
    root: &Folder,
) -> Result<Written, EngineError> {
    let sql = format!("SELECT * FROM {table} WHERE {}", not_erased(&ident(key)));
    // The key stays as the table declared it: published tables have no NULL key, a feature's
    // state may (a NULL key is a key like any other there).
    let df = ctx
        .table(table)
        .await
        .map_err(|e| EngineError::execution("erasure", e))?;
    let nullable = (df.schema().field_with_unqualified_name(key)).map_or(true, |f| f.is_nullable());
    let layout = TableLayout {
        not_null: (!nullable).then(|| key.to_string()).into_iter().collect(),
        ..TableLayout::default()
    };
    engine::write_query(ctx, "erasure", &sql, params, target, root, layout).await
}
