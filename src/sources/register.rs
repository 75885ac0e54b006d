//! Sources as DataFusion listing tables: files found, schema inferred from the files (Parquet
//! footers, CSV headers and a sample of lines) and reconciled with the source's column contract.
//! Nothing here reads whole files.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
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

/// The listing URL of a source: folders end in `/` so every file below is read.
fn source_table_url(source: &Source) -> Result<ListingTableUrl, SourceError> {
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

fn listing_options(source: &Source) -> ListingOptions {
    let format: Arc<dyn FileFormat> = match source.format {
        Format::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(source.header)
                .with_delimiter(source.delimiter),
        ),
        Format::Parquet => Arc::new(ParquetFormat::default()),
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
    let Some(parts) = url.strip_prefix(file) else {
        return false;
    };
    let folders: Vec<&str> = parts.collect();
    let Some((_, folders)) = folders.split_last() else {
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

/// Registers a source as a table under its name; reads the file listing, Parquet footers and
/// CSV/JSON samples, never whole files.
pub(crate) async fn register_source(
    ctx: &SessionContext,
    source: &Source,
) -> Result<SourceInput, SourceError> {
    let url = source_table_url(source)?;
    let options = listing_options(source);
    let state = ctx.state();
    let store = state
        .runtime_env()
        .object_store(&url)
        .map_err(|e| unreadable(source, e))?;
    let files: Vec<_> = url
        .list_all_files(&state, store.as_ref(), &source.extension)
        .await
        .map_err(|e| unreadable(source, e))?
        .try_collect()
        .await
        .map_err(|e| unreadable(source, e))?;
    if files.is_empty() {
        return Err(SourceError::Missing {
            at: source.at.clone(),
            name: source.name.clone(),
            uri: format!("{} (no {} files)", source.uri, source.extension),
        });
    }
    if let Some(stray) = files
        .iter()
        .find(|f| !under_partitions(source, &url, &f.location))
    {
        return Err(SourceError::Layout {
            at: source.at.clone(),
            name: source.name.clone(),
            file: stray.location.to_string(),
            folders: source
                .partitions
                .iter()
                .map(|(name, _)| format!("{name}=…"))
                .collect::<Vec<_>>()
                .join("/"),
        });
    }
    let inferred = options
        .infer_schema(&state, &url)
        .await
        .map_err(|e| unreadable(source, e))?;
    let schema =
        apply_contract(source, &inferred).map_err(|differences| SourceError::Contract {
            at: source.at.clone(),
            name: source.name.clone(),
            differences,
        })?;
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
                return field.as_ref().clone();
            };
            match reads_as(source.format, field.data_type(), *declared) {
                Some(data_type) => Field::new(field.name(), data_type, true),
                None => {
                    differences.push(format!(
                        "column {}: the contract says {}, the data has {}",
                        field.name(),
                        format!("{declared:?}").to_lowercase(),
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

/// The type to read a column as, when data of type `found` can honour the declared type.
/// CSV text can be read as any wider type; typed formats must already be of the right kind.
fn reads_as(format: Format, found: &DataType, declared: ColumnType) -> Option<DataType> {
    use DataType::*;
    let target = arrow_type(declared);
    let fits = match declared {
        ColumnType::String => {
            format == Format::Csv || matches!(found, Utf8 | LargeUtf8 | Utf8View | Null)
        }
        ColumnType::Int => found.is_integer() || *found == Null,
        ColumnType::Double => found.is_numeric() || *found == Null,
        ColumnType::Boolean => matches!(found, Boolean | Null),
        ColumnType::Date => matches!(found, Date32 | Date64 | Null),
        ColumnType::Timestamp => matches!(found, Timestamp(_, _) | Null),
    };
    if !fits {
        return None;
    }
    // Typed formats keep their own physical type; CSV is parsed straight into the declared one.
    Some(if format == Format::Csv || *found == Null {
        target
    } else {
        found.clone()
    })
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
    }
}
