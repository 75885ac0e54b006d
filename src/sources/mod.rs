//! Sources: the external tables a pipeline reads (CSV, Parquet or NDJSON files, optionally
//! Hive-partitioned), each with an optional column contract and primary key.

mod diagnose;
mod register;

use datafusion::prelude::SessionContext;
use indexmap::IndexMap;

pub(crate) use diagnose::{CsvFault, find_csv_fault, find_json_fault, is_json_fault};
pub use register::SourceInput;
pub(crate) use register::{MISSING_IN, column_type};

use crate::compile::Compiler;
use crate::engine::QueryError;
use crate::location::{Location, Uri};
use crate::spec::{ColumnType, Format, SourceSpec};

#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) uri: Uri,
    pub(crate) description: Option<String>,
    /// The uri as written in the pipeline, for messages and the manifest.
    pub(crate) uri_text: String,
    pub(crate) format: Format,
    pub(crate) extension: String,
    pub(crate) delimiter: u8,
    pub(crate) header: bool,
    pub(crate) partitions: Vec<(String, ColumnType)>,
    pub(crate) contract: IndexMap<String, ColumnType>,
    /// Where the source is declared (its `uri:` line).
    pub(crate) at: Location,
}

/// A source that cannot be read as declared.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{at}: source {name}: nothing at {uri}; check the path or generate the data")]
    Missing {
        at: Location,
        name: String,
        uri: String,
    },
    #[error("{at}: source {name} ({uri}) cannot be read")]
    Unreadable {
        at: Location,
        name: String,
        uri: String,
        #[source]
        source: QueryError,
    },
    /// HTTP has no listing of its own: folders and globs need a server that speaks WebDAV.
    #[error(
        "{at}: source {name}: {uri} names a folder or glob, and this HTTP server does not list files (WebDAV PROPFIND); name a file, serve the folder with WebDAV, or put it on an object store"
    )]
    HttpListing {
        at: Location,
        name: String,
        uri: String,
    },
    /// A file of a partitioned source outside its partition folders would never be read.
    #[error(
        "{at}: source {name}: {file} is not under the partition folders {folders}; segflow reads only files there, so move it into its partition folder or out of the source's folder"
    )]
    Layout {
        at: Location,
        name: String,
        file: String,
        folders: String,
    },
    /// A file in a subfolder of a source's folder: not read.
    #[error(
        "{at}: source {name}: {file} is in a subfolder of the source's folder, whose files segflow does not read; {advice}"
    )]
    Subfolder {
        at: Location,
        name: String,
        file: String,
        advice: String,
    },
    /// A glob whose wildcards span folders: DataFusion matches one folder's file names.
    #[error(
        "{at}: source {name}: {uri} has a wildcard before its last `/`, and a glob matches the file names of one folder; name the folder (data/events/) and declare its subfolders under partitioned_by, or keep the wildcards in the file name (data/events/*.csv)"
    )]
    GlobAcrossFolders {
        at: Location,
        name: String,
        uri: String,
    },
    /// Data that breaks its contract is a broken upstream: a run is blocked, like by a gate.
    #[error(
        "{at}: source {name} does not match its column contract:\n{}\nfix the data or the `columns:` of the source",
        .differences.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
    )]
    Contract {
        at: Location,
        name: String,
        differences: Vec<String>,
    },
}

/// Compiles `sources:`.
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, SourceSpec>,
) -> IndexMap<String, Source> {
    let mut sources = IndexMap::new();
    for (name, spec) in specs {
        if let Some(source) = compile_source(c, name, spec) {
            sources.insert(name.clone(), source);
        }
    }
    sources
}

fn compile_source(c: &mut Compiler, name: &str, spec: &SourceSpec) -> Option<Source> {
    c.check_name(&["sources", name], name);
    let uri = match Uri::resolve(c.root(), &spec.uri) {
        Ok(uri) => uri,
        Err(message) => {
            c.problem(
                &["sources", name, "uri"],
                format!("sources.{name}.uri: {message}"),
            );
            return None;
        }
    };
    if spec.format != Format::Csv && (spec.delimiter.is_some() || spec.header.is_some()) {
        c.problem(
            &["sources", name],
            format!("sources.{name}: delimiter and header apply to csv sources only"),
        );
    }
    let delimiter = spec.delimiter.unwrap_or(',');
    if !delimiter.is_ascii() {
        c.problem(
            &["sources", name, "delimiter"],
            format!("sources.{name}.delimiter: use a single ASCII character"),
        );
    }
    for key in &spec.primary_key {
        if !spec.columns.is_empty() && !spec.columns.contains_key(key) {
            c.problem(
                &["sources", name, "primary_key"],
                format!("sources.{name}.primary_key: \"{key}\" is not in the source's columns"),
            );
        }
    }
    Some(Source {
        name: name.to_string(),
        uri,
        description: spec.description.clone(),
        uri_text: spec.uri.clone(),
        format: spec.format,
        extension: spec
            .extension
            .clone()
            .unwrap_or_else(|| spec.format.default_extension().to_string()),
        delimiter: delimiter as u8,
        header: spec.header.unwrap_or(true),
        partitions: spec
            .partitioned_by
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        contract: spec.columns.clone(),
        at: c.at(&["sources", name, "uri"]),
    })
}

/// Registers every source as a table under its name; returns what each holds.
pub(crate) async fn register_all<'a>(
    ctx: &SessionContext,
    sources: impl IntoIterator<Item = &'a Source>,
) -> Result<Vec<SourceInput>, SourceError> {
    let mut inputs = Vec::new();
    for source in sources {
        inputs.push(register::register_source(ctx, source).await?);
    }
    Ok(inputs)
}
