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

/// A predicate keeping only keys that were never erased; `key` is the (quoted, qualified)
/// key column.
pub(crate) fn not_erased(key: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM {ERASED} __e WHERE __e.key_sha256 = encode(sha256(CAST({key} AS VARCHAR)), 'hex'))"
    )
}

/// Registers as `table` (column `k`) the erased keys among `keys`, a query of one column `k`
/// of distinct keys: each hashed once. A query over many rows per key (a year of events) can
/// then leave them out with [`not_among`], a join on the key itself, instead of hashing every
/// row's key with [`not_erased`]. The keys stay in this process's memory until the table is
/// deregistered: never written, and plans show no values. Returns how many there are (none,
/// without a table, when nobody was ever erased).
pub(crate) async fn register_erased_among(
    ctx: &SessionContext,
    keys: &str,
    table: &str,
    params: &Params,
) -> Result<usize, EngineError> {
    // Nobody erased yet (or no erasure source): nothing to look for among the keys.
    let listed = engine::plan_step(ctx, "erasure", &format!("SELECT 1 FROM {ERASED}"), params)
        .await?
        .count()
        .await
        .map_err(|e| EngineError::execution("erasure", e))?;
    if listed == 0 {
        return Ok(0);
    }
    let sql = format!(
        "SELECT d.k FROM ({keys}) AS d \
         JOIN {ERASED} __e ON __e.key_sha256 = encode(sha256(CAST(d.k AS VARCHAR)), 'hex')"
    );
    engine::register_rows(ctx, "erasure", &sql, params, table).await
}

/// SQL that holds when `key` is not among the erased keys registered as `table` by
/// [`register_erased_among`].
pub(crate) fn not_among(table: &str, key: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM {table} __e WHERE __e.k = {key})")
}

/// The rows of every query in `parts` together (`UNION ALL`) whose key was never erased,
/// restricted to the keys in `only` when given: how every step starts from its rules.
pub(crate) fn kept_union(key: &str, parts: &[String], only: Option<&KeyFilter>) -> String {
    let k = ident(key);
    format!(
        "SELECT * FROM ({}) WHERE {k} IS NOT NULL AND {}{}",
        parts.join(" UNION ALL "),
        not_erased(&k),
        only.map(|f| format!(" AND {}", f.predicate(&k)))
            .unwrap_or_default()
    )
}

/// Checks, reading no rows, that the erasure source has the key column.
pub(crate) async fn plan(
    ctx: &SessionContext,
    key: &str,
    erasure: &Erasure,
) -> Result<(), PlanError> {
    engine::check_key(ctx, &erasure.source, key, &erasure.at, "erasure.source").await
}

/// Registers the erased keys: today's erasure list plus every key erased before (from the
/// previous run's state), and writes them to this run's `state/erased`. Returns that output,
/// or `None` when nobody was ever erased (then nothing is kept in state).
pub(crate) async fn register(
    ctx: &SessionContext,
    key: &str,
    erasure: Option<&Erasure>,
    previous_run: Option<&Folder>,
    run_dir: &Folder,
    params: &Params,
) -> Result<Option<Output>, EngineError> {
    let none = "SELECT CAST(NULL AS VARCHAR) AS key_sha256 WHERE false";
    let previous = match previous_run.map(|d| d.join(STATE)) {
        Some(state) if exists(&state).await? => Some(state),
        _ => None,
    };
    if erasure.is_none() && previous.is_none() {
        let empty = engine::plan_step(ctx, "erasure list", none, params).await?;
        engine::register_view(ctx, "erasure list", ERASED, empty)?;
        return Ok(None);
    }
    let mut parts = vec![none.to_string()];
    if let Some(erasure) = erasure {
        let k = ident(key);
        parts.push(format!(
            "SELECT encode(sha256(CAST({k} AS VARCHAR)), 'hex') AS key_sha256 FROM {} WHERE {k} IS NOT NULL",
            ident(&erasure.source)
        ));
    }
    if let Some(dir) = previous {
        engine::register_parquet(ctx, "__segflow_previously_erased", &dir).await?;
        parts.push("SELECT CAST(key_sha256 AS VARCHAR) FROM __segflow_previously_erased".into());
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
    if !exists(&dir).await? {
        return Ok(false);
    }
    engine::register_parquet(ctx, ERASED, &dir).await?;
    Ok(true)
}

/// Whether a table of a run exists.
async fn exists(table: &Folder) -> Result<bool, EngineError> {
    table.exists().await.map_err(|source| EngineError::Write {
        what: "erasure list".into(),
        source: crate::store::StoreError::object("reading", table, source),
    })
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
    let layout = TableLayout {
        not_null: vec![key.to_string()],
        ..TableLayout::default()
    };
    engine::write_query(ctx, "erasure", &sql, params, target, root, layout).await
}
