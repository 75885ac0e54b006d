//! Where in a CSV source a value that does not read as its column's type is.
//!
//! Registering a source checks each file's header and first lines against the contract, not
//! every line. A bad value further down fails the query that reads it, and DataFusion reports
//! it by the column's position and a line counted from where its byte range of the file began,
//! without naming the file. A run that fails so reads the CSV files of its sources again, each
//! from its start with the same parser and schema (only the failing column, when the error
//! names one), to say which file, line and column hold it — never the value.

use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStoreExt};

use super::register::{SourceFiles, shown, source_files};
use super::{Source, SourceError};
use crate::spec::Format;

/// What a CSV value the parser refused looks like in an error's message, and the file column
/// it names (counted from 0), when it names one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CsvFault {
    /// A value that is not of its column's type.
    Value { column: usize },
    /// A line with too many or too few fields, or text that is not UTF-8.
    Line,
}

impl CsvFault {
    /// The fault an error's message reports, if it is one of a CSV file's lines.
    pub(crate) fn of(message: &str) -> Option<Self> {
        const VALUE: &str = "Error while parsing value ";
        if let Some(at) = message.find(VALUE) {
            let rest = &message[at..];
            let column = number_after(rest, " for column ")?;
            return Some(CsvFault::Value { column });
        }
        let line = [
            "incorrect number of fields for line",
            "invalid UTF-8 data for line",
        ];
        line.iter()
            .any(|m| message.contains(m))
            .then_some(CsvFault::Line)
    }
}

/// The number right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<usize> {
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The first line of the CSV `sources` that `fault` can be, as the source's contract broken
/// at that file, line and column; `None` when no file shows it (or cannot be read again).
pub(crate) async fn find_csv_fault<'a>(
    ctx: &SessionContext,
    sources: impl IntoIterator<Item = &'a Source>,
    fault: CsvFault,
) -> Option<SourceError> {
    let state = ctx.state();
    for source in sources {
        if source.format != Format::Csv {
            continue;
        }
        let Ok(table) = ctx.table_provider(source.name.as_str()).await else {
            continue;
        };
        // The table's columns are the files' columns, in the files' order, then the partitions.
        let partitions = &source.partitions;
        let fields = (table.schema().fields().iter())
            .filter(|f| !partitions.iter().any(|(name, _)| name == f.name()))
            .cloned()
            .collect::<Vec<_>>();
        let schema = SchemaRef::new(Schema::new(fields));
        if matches!(fault, CsvFault::Value { column } if column >= schema.fields().len()) {
            continue;
        }
        let Ok(SourceFiles { url, store, files }) = source_files(&state, source).await else {
            continue;
        };
        for file in &files {
            let Some(problem) = first_fault(source, &schema, &store, file, fault).await else {
                continue;
            };
            return Some(SourceError::Contract {
                at: source.at.clone(),
                name: source.name.clone(),
                differences: vec![format!("file {}, {problem}", shown(&url, &file.location))],
            });
        }
    }
    None
}

/// The first line of `file` showing `fault`, said without its values.
async fn first_fault(
    source: &Source,
    schema: &SchemaRef,
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    file: &ObjectMeta,
    fault: CsvFault,
) -> Option<String> {
    let mut builder = ReaderBuilder::new(schema.clone())
        .with_header(source.header)
        .with_delimiter(source.delimiter);
    if let CsvFault::Value { column } = fault {
        builder = builder.with_projection(vec![column]);
    }
    let mut decoder = builder.build_decoder();
    let mut stream = store.get(&file.location).await.ok()?.into_stream();
    let failed = |err: ArrowError| describe(schema, source, &err.to_string());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        let mut bytes = &chunk[..];
        while !bytes.is_empty() {
            let read = match decoder.decode(bytes) {
                Ok(read) => read,
                Err(err) => return failed(err),
            };
            bytes = &bytes[read..];
            if decoder.capacity() == 0
                && let Err(err) = decoder.flush()
            {
                return failed(err);
            }
        }
    }
    // The last line, whether or not it ends with a line break.
    match decoder.decode(&[]).and_then(|_| decoder.flush()) {
        Err(err) => failed(err),
        Ok(_) => None,
    }
}

/// Where arrow's message says the file broke, counted as an editor counts lines (arrow counts
/// a value's line from 0, a line's fields from 1), with the column's name and declared type.
fn describe(schema: &SchemaRef, source: &Source, message: &str) -> Option<String> {
    if let Some(column) = number_after(message, " for column ") {
        let line = number_after(message, " at line ")? + 1;
        let field = schema.fields().get(column)?;
        let name = field.name();
        return Some(match source.contract.get(name) {
            Some(declared) => format!(
                "line {line}: column {name}: the contract says {}, the line holds something else",
                format!("{declared:?}").to_lowercase()
            ),
            None => format!(
                "line {line}: column {name}, not in the contract, was read as {} from the file's first lines, and the line holds something else; declare it under `columns:` with the type it holds",
                type_name(field.data_type())
            ),
        });
    }
    let line = number_after(message, "for line ")?;
    Some(if message.contains("invalid UTF-8") {
        format!("line {line}: text that is not UTF-8")
    } else {
        format!(
            "line {line}: not the {} fields of the file's other lines",
            schema.fields().len()
        )
    })
}

/// A type as the contract would declare it.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        t if t.is_integer() => "int".into(),
        t if t.is_floating() => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "string".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_read_from_arrows_messages() {
        let value = "model p: Arrow error: Parser error: Error while parsing value '…' as type 'Int64' for column 1 at line 20229. Row data: '…'";
        assert_eq!(CsvFault::of(value), Some(CsvFault::Value { column: 1 }));
        let fields = "Csv error: incorrect number of fields for line 3, expected 2 got 1";
        assert_eq!(CsvFault::of(fields), Some(CsvFault::Line));
        assert_eq!(CsvFault::of("Divide by zero error"), None);
    }
}
