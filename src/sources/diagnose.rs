//! Where in a CSV or NDJSON source a value that does not read as its column's type is.
//!
//! Registering a source checks each file's header and first lines against the contract, not
//! every line. A bad value further down fails the query that reads it, and DataFusion reports
//! it by the column's position and a line counted from where its byte range of the file began,
//! without naming the file. A run that fails so reads the CSV files of its sources again, each
//! from its start with the same parser and schema (only the failing column, when the error
//! names one), to say which file, line and column hold it — never the value.

use std::sync::Arc;

use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::register::{SourceFiles, column_type, shown, source_files};
use super::{Source, SourceError};
use crate::spec::Format;

/// What a CSV value the parser refused looks like in an error's message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CsvFault {
    /// A value that does not read as its column's type: the file's column (counted from 0),
    /// and the type as arrow names it (`Int64`, `Date32`; `None` for any timestamp).
    Value { column: usize, kind: Option<String> },
    /// A line with too many or too few fields, or text that is not UTF-8.
    Line,
}

impl CsvFault {
    /// The fault an error's message reports, if it is one of a CSV file's lines.
    pub(crate) fn of(message: &str) -> Option<Self> {
        if let Some(at) = message.find("Error while parsing value ") {
            let rest = &message[at..];
            let column = number_after(rest, " for column ")?;
            let kind = text_after(rest, " as type '", '\'');
            return Some(CsvFault::Value { column, kind });
        }
        // Timestamps say it their own way.
        if let Some(column) = number_after(message, "Error parsing column ") {
            return Some(CsvFault::Value { column, kind: None });
        }
        let line = [
            "incorrect number of fields for line",
            "invalid UTF-8 data for line",
        ];
        line.iter()
            .any(|m| message.contains(m))
            .then_some(CsvFault::Line)
    }

    /// Whether a column of type `data_type` at `column` can have caused this fault.
    fn fits(&self, schema: &Schema) -> bool {
        match self {
            CsvFault::Line => true,
            CsvFault::Value { column, kind } => match schema.fields().get(*column) {
                Some(field) => match kind {
                    Some(kind) => field.data_type().to_string() == *kind,
                    None => matches!(field.data_type(), DataType::Timestamp(..)),
                },
                None => false,
            },
        }
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

/// The text after the first `marker` in `text`, up to `end`.
fn text_after(text: &str, marker: &str, end: char) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let length = text[start..].find(end)?;
    Some(text[start..start + length].to_string())
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
        let schema = file_columns(&table, source);
        if !fault.fits(&schema) {
            continue;
        }
        let Ok(SourceFiles {
            url, store, files, ..
        }) = source_files(&state, source).await
        else {
            continue;
        };
        for file in &files {
            let Some((record, problem)) = first_fault(source, &schema, &store, file, &fault).await
            else {
                continue;
            };
            let line = record_line(source, &store, file, record).await?;
            return Some(SourceError::Contract {
                at: source.at.clone(),
                name: source.name.clone(),
                differences: vec![at_line(&url, file, line, &problem)],
            });
        }
    }
    None
}

/// Whether an error's message is the JSON reader's: a line of an NDJSON source that is not
/// JSON, or a value that does not read as its column's type (a declared `timestamp` holding
/// `yesterday`).
pub(crate) fn is_json_fault(message: &str) -> bool {
    message.contains("Json error")
}

/// The first line of the NDJSON `sources` the JSON reader refuses, as the source's contract
/// broken at that file, line and column; `None` when no file shows it.
pub(crate) async fn find_json_fault<'a>(
    ctx: &SessionContext,
    sources: impl IntoIterator<Item = &'a Source>,
) -> Option<SourceError> {
    let state = ctx.state();
    for source in sources {
        if source.format != Format::Ndjson {
            continue;
        }
        let Ok(table) = ctx.table_provider(source.name.as_str()).await else {
            continue;
        };
        let schema = SchemaRef::new(file_columns(&table, source));
        let Ok(SourceFiles {
            url, store, files, ..
        }) = source_files(&state, source).await
        else {
            continue;
        };
        for file in &files {
            let Some((line, problem)) = first_json_fault(source, &schema, &store, file).await
            else {
                continue;
            };
            return Some(SourceError::Contract {
                at: source.at.clone(),
                name: source.name.clone(),
                differences: vec![at_line(&url, file, line, &problem)],
            });
        }
    }
    None
}

/// The first line of the NDJSON `files` that is not a JSON object, as a difference from the
/// contract (`file F, line L: …`): DataFusion's schema inference names neither.
pub(super) async fn locate_json_line(
    source: &Source,
    (url, store, files): (&ListingTableUrl, &Arc<dyn ObjectStore>, &[ObjectMeta]),
) -> Option<String> {
    let schema = SchemaRef::new(Schema::empty());
    for file in files {
        if let Some((line, problem)) = first_json_fault(source, &schema, store, file).await {
            return Some(at_line(url, file, line, &problem));
        }
    }
    first_kind_conflict(url, store, files).await
}

/// The kinds of JSON value a column can be read from: a key holding two of them (an object on
/// one line, text on another) cannot be one column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum JsonKind {
    Scalar,
    Array,
    Object,
}

impl JsonKind {
    fn of(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::Array(_) => Some(Self::Array),
            serde_json::Value::Object(_) => Some(Self::Object),
            _ => Some(Self::Scalar),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Scalar => "a single value",
            Self::Array => "a list",
            Self::Object => "an object",
        }
    }
}

/// The first line of the NDJSON `files` where a key holds another kind of value than where it
/// was first seen, as a difference naming both places (never the values).
async fn first_kind_conflict(
    url: &ListingTableUrl,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
) -> Option<String> {
    type Object = serde_json::Map<String, serde_json::Value>;
    let mut seen: std::collections::HashMap<String, (JsonKind, String)> = Default::default();
    for file in files {
        let mut blocks = LineBlocks::of(store, file).await?;
        let mut lines = 0u64;
        while let Some(block) = blocks.next().await {
            for line in block.split_inclusive(|b| *b == b'\n') {
                lines += 1;
                let Ok(object) = serde_json::from_slice::<Object>(line) else {
                    continue;
                };
                let here = || at_line(url, file, lines, "");
                for (key, value) in &object {
                    let Some(kind) = JsonKind::of(value) else {
                        continue;
                    };
                    match seen.get(key) {
                        Some((first, there)) if *first != kind => {
                            return Some(format!(
                                "{}key {key} holds {} where {} holds {}; a column holds one kind of value: give each kind a key of its own",
                                here(),
                                kind.name(),
                                there.trim_end_matches(": "),
                                first.name()
                            ));
                        }
                        Some(_) => {}
                        None => {
                            seen.insert(key.clone(), (kind, here()));
                        }
                    }
                }
            }
        }
    }
    None
}

/// The first line of the NDJSON `file` (counted from 1) the JSON reader refuses with
/// `schema`, and what is wrong with it, said without its values. Lines are read a chunk of
/// the file at a time; a chunk that fails is read again a line at a time.
async fn first_json_fault(
    source: &Source,
    schema: &SchemaRef,
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
) -> Option<(u64, String)> {
    let reads = |schema: SchemaRef, lines: &[u8]| {
        let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema)
            .build_decoder()
            .ok()?;
        let read = decoder.decode(lines).and_then(|_| decoder.flush());
        Some(read.is_ok())
    };
    let mut blocks = LineBlocks::of(store, file).await?;
    // Lines before the block.
    let mut lines = 0u64;
    while let Some(block) = blocks.next().await {
        if !reads(schema.clone(), &block)? {
            for (offset, line) in block.split_inclusive(|b| *b == b'\n').enumerate() {
                if reads(schema.clone(), line)? {
                    continue;
                }
                let json = reads(SchemaRef::new(Schema::empty()), line)?;
                let column = (schema.fields().iter()).filter(|_| json).find(|f| {
                    let field = Schema::new(vec![f.as_ref().clone()]);
                    reads(SchemaRef::new(field), line) == Some(false)
                });
                let problem = match column {
                    None => "not a JSON object (one per line)".to_string(),
                    Some(field) => value_problem(source, field),
                };
                return Some((lines + offset as u64 + 1, problem));
            }
        }
        lines += block.iter().filter(|b| **b == b'\n').count() as u64;
    }
    None
}

/// Where in `files` the first value of `column` (of `schema`, the table's columns as the
/// contract types them) that does not read as its type is: `file F, line L: …`, as a
/// difference from the contract. For a sampled value that made type inference disagree with
/// the contract.
pub(super) async fn locate_value(
    source: &Source,
    (url, store, files): (&ListingTableUrl, &Arc<dyn ObjectStore>, &[ObjectMeta]),
    schema: &Schema,
    column: usize,
) -> Option<String> {
    let kind = schema.fields().get(column)?.data_type();
    let fault = CsvFault::Value {
        column,
        kind: (!matches!(kind, DataType::Timestamp(..))).then(|| kind.to_string()),
    };
    for file in files {
        let Some((record, problem)) = first_fault(source, schema, store, file, &fault).await else {
            continue;
        };
        let line = record_line(source, store, file, record).await?;
        return Some(at_line(url, file, line, &problem));
    }
    None
}

/// The first record of `file` showing `fault` (counted from 1, the header included), and what
/// is wrong with it, said without its values. A value is looked for in its column only, a
/// record at a time: arrow's message quotes the value before the line it names, so the line is
/// counted here rather than read from it. A line's fields are read as text, so that only their
/// number or encoding can fail.
async fn first_fault(
    source: &Source,
    schema: &Schema,
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
    fault: &CsvFault,
) -> Option<(u64, String)> {
    let as_text = || {
        let fields = schema.fields().iter();
        Schema::new(
            fields
                .map(|f| Field::new(f.name(), DataType::Utf8, true))
                .collect::<Vec<_>>(),
        )
    };
    let column = match fault {
        CsvFault::Value { column, .. } => Some(*column),
        CsvFault::Line => None,
    };
    let mut builder = ReaderBuilder::new(SchemaRef::new(match column {
        Some(_) => schema.clone(),
        None => as_text(),
    }))
    .with_header(source.header)
    .with_delimiter(source.delimiter);
    if let Some(column) = column {
        builder = builder.with_projection(vec![column]).with_batch_size(1);
    }
    let mut decoder = builder.build_decoder();
    let mut chunks = chunks(store, file).await?;
    // Records read without fault, the header included.
    let mut read = u64::from(source.header);
    let failed = |err: ArrowError, read: u64| {
        let at = column.map(|column| (column, read + 1));
        describe(schema, source, &err.to_string(), at)
    };
    while let Some(chunk) = chunks.next().await {
        let (chunk, finished) = chunk.ok()?;
        let mut bytes: &[u8] = &chunk;
        loop {
            let consumed = match decoder.decode(bytes) {
                Ok(consumed) => consumed,
                Err(err) => return failed(err, read),
            };
            bytes = &bytes[consumed..];
            // Flushed when a batch is full, and at the end for the last line, whether or not
            // it ends with a line break.
            if decoder.capacity() == 0 || finished {
                match decoder.flush() {
                    Ok(Some(batch)) => read += batch.num_rows() as u64,
                    Ok(None) => {}
                    Err(err) => return failed(err, read),
                }
            }
            if bytes.is_empty() && (!finished || decoder.capacity() > 0) {
                break;
            }
        }
    }
    None
}

/// What is wrong with a line whose value of `field` does not read as its type, said without
/// the value.
fn value_problem(source: &Source, field: &Field) -> String {
    let name = field.name();
    match source.contract.get(name) {
        Some(declared) => {
            format!("column {name}: the contract says {declared}, the line holds something else")
        }
        None => format!(
            "column {name}, not in the contract, was read as {} from the file's first lines, and the line holds something else; declare it under `columns:` with the type it holds",
            column_type(field.data_type())
                .map_or_else(|| field.data_type().to_string(), |kind| kind.to_string())
        ),
    }
}

/// A difference from the contract at `line` of `file`.
pub(super) fn at_line(
    url: &ListingTableUrl,
    file: &ObjectMeta,
    line: u64,
    problem: &str,
) -> String {
    format!(
        "file {}, line {line}: {problem}",
        shown(url, &file.location)
    )
}

/// The columns of a registered source's `table` that its files hold: all but the partitions'.
fn file_columns(table: &Arc<dyn datafusion::catalog::TableProvider>, source: &Source) -> Schema {
    let partitions = &source.partitions;
    let fields = (table.schema().fields().iter())
        .filter(|f| !partitions.iter().any(|(name, _)| name == f.name()))
        .cloned()
        .collect::<Vec<_>>();
    Schema::new(fields)
}

/// Which record broke (counted from 1, the header included), and what is wrong with it: a
/// value of `column` in record `at`, or a line arrow's message names (arrow counts a line's
/// records from 1).
fn describe(
    schema: &Schema,
    source: &Source,
    message: &str,
    at: Option<(usize, u64)>,
) -> Option<(u64, String)> {
    let line_fault = ["incorrect number of fields", "invalid UTF-8"];
    if let Some((column, record)) = at.filter(|_| !line_fault.iter().any(|m| message.contains(m))) {
        let field = schema.fields().get(column)?;
        return Some((record, value_problem(source, field)));
    }
    let record = number_after(message, "for line ")? as u64;
    Some(if message.contains("invalid UTF-8") {
        (record, "text that is not UTF-8".to_string())
    } else {
        let fields = schema.fields().len();
        (
            record,
            format!("not the {fields} fields of the file's other lines"),
        )
    })
}

/// The line (as an editor counts them, from 1) where record `record` (counted from 1) of
/// `file` starts: records and lines differ where a blank line is skipped or a quoted value
/// spans lines. Read with the CSV parser arrow uses, configured as it is.
async fn record_line(
    source: &Source,
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
    record: u64,
) -> Option<u64> {
    use csv_core::ReadRecordResult;
    let mut reader = csv_core::ReaderBuilder::new()
        .delimiter(source.delimiter)
        .build();
    let mut chunks = chunks(store, file).await?;
    let (mut fields, mut ends) = (vec![0u8; 1 << 12], vec![0usize; 64]);
    let (mut written, mut ended) = (0, 0);
    // Line breaks read so far; records read; the line where the one being read starts.
    let (mut lines, mut records, mut start) = (Lines::default(), 0u64, None::<u64>);
    while let Some(chunk) = chunks.next().await {
        let (chunk, finished) = chunk.ok()?;
        let mut input: &[u8] = &chunk;
        loop {
            if start.is_none() {
                // Line breaks before a record are skipped: it starts at its first other byte.
                let blank = input
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                if blank < input.len() {
                    let mut ahead = lines;
                    ahead.feed(&input[..blank]);
                    start = Some(1 + ahead.breaks);
                }
            }
            let (result, read, wrote, ends_wrote) =
                reader.read_record(input, &mut fields[written..], &mut ends[ended..]);
            lines.feed(&input[..read]);
            input = &input[read..];
            (written, ended) = (written + wrote, ended + ends_wrote);
            match result {
                ReadRecordResult::InputEmpty => break,
                ReadRecordResult::OutputFull => fields.resize(fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    records += 1;
                    if records == record {
                        return start;
                    }
                    (written, ended, start) = (0, 0, None);
                }
                ReadRecordResult::End => return None,
            }
            if input.is_empty() && !finished {
                break;
            }
        }
    }
    None
}

/// Line breaks as an editor counts them — `\n`, `\r\n`, and a lone `\r` (the CSV parser ends a
/// record at each) — over the pieces of a file fed in order.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lines {
    pub(super) breaks: u64,
    after_cr: bool,
}

impl Lines {
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        for byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' => self.breaks += 1,
                b'\r' => {
                    self.breaks += 1;
                    self.after_cr = true;
                }
                _ => self.after_cr = false,
            }
        }
    }

    /// The line (counted from 1) where `bytes[at]` is.
    pub(super) fn line_at(bytes: &[u8], at: usize) -> u64 {
        let mut lines = Lines::default();
        lines.feed(&bytes[..at]);
        1 + lines.breaks
    }
}

/// The whole lines of a file a block at a time: each block ends with a line break, the last
/// with the file. A block that cannot be read ends the file.
struct LineBlocks<S> {
    chunks: S,
    /// Bytes after the last line break read so far.
    rest: Vec<u8>,
}

impl LineBlocks<()> {
    async fn of(
        store: &Arc<dyn ObjectStore>,
        file: &ObjectMeta,
    ) -> Option<
        LineBlocks<impl futures::Stream<Item = object_store::Result<(bytes::Bytes, bool)>> + Unpin>,
    > {
        Some(LineBlocks {
            chunks: chunks(store, file).await?,
            rest: Vec::new(),
        })
    }
}

impl<S> LineBlocks<S>
where
    S: futures::Stream<Item = object_store::Result<(bytes::Bytes, bool)>> + Unpin,
{
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            let (chunk, finished) = self.chunks.next().await?.ok()?;
            self.rest.extend_from_slice(&chunk);
            let end = match self.rest.iter().rposition(|b| *b == b'\n') {
                _ if finished => self.rest.len(),
                Some(at) => at + 1,
                None => continue,
            };
            return Some(self.rest.drain(..end).collect());
        }
    }
}

/// The bytes of `file` a chunk at a time, each with whether it is the last: an empty one after
/// the file's, which tells a parser the input has ended.
async fn chunks(
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
) -> Option<impl futures::Stream<Item = object_store::Result<(bytes::Bytes, bool)>> + Unpin> {
    let stream = store.get(&file.location).await.ok()?.into_stream();
    let end = futures::stream::iter([Ok((bytes::Bytes::new(), true))]);
    Some(stream.map_ok(|chunk| (chunk, false)).chain(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_as_an_editor_ends_them() {
        let text = b"a\nb\r\nc\rd\r\re";
        let at = |c: u8| text.iter().position(|b| *b == c).unwrap();
        let lines: Vec<u64> = (b'a'..=b'e').map(|c| Lines::line_at(text, at(c))).collect();
        assert_eq!(lines, [1, 2, 3, 4, 6]);
        // Fed in pieces split inside a `\r\n`, the same.
        let mut pieces = Lines::default();
        pieces.feed(&text[..4]);
        pieces.feed(&text[4..]);
        assert_eq!(pieces.breaks, 5);
    }

    #[test]
    fn faults_are_read_from_arrows_messages() {
        let value = "model p: Arrow error: Parser error: Error while parsing value '…' as type 'Int64' for column 1 at line 20229. Row data: '…'";
        let int = Some("Int64".to_string());
        assert_eq!(
            CsvFault::of(value),
            Some(CsvFault::Value {
                column: 1,
                kind: int
            })
        );
        let time = "Parser error: Error parsing column 2 at line 2499: Parser error: Invalid timestamp '…'";
        assert_eq!(
            CsvFault::of(time),
            Some(CsvFault::Value {
                column: 2,
                kind: None
            })
        );
        let fields = "Csv error: incorrect number of fields for line 3, expected 2 got 1";
        assert_eq!(CsvFault::of(fields), Some(CsvFault::Line));
        assert_eq!(CsvFault::of("Divide by zero error"), None);
    }
}
