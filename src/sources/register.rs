//! Sources as DataFusion listing tables: files found, schema inferred from the files (Parquet
//! footers, CSV headers and a sample of lines) and reconciled with the source's column contract.
//! Nothing here reads whole files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};
use serde::{Deserialize, Serialize};

use super::{Source, SourceError};
use crate::engine::QueryError;
use crate::location::Uri;
use crate::spec::{ColumnType, Format};

/// What a run read from one source, recorded in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceInput {
    pub name: String,
    pub uri: String,
    pub format: String,
    pub files: usize,
    pub bytes: u64,
}

pub(crate) fn arrow_type(column: ColumnType) -> DataType {
    match column {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// The column type a contract would declare for `data_type`, if any: the kind of
/// [`arrow_type`]'s types (any integer is an `int`).
pub(crate) fn column_type(data_type: &DataType) -> Option<ColumnType> {
    Some(match data_type {
        t if t.is_integer() => ColumnType::Int,
        t if t.is_floating() => ColumnType::Double,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => ColumnType::String,
        _ => return None,
    })
}

/// The listing URL of a source: folders end in `/` so every file below is read.
fn source_table_url(source: &Source) -> Result<ListingTableUrl, SourceError> {
    let written = source.uri.to_string();
    if let Some(wildcard) = written.find(['*', '?', '['])
        && written[wildcard..].contains('/')
    {
        return Err(SourceError::GlobAcrossFolders {
            at: source.at.clone(),
            name: source.name.clone(),
            uri: written,
        });
    }
    let text = match &source.uri {
        Uri::Local(path) => {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            if source.uri.is_glob() {
                let parent = absolute
                    .ancestors()
                    .find(|p| !p.to_string_lossy().contains(['*', '?', '[']))
                    .map(std::path::Path::to_path_buf);
                if !parent.is_some_and(|p| p.exists()) {
                    return Err(missing(source));
                }
                absolute.to_string_lossy().into_owned()
            } else if absolute.is_dir() {
                format!("{}/", absolute.to_string_lossy().trim_end_matches('/'))
            } else if absolute.is_file() {
                absolute.to_string_lossy().into_owned()
            } else {
                return Err(missing(source));
            }
        }
        Uri::Url(url) => url.to_string(),
    };
    ListingTableUrl::parse(&text).map_err(|e| unreadable(source, e))
}

fn missing(source: &Source) -> SourceError {
    SourceError::Missing {
        at: source.at.clone(),
        name: source.name.clone(),
        uri: source.uri.to_string(),
    }
}

fn unreadable(source: &Source, err: datafusion::common::DataFusionError) -> SourceError {
    let http = matches!(&source.uri, Uri::Url(url) if url.scheme().starts_with("http"));
    if http && err.to_string().contains("PROPFIND") {
        return SourceError::HttpListing {
            at: source.at.clone(),
            name: source.name.clone(),
            uri: source.uri.to_string(),
        };
    }
    SourceError::Unreadable {
        at: source.at.clone(),
        name: source.name.clone(),
        uri: source.uri.to_string(),
        source: QueryError::from_data(err),
    }
}

fn listing_options(source: &Source, state: &SessionState) -> ListingOptions {
    let format: Arc<dyn FileFormat> = match source.format {
        // Each CSV file is read in one piece: split into byte ranges, a range starting inside a
        // quoted value holding a line break (an address, a note) would be misread.
        Format::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(source.header)
                .with_delimiter(source.delimiter)
                .with_newlines_in_values(true),
        ),
        // With the session's Parquet settings (how INT96 timestamps read; any given from the
        // environment), which a format made by itself would not see.
        Format::Parquet => {
            Arc::new(ParquetFormat::default().with_options(state.default_table_options().parquet))
        }
        Format::Ndjson => Arc::new(JsonFormat::default()),
    };
    ListingOptions::new(format)
        .with_file_extension(source.extension.clone())
        .with_table_partition_cols(
            source
                .partitions
                .iter()
                .map(|(name, kind)| (name.clone(), arrow_type(*kind)))
                .collect(),
        )
}

/// The folders between the source's folder and `file` (`["year=2026", "month=3"]`); `None`
/// for a file outside the source's folder.
fn partition_folders<'a>(
    url: &ListingTableUrl,
    file: &'a object_store::path::Path,
) -> Option<Vec<&'a str>> {
    let mut parts: Vec<&str> = url.strip_prefix(file)?.collect();
    parts.pop()?;
    Some(parts)
}

/// Whether a file of a partitioned source sits under its declared partition folders
/// (`year=2026/month=3/part.parquet`), which is the only place it is read from.
fn under_partitions(
    source: &Source,
    url: &ListingTableUrl,
    file: &object_store::path::Path,
) -> bool {
    if source.partitions.is_empty() {
        return true;
    }
    let Some(folders) = partition_folders(url, file) else {
        return false;
    };
    folders.len() == source.partitions.len()
        && folders
            .iter()
            .zip(&source.partitions)
            .all(|(folder, (name, _))| {
                folder
                    .split_once('=')
                    .is_some_and(|(key, value)| key == name && !value.is_empty())
            })
}

/// The partition folders of `file` whose value cannot be read as the type `partitioned_by`
/// declares (`month=x` for an int), as contract differences: DataFusion would fail mid-run
/// casting the folder's name, naming neither the folder nor the source.
fn partition_value_problems(
    source: &Source,
    url: &ListingTableUrl,
    file: &object_store::path::Path,
) -> Vec<String> {
    let folders = partition_folders(url, file).unwrap_or_default();
    folders
        .iter()
        .zip(&source.partitions)
        .filter_map(|(folder, (name, kind))| {
            let (_, value) = folder.split_once('=')?;
            // A filter `month = 7` lists the folder `month=7` only: an int or a date must be
            // written as SQL writes it, or its files are skipped without a word.
            let (reads, written) = match kind {
                ColumnType::Int => match value.parse::<i64>() {
                    Ok(n) => (true, n.to_string()),
                    Err(_) => (false, String::new()),
                },
                ColumnType::Double => (value.parse::<f64>().is_ok(), value.to_string()),
                ColumnType::Boolean => (matches!(value, "true" | "false"), value.to_string()),
                ColumnType::Date => match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
                    Ok(d) => (true, d.format("%Y-%m-%d").to_string()),
                    Err(_) => (false, String::new()),
                },
                ColumnType::String | ColumnType::Timestamp => (true, value.to_string()),
            };
            let file = shown(url, file);
            if !reads {
                let a = if matches!(kind, ColumnType::Int) { "an" } else { "a" };
                return Some(format!(
                    "file {file}: folder {folder} is not {a} {kind}, as partitioned_by declares {name}; rename the folder or move the file out of the source"
                ));
            }
            (written != value).then(|| {
                format!(
                    "file {file}: folder {folder} is written otherwise than SQL writes the {kind} {written}, so a filter `{name} = {written}` would skip its files; rename it {name}={written}, or declare {name} a string under partitioned_by"
                )
            })
        })
        .collect()
}

/// Registers a source as a table under its name; reads the file listing, Parquet footers and
/// CSV/JSON samples, never whole files.
pub(crate) async fn register_source(
    ctx: &SessionContext,
    source: &Source,
) -> Result<SourceInput, SourceError> {
    let state = ctx.state();
    let options = listing_options(source, &state);
    let SourceFiles {
        url,
        store,
        files,
        others,
    } = source_files(&state, source).await?;
    where_files_are(source, &url, &store, &files).await?;
    let mut differences: Vec<String> = (files.iter())
        .flat_map(|f| partition_value_problems(source, &url, &f.location))
        .collect();
    differences.extend(unread_files(source, &url, &others));
    // The start of each CSV file, read once: its header, its columns' types and values with
    // leading zeros.
    let samples = match source.format {
        Format::Csv => Some(csv_samples(source, &url, &store, &files).await?),
        _ => None,
    };
    let mut schemas = Vec::new();
    if differences.is_empty() {
        (differences, schemas) = file_differences(
            source,
            &url,
            &state,
            &store,
            &options,
            &files,
            samples.as_deref(),
        )
        .await?;
    }
    if !differences.is_empty() {
        return Err(SourceError::Contract {
            at: source.at.clone(),
            name: source.name.clone(),
            differences: capped(differences),
        });
    }
    let inferred = if let Some(samples) = &samples {
        csv_schema(samples)
    } else if source.format == Format::Parquet && !schemas.is_empty() {
        merged(source, &schemas).map_err(|e| unreadable(source, e.into()))?
    } else {
        match options.infer_schema(&state, &url).await {
            Ok(schema) => schema,
            Err(err) => {
                let json = source.format == Format::Ndjson;
                let files = (&url, &store, files.as_slice());
                let located = match json && super::diagnose::is_json_fault(&err.to_string()) {
                    true => super::diagnose::locate_json_line(source, files).await,
                    false => None,
                };
                return Err(match located {
                    Some(difference) => SourceError::Contract {
                        at: source.at.clone(),
                        name: source.name.clone(),
                        differences: vec![difference],
                    },
                    None => unreadable(source, err),
                });
            }
        }
    };
    let twice = partitions_in_files(source, &inferred);
    if !twice.is_empty() {
        return Err(SourceError::Contract {
            at: source.at.clone(),
            name: source.name.clone(),
            differences: twice,
        });
    }
    let inferred = match &samples {
        Some(samples) => {
            let text: HashSet<&str> = (samples.iter())
                .flat_map(|s| s.leading_zero.iter().map(String::as_str))
                .collect();
            as_text(source, &inferred, &text)
        }
        None => inferred,
    };
    let schema = match apply_contract(source, &inferred) {
        Ok(schema) => schema,
        Err(mut differences) => {
            if source.format == Format::Csv {
                let files = (&url, &store, files.as_slice());
                differences = located(source, files, &inferred, differences).await;
            }
            return Err(SourceError::Contract {
                at: source.at.clone(),
                name: source.name.clone(),
                differences,
            });
        }
    };
    let schema = mark_missing(schema, &url, &files, &schemas);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| unreadable(source, e))?;
    ctx.register_table(source.name.as_str(), Arc::new(table))
        .map_err(|e| unreadable(source, e))?;
    Ok(SourceInput {
        name: source.name.clone(),
        uri: source.uri_text.clone(),
        format: format!("{:?}", source.format).to_lowercase(),
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
    })
}

/// The field metadata naming the first file of a source that lacks a column other files have:
/// it reads as NULL there. Features refuse to read such a column (see `features::check_plan`).
pub(crate) const MISSING_IN: &str = "segflow.missing_in";

/// `schema` with each column some of the Parquet `files` lack (their `schemas`, in order)
/// marked [`MISSING_IN`] the first of them.
fn mark_missing(
    schema: SchemaRef,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
    schemas: &[SchemaRef],
) -> SchemaRef {
    if schemas.len() < 2 {
        return schema;
    }
    let fields = schema.fields().iter().map(|field| {
        let lacking = (files.iter().zip(schemas))
            .find(|(_, s)| s.field_with_name(field.name()).is_err())
            .map(|(file, _)| shown(url, &file.location));
        match lacking {
            Some(file)
                if schemas
                    .iter()
                    .any(|s| s.field_with_name(field.name()).is_ok()) =>
            {
                let mut metadata = field.metadata().clone();
                metadata.insert(MISSING_IN.to_string(), file);
                field.as_ref().clone().with_metadata(metadata)
            }
            _ => field.as_ref().clone(),
        }
    });
    Arc::new(Schema::new_with_metadata(
        fields.collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// A source's files, in path order (as DataFusion merges their schemas), and where they are.
pub(super) struct SourceFiles {
    pub(super) url: ListingTableUrl,
    pub(super) store: Arc<dyn ObjectStore>,
    /// The files the source reads: those whose names end with its extension, in path order.
    pub(super) files: Vec<ObjectMeta>,
    /// The folder's other files, from the same listing.
    pub(super) others: Vec<ObjectMeta>,
}

pub(super) async fn source_files(
    state: &SessionState,
    source: &Source,
) -> Result<SourceFiles, SourceError> {
    let url = source_table_url(source)?;
    let store = state
        .runtime_env()
        .object_store(&url)
        .map_err(|e| unreadable(source, e))?;
    let all: Vec<ObjectMeta> = url
        .list_all_files(state, store.as_ref(), "")
        .await
        .map_err(|e| unreadable(source, e))?
        .try_collect()
        .await
        .map_err(|e| unreadable(source, e))?;
    let (mut files, others): (Vec<_>, Vec<_>) =
        (all.into_iter()).partition(|f| f.location.as_ref().ends_with(source.extension.as_str()));
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(SourceFiles {
        url,
        store,
        files,
        others,
    })
}

/// The source's files are where it reads them: some exist, none in a subfolder it would not
/// read, and a partitioned source's all under its partition folders.
async fn where_files_are(
    source: &Source,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
) -> Result<(), SourceError> {
    if files.is_empty() {
        return Err(SourceError::Missing {
            at: source.at.clone(),
            name: source.name.clone(),
            uri: format!("{} (no {} files)", source.uri, source.extension),
        });
    }
    if let Some(nested) = in_subfolders(source, url, store).await? {
        return Err(SourceError::Subfolder {
            at: source.at.clone(),
            name: source.name.clone(),
            file: shown(url, &nested.location),
            advice: match source.partitions.is_empty() {
                true => format!(
                    "move it into {}, or, for folders of one kind (month=11/…), declare them under partitioned_by",
                    source.uri
                ),
                false => "move it into its partition folder".into(),
            },
        });
    }
    if let Some(stray) = files
        .iter()
        .find(|f| !under_partitions(source, url, &f.location))
    {
        return Err(SourceError::Layout {
            at: source.at.clone(),
            name: source.name.clone(),
            file: shown(url, &stray.location),
            folders: source
                .partitions
                .iter()
                .map(|(name, _)| format!("{name}=…"))
                .collect::<Vec<_>>()
                .join("/"),
        });
    }
    Ok(())
}

/// The first file of the source's kind in a subfolder of its folder that it would not read
/// (`data/events/2026-11/a.parquet`, `month=11/late/a.parquet`): DataFusion lists the files
/// of the folder itself and of partition folders only, so its rows would be missing without
/// a word. Folders starting with `_` or `.` (`_temporary/`, a tool's hidden folder) are not
/// the source's.
async fn in_subfolders(
    source: &Source,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
) -> Result<Option<ObjectMeta>, SourceError> {
    if !url.is_collection() || source.uri.is_glob() {
        return Ok(None);
    }
    let mut listing = store.list(Some(url.prefix()));
    while let Some(file) = listing
        .try_next()
        .await
        .map_err(|e| unreadable(source, e.into()))?
    {
        let Some(folders) = partition_folders(url, &file.location) else {
            continue;
        };
        let own = |folder: &&str| !folder.starts_with(['_', '.']);
        // What DataFusion reads: files in the folder, or below folders named `key=value`.
        let nested = file.location.as_ref().ends_with(source.extension.as_str())
            && folders.iter().all(own)
            && !url.contains(&file.location, true);
        if nested {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// Partitions the files also hold as a column: two columns of one name.
fn partitions_in_files(source: &Source, inferred: &Schema) -> Vec<String> {
    (source.partitions.iter())
        .filter(|(name, _)| inferred.field_with_name(name).is_ok())
        .map(|(name, _)| {
            format!(
                "the files hold a column {name}, which partitioned_by also reads from their folders; take {name} out of partitioned_by (the files' column is read) or out of the files"
            )
        })
        .collect()
}

/// The `others` of a source's folder (files it does not read) that look meant to be read, as
/// differences: a name whose extension differs only in case (`b.CSV`), or a compressed file
/// (`b.csv.gz`); their rows would be missing from the run without a word. Other files
/// (`_SUCCESS`, a README) are not the source's.
fn unread_files(source: &Source, url: &ListingTableUrl, others: &[ObjectMeta]) -> Vec<String> {
    const COMPRESSED: [&str; 8] = [
        ".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd", ".snappy", ".lz4",
    ];
    let extension = source.extension.to_ascii_lowercase();
    let problems = others.iter().filter_map(|file| {
        let name = file.location.filename()?;
        let lower = name.to_ascii_lowercase();
        let advice = if lower.ends_with(&extension) {
            format!("rename it to end with {}", source.extension)
        } else if COMPRESSED
            .iter()
            .any(|c| lower.ends_with(&format!("{extension}{c}")))
        {
            "it is compressed, and segflow reads a source's files uncompressed: decompress it"
                .to_string()
        } else {
            return None;
        };
        Some(format!(
            "file {}: not read, as its name does not end with {}; {advice}",
            shown(url, &file.location),
            source.extension
        ))
    });
    problems.collect()
}

/// A file of the source as a user would write it: a local path, or the store's URL.
pub(super) fn shown(url: &ListingTableUrl, file: &object_store::path::Path) -> String {
    let store = url.object_store();
    match store.as_str().trim_end_matches('/') {
        "file:" => format!("/{file}"),
        base => format!("{base}/{file}"),
    }
}

/// The most differences between files one error lists.
const MAX_FILE_DIFFERENCES: usize = 10;

/// The Parquet files' schemas as one, each declared column as it is read (an INT file and a
/// BIGINT file of an `int` column merge as BIGINT).
fn merged(
    source: &Source,
    schemas: &[SchemaRef],
) -> Result<SchemaRef, datafusion::arrow::error::ArrowError> {
    let read = schemas.iter().map(|schema| {
        let fields = schema.fields().iter().map(|field| {
            let declared = source.contract.get(field.name());
            match declared.and_then(|d| reads_as(source.format, field.data_type(), *d)) {
                // NULLs alone take the type of the other files' column.
                Some(_) if *field.data_type() == DataType::Null => field.as_ref().clone(),
                Some(data_type) => Field::new(field.name(), data_type, true),
                None => field.as_ref().clone(),
            }
        });
        Schema::new(fields.collect::<Vec<_>>())
    });
    Ok(Arc::new(Schema::try_merge(read)?))
}

/// Every file's own columns against the contract, and the Parquet files' schemas (none when
/// there is one file, a headerless CSV or JSON). `files` are in path order; `samples` are
/// theirs when they are CSV files with a header. A source's table merges the schemas of its
/// files, so a column one file lacks (renamed upstream, say) would silently read as NULL there;
/// and CSV files are parsed by position, so a file listing its columns in another order would
/// read each value into another column. Parquet files must also agree on each declared
/// column's type. Reads Parquet footers (cached for the table's own inference) and the first
/// lines of CSV files.
async fn file_differences(
    source: &Source,
    url: &ListingTableUrl,
    state: &SessionState,
    store: &Arc<dyn ObjectStore>,
    options: &ListingOptions,
    files: &[ObjectMeta],
    samples: Option<&[CsvSample]>,
) -> Result<(Vec<String>, Vec<SchemaRef>), SourceError> {
    let csv = source.format == Format::Csv;
    // One file is the table's schema itself; headerless CSV names its columns by position; a
    // JSON file's schema is what a sample of its lines holds, and a key its sample lacks is
    // NULL there by design.
    if files.len() < 2 || (csv && !source.header) || source.format == Format::Ndjson {
        return Ok((Vec::new(), Vec::new()));
    }
    // A CSV file's columns are its header's names, read as text (CSV is parsed as declared).
    if let Some(samples) = samples.filter(|_| source.header) {
        let schemas: Vec<SchemaRef> = (samples.iter())
            .map(|sample| {
                let fields = sample
                    .names
                    .iter()
                    .map(|n| Field::new(n, DataType::Utf8, true));
                Arc::new(Schema::new(fields.collect::<Vec<_>>()))
            })
            .collect();
        let differences = compare_files(source, url, files, &schemas);
        return Ok((differences, Vec::new()));
    }
    let schemas: Vec<SchemaRef> = futures::stream::iter(files)
        .map(|file| async move {
            (options.format)
                .infer_schema(state, store, std::slice::from_ref(file))
                .await
                .map_err(|err| SourceError::Unreadable {
                    at: source.at.clone(),
                    name: source.name.clone(),
                    uri: shown(url, &file.location),
                    source: QueryError::from_data(err),
                })
        })
        .buffered(8)
        .try_collect()
        .await?;
    let differences = compare_files(source, url, files, &schemas);
    Ok((differences, schemas))
}

/// The differences of each file's schema from the contract and from the first file's.
fn compare_files(
    source: &Source,
    url: &ListingTableUrl,
    files: &[ObjectMeta],
    schemas: &[SchemaRef],
) -> Vec<String> {
    let csv = source.format == Format::Csv;
    let names = |schema: &SchemaRef| -> Vec<String> {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    };
    let partitions: Vec<&str> = source.partitions.iter().map(|(n, _)| n.as_str()).collect();
    let first_names = names(&schemas[0]);
    let mut differences = Vec::new();
    let mut typed: HashMap<&str, (DataType, &ObjectMeta, &DataType)> = HashMap::new();
    let mut undeclared: HashMap<&str, (&DataType, &ObjectMeta)> = HashMap::new();
    for (file, schema) in files.iter().zip(schemas) {
        let has = names(schema);
        if csv && has != first_names {
            differences.push(format!(
                "file {}: its columns are {} where {} has {}; every CSV file of a source lists the same columns in the same order (they are read by position)",
                shown(url, &file.location),
                has.join(", "),
                shown(url, &files[0].location),
                first_names.join(", ")
            ));
            continue;
        }
        for (name, declared) in &source.contract {
            if partitions.contains(&name.as_str()) {
                continue;
            }
            let Ok(field) = schema.field_with_name(name) else {
                differences.push(format!(
                    "file {}: column {name} is missing (the file has: {})",
                    shown(url, &file.location),
                    has.join(", ")
                ));
                continue;
            };
            // CSV text is parsed as declared.
            if csv {
                continue;
            }
            let Some(read) = reads_as(source.format, field.data_type(), *declared) else {
                differences.push(format!(
                    "file {}: column {name}: the contract says {}, the file has {}",
                    shown(url, &file.location),
                    declared,
                    field.data_type()
                ));
                continue;
            };
            // Files may differ where they are read as one type (INT and BIGINT, say); a column
            // of NULLs alone (pyarrow's `null` type) reads as any.
            if *field.data_type() == DataType::Null {
                continue;
            }
            match typed.get(name.as_str()) {
                Some((other, at, was)) if *other != read => differences.push(format!(
                    "column {name} is {was} in {} but {} in {}; store it with one type in every file",
                    shown(url, &at.location),
                    field.data_type(),
                    shown(url, &file.location)
                )),
                Some(_) => {}
                None => {
                    typed.insert(name, (read, file, field.data_type()));
                }
            }
        }
        // A column the contract leaves out is read as the files store it: one type in all.
        if csv {
            continue;
        }
        for field in schema.fields() {
            let name = field.name().as_str();
            if source.contract.contains_key(name) || partitions.contains(&name) {
                continue;
            }
            match undeclared.get(name) {
                Some((was, at)) if *was != field.data_type() => differences.push(format!(
                    "column {name} is {was} in {} but {} in {}; declare it under `columns:` with the type to read it as, or store it with one type in every file",
                    shown(url, &at.location),
                    field.data_type(),
                    shown(url, &file.location)
                )),
                Some(_) => {}
                None => {
                    undeclared.insert(name, (field.data_type(), file));
                }
            }
        }
    }
    differences
}

/// The first [`MAX_FILE_DIFFERENCES`] of `differences`, and how many more there are.
fn capped(mut differences: Vec<String>) -> Vec<String> {
    if differences.len() > MAX_FILE_DIFFERENCES {
        let more = differences.len() - MAX_FILE_DIFFERENCES;
        differences.truncate(MAX_FILE_DIFFERENCES);
        differences.push(format!("and {more} more"));
    }
    differences
}

/// How much of each CSV file [`csv_samples`] reads.
const SAMPLE_BYTES: u64 = 1 << 20;

/// How many records of each CSV file [`csv_samples`] reads, at most: as many as DataFusion
/// infers types from.
const SAMPLE_RECORDS: usize = 1000;

/// The start of a CSV file: its header's names, its columns' types as arrow infers them, and the
/// columns whose sampled text has a leading zero (`0612…`, `01234`): identifiers such as phone
/// numbers and postcodes, which type inference would read as numbers, silently dropping the zero.
struct CsvSample {
    names: Vec<String>,
    types: Schema,
    leading_zero: HashSet<String>,
}

/// Each file's [`CsvSample`], from its first MiB (at most [`SAMPLE_RECORDS`] records).
///
/// Types are inferred here, from whole records, rather than by DataFusion, whose inference cuts
/// a file into pieces at line breaks it can misjudge inside quoted values, and then fails. A
/// sampled line that is not a record of the file (a field too many, text that is not UTF-8) is
/// a difference from the contract, as it is further down the file (see `diagnose`).
async fn csv_samples(
    source: &Source,
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
) -> Result<Vec<CsvSample>, SourceError> {
    use object_store::ObjectStoreExt;
    let mut samples = Vec::new();
    let mut faults = Vec::new();
    for file in files {
        let unreadable = |err: datafusion::error::DataFusionError| SourceError::Unreadable {
            at: source.at.clone(),
            name: source.name.clone(),
            uri: shown(url, &file.location),
            source: QueryError::from_data(err),
        };
        let fetch = |err: object_store::Error| unreadable(err.into());
        // Streamed from the start rather than asked for as a range, which a web server may
        // not serve; dropping the stream stops the download.
        let mut stream = (store.get(&file.location).await)
            .map_err(fetch)?
            .into_stream();
        let mut bytes = Vec::new();
        let mut whole = false;
        while (bytes.len() as u64) < SAMPLE_BYTES {
            match stream.next().await {
                Some(chunk) => bytes.extend_from_slice(&chunk.map_err(fetch)?),
                None => {
                    whole = true;
                    break;
                }
            }
        }
        match read_sample(source, &bytes, whole) {
            Ok(sample) => samples.push(sample),
            Err(SampleError::Line(line, problem)) => {
                faults.push(super::diagnose::at_line(url, file, line, &problem));
            }
            Err(SampleError::Unreadable(err)) => {
                return Err(unreadable(datafusion::error::DataFusionError::ArrowError(
                    Box::new(err),
                    None,
                )));
            }
        }
    }
    if !faults.is_empty() {
        return Err(SourceError::Contract {
            at: source.at.clone(),
            name: source.name.clone(),
            differences: capped(faults),
        });
    }
    Ok(samples)
}

/// Why a file's sample gives no [`CsvSample`].
enum SampleError {
    /// A line (as an editor counts them) that is not a record of the file, and why.
    Line(u64, String),
    Unreadable(datafusion::arrow::error::ArrowError),
}

/// The [`CsvSample`] of a file's first `bytes` (`whole` when they are the whole file).
fn read_sample(source: &Source, bytes: &[u8], whole: bool) -> Result<CsvSample, SampleError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(source.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    // The header (if any), then data records; a record cut by the sample's end is left out.
    let mut records: Vec<csv::ByteRecord> = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut end = 0;
    // Reading bytes in memory, the parser has no error to give.
    while records.len() < SAMPLE_RECORDS + usize::from(source.header)
        && matches!(reader.read_byte_record(&mut record), Ok(true))
    {
        let next = reader.position().byte();
        if !whole && next >= bytes.len() as u64 {
            break;
        }
        // The parser's position is before the blank lines it skipped: a record starts after.
        let at = record.position().map_or(0, |p| p.byte() as usize);
        let blank = bytes[at..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let line = || super::diagnose::Lines::line_at(bytes, at + blank);
        if record
            .iter()
            .any(|field| std::str::from_utf8(field).is_err())
        {
            return Err(SampleError::Line(
                line(),
                "text that is not UTF-8".to_string(),
            ));
        }
        let fields = records.first().map_or(record.len(), csv::ByteRecord::len);
        if record.len() != fields {
            let problem = format!("not the {fields} fields of the file's other lines");
            return Err(SampleError::Line(line(), problem));
        }
        end = next;
        records.push(record.clone());
    }
    // A column without a name would be published under one arrow makes up (`C5`), all NULL
    // when it is the empty column after a delimiter ending every line.
    if let Some(header) = records.first().filter(|_| source.header)
        && let Some(at) = header.iter().position(|name| name.trim_ascii().is_empty())
    {
        let delimiter = char::from(source.delimiter);
        let problem = match at + 1 == header.len() {
            true => format!(
                "the header's last column has no name; name it, or end the lines without the \
                 `{delimiter}` that ends them"
            ),
            false => format!("the header's column {} has no name; name it", at + 1),
        };
        return Err(SampleError::Line(1, problem));
    }
    let format = datafusion::arrow::csv::reader::Format::default()
        .with_header(source.header)
        .with_delimiter(source.delimiter);
    let (types, _) = (format.infer_schema(&bytes[..end as usize], Some(SAMPLE_RECORDS)))
        .map_err(SampleError::Unreadable)?;
    let names: Vec<String> = types.fields().iter().map(|f| f.name().clone()).collect();
    let mut seen = HashSet::new();
    if let Some(twice) = names.iter().find(|name| !seen.insert(name.as_str())) {
        let problem =
            format!("the header names column {twice} twice; give each column a name of its own");
        return Err(SampleError::Line(1, problem));
    }
    let mut leading_zero = HashSet::new();
    for record in records.iter().skip(usize::from(source.header)) {
        for (name, value) in names.iter().zip(record.iter()) {
            if value.len() > 1 && value[0] == b'0' && value[1].is_ascii_digit() {
                leading_zero.insert(name.clone());
            }
        }
    }
    Ok(CsvSample {
        names,
        types,
        leading_zero,
    })
}

/// A CSV source's schema from its files' samples, merged as DataFusion merges what it infers
/// from parts of a file: a column of integers in one file and decimals in another is a double,
/// of any other two types text; a column empty in every sample is NULL (a contract types it;
/// undeclared, it is read as text).
fn csv_schema(samples: &[CsvSample]) -> SchemaRef {
    let mut columns: Vec<(String, HashSet<DataType>)> = Vec::new();
    for field in samples.iter().flat_map(|s| s.types.fields()) {
        let types = match columns.iter_mut().find(|(name, _)| name == field.name()) {
            Some((_, types)) => types,
            None => {
                columns.push((field.name().clone(), HashSet::new()));
                &mut columns.last_mut().expect("just pushed").1
            }
        };
        if *field.data_type() != DataType::Null {
            types.insert(field.data_type().clone());
        }
    }
    let fields = columns.into_iter().map(|(name, types)| {
        let data_type = match types.len() {
            0 => DataType::Null,
            1 => types.into_iter().next().expect("one type"),
            2 if types.contains(&DataType::Int64) && types.contains(&DataType::Float64) => {
                DataType::Float64
            }
            _ => DataType::Utf8,
        };
        Field::new(name, data_type, true)
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// `inferred` with the columns named in `text` that were inferred as numbers read as text,
/// unless the contract declares them.
fn as_text(source: &Source, inferred: &SchemaRef, text: &HashSet<&str>) -> SchemaRef {
    let fields = inferred.fields().iter().map(|field| {
        let (name, numeric) = (field.name(), field.data_type().is_numeric());
        if numeric && text.contains(name.as_str()) && !source.contract.contains_key(name) {
            Field::new(field.name(), DataType::Utf8, true)
        } else {
            field.as_ref().clone()
        }
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
}

/// The schema the source is read with: inferred types, replaced by the contract's where the
/// contract declares a column. Returns every difference that cannot be read as declared.
fn apply_contract(source: &Source, inferred: &SchemaRef) -> Result<SchemaRef, Vec<String>> {
    let mut differences = Vec::new();
    let partition_names: Vec<&str> = source.partitions.iter().map(|(n, _)| n.as_str()).collect();
    for name in source.contract.keys() {
        if inferred.field_with_name(name).is_err() && !partition_names.contains(&name.as_str()) {
            let have: Vec<&str> = inferred
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            differences.push(format!(
                "column {name} is missing (the data has: {})",
                have.join(", ")
            ));
        }
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|field| {
            let Some(declared) = source.contract.get(field.name()) else {
                // A CSV column empty in every sampled line may be filled further down: read
                // as NULL, its values would be lost.
                return match (source.format, field.data_type()) {
                    (Format::Csv, DataType::Null) => Field::new(field.name(), DataType::Utf8, true),
                    _ => field.as_ref().clone(),
                };
            };
            match reads_as(source.format, field.data_type(), *declared) {
                Some(data_type) => Field::new(field.name(), data_type, true),
                None => {
                    differences.push(format!(
                        "column {}: the contract says {}, the data has {}",
                        field.name(),
                        declared,
                        field.data_type()
                    ));
                    field.as_ref().clone()
                }
            }
        })
        .collect();
    if differences.is_empty() {
        Ok(Arc::new(Schema::new(fields)))
    } else {
        Err(differences)
    }
}

/// `differences` with each CSV column whose sampled values the contract's type cannot read
/// (a boolean column holding `N`, an int column holding `2048.0`) located: the file and line of
/// its first such value, as further down a file (see `diagnose`).
async fn located(
    source: &Source,
    files: (&ListingTableUrl, &Arc<dyn ObjectStore>, &[ObjectMeta]),
    inferred: &SchemaRef,
    mut differences: Vec<String>,
) -> Vec<String> {
    // The columns as the contract types them, and as text where it does not say.
    let typed = |field: &Field| {
        let declared = source.contract.get(field.name());
        let data_type = declared.map_or(DataType::Utf8, |kind| arrow_type(*kind));
        Field::new(field.name(), data_type, true)
    };
    let schema = Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| typed(f))
            .collect::<Vec<_>>(),
    );
    for (column, field) in inferred.fields().iter().enumerate() {
        let Some(declared) = source.contract.get(field.name()) else {
            continue;
        };
        if reads_as(source.format, field.data_type(), *declared).is_some() {
            continue;
        }
        let Some(found) = super::diagnose::locate_value(source, files, &schema, column).await
        else {
            continue;
        };
        let general = format!("column {}: ", field.name());
        differences.retain(|d| !d.starts_with(&general));
        differences.push(found);
    }
    differences
}

/// The type to read a column as, when data of type `found` can honour the declared type.
/// CSV text can be read as any wider type; typed formats must already be of the right kind,
/// except JSON text for a date or a timestamp.
fn reads_as(format: Format, found: &DataType, declared: ColumnType) -> Option<DataType> {
    use DataType::*;
    let target = arrow_type(declared);
    // JSON has no dates or times: they are text, parsed as the declared type when read.
    let json_time = format == Format::Ndjson
        && matches!(found, Utf8 | LargeUtf8 | Utf8View)
        && matches!(declared, ColumnType::Date | ColumnType::Timestamp);
    let fits = json_time
        || match declared {
            ColumnType::String => {
                format == Format::Csv || matches!(found, Utf8 | LargeUtf8 | Utf8View | Null)
            }
            ColumnType::Int => found.is_integer() || *found == Null,
            ColumnType::Double => found.is_numeric() || *found == Null,
            ColumnType::Boolean => matches!(found, Boolean | Null),
            ColumnType::Date => matches!(found, Date32 | Date64 | Null),
            // CSV dates read as midnight.
            ColumnType::Timestamp => {
                matches!(found, Timestamp(_, _) | Null)
                    || (format == Format::Csv && matches!(found, Date32 | Date64))
            }
        };
    if !fits {
        return None;
    }
    // CSV is parsed straight into the declared type. Typed formats keep their own type where
    // it is the declared kind already (strings as DataFusion reads them, timestamps with their
    // unit and zone); numbers and dates are read as the declared type, so that what a run
    // publishes (an `int` key is BIGINT) does not follow how an upstream export stored them.
    let keeps_own = matches!(declared, ColumnType::String | ColumnType::Timestamp);
    Some(
        if format == Format::Csv || *found == Null || json_time || !keeps_own {
            target
        } else {
            found.clone()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_reads_as_declared_wider_types() {
        assert_eq!(
            reads_as(Format::Csv, &DataType::Int64, ColumnType::String),
            Some(DataType::Utf8)
        );
        assert_eq!(
            reads_as(Format::Csv, &DataType::Int64, ColumnType::Double),
            Some(DataType::Float64)
        );
        assert_eq!(
            reads_as(Format::Csv, &DataType::Utf8, ColumnType::Int),
            None
        );
        assert_eq!(
            reads_as(Format::Parquet, &DataType::Int64, ColumnType::String),
            None
        );
        // Typed formats: numbers and dates as declared, strings and timestamps as they are.
        assert_eq!(
            reads_as(Format::Parquet, &DataType::Int32, ColumnType::Int),
            Some(DataType::Int64)
        );
        assert_eq!(
            reads_as(Format::Parquet, &DataType::Int64, ColumnType::Double),
            Some(DataType::Float64)
        );
        assert_eq!(
            reads_as(Format::Parquet, &DataType::Date64, ColumnType::Date),
            Some(DataType::Date32)
        );
        assert_eq!(
            reads_as(Format::Parquet, &DataType::Utf8View, ColumnType::String),
            Some(DataType::Utf8View)
        );
    }
}
