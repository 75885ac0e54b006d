//! Streams record batches into zstd Parquet files through `object_store`, counting rows as they
//! pass; a table is never held in memory.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{BatchCoalescer, CastOptions, cast, cast_with_options, partition};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::file_options::parquet_writer::parse_compression_string;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::encode::ParallelWriter;
use crate::objects::Folder;

/// Rows this process has written to Parquet, for the progress display.
static ROWS_WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows this process has written to Parquet so far.
pub(crate) fn rows_written() -> u64 {
    ROWS_WRITTEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Files roll over after this many rows, so no single file grows without bound.
const ROWS_PER_FILE: u64 = 5_000_000;

/// Encoded bytes a file's writer holds before it hands them to storage in parts.
const WRITE_BUFFER_BYTES: usize = 10 * 1024 * 1024;

/// Rows per row group: what a reader skips or reads at once, and what a writer holds encoded in
/// memory before it goes to the file.
const ROWS_PER_GROUP: usize = 128 * 1024;

/// One Parquet file of a run, as the manifest lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WrittenFile {
    /// Relative to the run folder, e.g. `audiences/segment=x/part-00000.parquet`.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// How a table's files are laid out beyond its rows: its sort order, its required columns, and
/// the constant columns every row carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableLayout {
    pub(crate) sorted_by: Vec<SortingColumn>,
    /// Columns declared required (not nullable): keys.
    pub(crate) not_null: Vec<String>,
    /// Columns with one value for the whole table, written into every file (`run_date`,
    /// `segment`) so that no reader depends on folder names to see them.
    pub(crate) stamps: Vec<(String, ScalarValue)>,
    /// Who reads the files back, which decides how they are encoded.
    pub(crate) read_by: ReadBy,
}

/// Who reads a table's files back, which decides how they are encoded (see
/// [`ReadBy::encoding`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ReadBy {
    /// Any reader, with filters: a published table, or state a query joins (a feature's totals)
    /// (zstd, min/max statistics).
    #[default]
    Anyone,
    /// Later runs, whole: a feature's per-day partials, read back a day's folder at a time
    /// (zstd, kept for as long as the longest window; no statistics).
    LaterRuns,
    /// This run, whole, before it deletes them: scratch tables (LZ4, no statistics).
    ThisRun,
}

impl ReadBy {
    /// How the files are encoded, as DataFusion's Parquet options name it: (codec, statistics).
    /// The one place that decides, for this process's writer and for what the executors of a
    /// cluster write (`engine::scratch_parquet`).
    ///
    /// LZ4 for scratch tables: a fraction of zstd's time to encode and decode. zstd for what is
    /// published or kept as state, smaller for readers and storage, at level 1: level 3 took
    /// longer and saved nothing on these tables. A year of partials at 1M customers:
    /// `customer_features` 46.0 → 41.5 s and 41.8 → 37.4 s in two pairs of runs, 618 → 672 MB
    /// (LZ4 took 38.7 and 34.1 s for 1,092 MB); a daily run's published tables at 1M
    /// customers: 28.4, 29.2 and 29.3 s → 27.4, 26.6 and 26.9 s in three pairs of runs, 202.4 →
    /// 201.4 MB.
    ///
    /// Published tables carry min/max statistics for readers to skip row groups and pages by.
    /// Scratch tables and a feature's per-day partials are read back whole, by this run's
    /// queries or by later runs a day's folder at a time, which prune nothing on them: the
    /// writer would compare every value of every column for nothing (strings byte by byte). Row
    /// counts and sizes, which plan the joins, are in the footer either way. Scratch: daily runs
    /// at 1M customers, three pairs side by side, the steps after the profile 16.5, 17.4, 16.1 s
    /// → 15.8, 15.6, 15.5 s, the same bytes published. Per-day partials: first runs at 1M
    /// customers, three pairs, the features' per-day state 15.5, 15.7, 14.2 s → 12.8, 14.5,
    /// 13.6 s, the same sums per key and day.
    pub(crate) fn encoding(self) -> (&'static str, &'static str) {
        match self {
            ReadBy::Anyone => ("zstd(1)", "page"),
            ReadBy::LaterRuns => ("zstd(1)", "none"),
            ReadBy::ThisRun => ("lz4_raw", "none"),
        }
    }
}

impl TableLayout {
    /// A table segflow publishes: `key` (if any) required, `run_date` in every row.
    pub(crate) fn published(key: Option<&str>, run_date: chrono::NaiveDate) -> Self {
        let days = crate::sql::days_since_epoch(run_date);
        Self {
            sorted_by: Vec::new(),
            not_null: key.map(str::to_string).into_iter().collect(),
            stamps: vec![("run_date".into(), ScalarValue::Date32(Some(days)))],
            read_by: ReadBy::Anyone,
        }
    }

    /// A table the run writes for itself and deletes with its staging folder.
    pub(crate) fn scratch() -> Self {
        Self {
            read_by: ReadBy::ThisRun,
            ..Self::default()
        }
    }

    /// A feature's per-day partials, kept as state for later runs.
    pub(crate) fn state_days() -> Self {
        Self {
            read_by: ReadBy::LaterRuns,
            ..Self::default()
        }
    }

    /// Adds a constant column (e.g. the segment an audience is of).
    pub(crate) fn with(mut self, name: &str, value: &str) -> Self {
        self.stamps
            .push((name.to_string(), ScalarValue::Utf8(Some(value.to_string()))));
        self
    }
}

/// Types every Parquet reader understands: view and dictionary arrays become plain ones,
/// unsigned integers signed ones (Spark reads UInt64 as decimal(20,0), and `rank - 3` wraps
/// around in Polars), and times in seconds and dates in milliseconds, which Parquet has no
/// type for (they would be written as bare integers that DuckDB, pyarrow and Spark read as
/// numbers), microseconds and days.
pub(crate) fn portable(data_type: &DataType) -> DataType {
    match data_type {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Timestamp(TimeUnit::Second, zone) => {
            DataType::Timestamp(TimeUnit::Microsecond, zone.clone())
        }
        DataType::Date64 => DataType::Date32,
        DataType::Time32(TimeUnit::Second) => DataType::Time32(TimeUnit::Millisecond),
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, value) => portable(value),
        DataType::List(field) | DataType::ListView(field) | DataType::LargeList(field) => {
            DataType::List(Arc::new(Field::new(
                field.name(),
                portable(field.data_type()),
                field.is_nullable(),
            )))
        }
        other => other.clone(),
    }
}

fn portable_schema(schema: &Schema, layout: &TableLayout) -> SchemaRef {
    let columns = schema.fields().iter().map(|f| {
        let nullable = f.is_nullable() && !layout.not_null.contains(f.name());
        Field::new(f.name(), portable(f.data_type()), nullable)
    });
    let stamps = layout
        .stamps
        .iter()
        .filter(|(name, _)| schema.field_with_name(name).is_err())
        .map(|(name, value)| Field::new(name, value.data_type(), false));
    Arc::new(Schema::new(columns.chain(stamps).collect::<Vec<_>>()))
}

/// Whether the Parquet encoder takes a column of this type as it is for a column of the
/// file's plain type (`portable`): strings and binaries in any Arrow layout, except
/// dictionaries of views. Such columns are handed over without a cast, which would copy every
/// value once more on the writer's own thread, the one that also pulls the query's sorted
/// merge. The bytes written are the same.
fn encoded_as_is(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::BinaryView | DataType::LargeBinary => {
            true
        }
        DataType::Dictionary(_, value) => matches!(
            value.as_ref(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
        ),
        _ => false,
    }
}

/// The columns of the batches handed to the encoder: the file's (`file`: `input`'s columns,
/// then the constant ones), except those of `input` the encoder takes as they are (see
/// [`encoded_as_is`]).
fn wire_schema(input: &Schema, file: &Schema) -> SchemaRef {
    let given = (input.fields().iter().map(|f| Some(f.data_type()))).chain(std::iter::repeat(None));
    let columns = file
        .fields()
        .iter()
        .zip(given)
        .map(|(f, given)| match given {
            Some(data_type) if encoded_as_is(data_type) => {
                f.as_ref().clone().with_data_type(data_type.clone())
            }
            _ => f.as_ref().clone(),
        });
    Arc::new(Schema::new(columns.collect::<Vec<_>>()))
}

pub fn describe_schema(schema: &Schema) -> Vec<ColumnSchema> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnSchema {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect()
}

/// Writes Parquet files `part-00000.parquet`, `part-00001.parquet`, … into one folder, or one
/// file when the target ends in `.parquet`; on a local disk or an object store alike.
pub struct ParquetWriter {
    dir: Folder,
    single_file: Option<String>,
    run_root: Folder,
    /// The file's columns.
    schema: SchemaRef,
    /// The columns of the batches the encoder is handed (see [`wire_schema`]).
    wire: SchemaRef,
    sorted_by: Vec<SortingColumn>,
    /// Key columns, written without a dictionary (see [`Self::open`]).
    keys: Vec<String>,
    /// Who reads the files back.
    read_by: ReadBy,
    /// Constant columns appended to every batch.
    stamps: Vec<ScalarValue>,
    current: Option<(ParallelWriter, Folder, u64)>,
    files: Vec<WrittenFile>,
    /// How much of the file being written is held in memory.
    footprint: Footprint,
}

/// How much of a file being written its writer holds in memory.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    /// Rows per row group: encoded in memory until the group closes.
    rows_per_group: usize,
    /// Rows per data page: a column's page is held unencoded until it closes.
    rows_per_page: usize,
    /// Encoded bytes held before they go to storage (in parts beyond that).
    buffer_bytes: usize,
    /// Whether columns are dictionary-encoded (Parquet's default).
    dictionaries: bool,
}

impl Footprint {
    /// One table written at a time.
    const ONE: Self = Self {
        rows_per_group: ROWS_PER_GROUP,
        rows_per_page: datafusion::parquet::file::properties::DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT,
        buffer_bytes: WRITE_BUFFER_BYTES,
        dictionaries: true,
    };

    /// One of a month of tables written at once (a stream split by day): smaller row groups
    /// and pages, and on an object store parts of the smallest size S3 takes (5 MiB); a local
    /// disk takes parts of any size. A first run at 1M customers under 1 GiB peaked at
    /// 1,072 MiB writing one day at a time from a sorted stream, at 1,202 MiB with a month of
    /// open writers of [`Self::ONE`], and at 1,123 MiB with these. Without dictionaries: a
    /// day's keys are nearly all distinct and its partials' values few and small, so building a
    /// dictionary for every row group costs CPU and saves nothing zstd does not (a year of
    /// partials at 1M customers: 618 MB instead of 862 MB, `customer_features` 45.0 → 43.4 s).
    fn many(target: &Folder) -> Self {
        Self {
            rows_per_group: 32 * 1024,
            rows_per_page: 4096,
            buffer_bytes: match target.local_path() {
                Some(_) => 256 * 1024,
                None => 5 * 1024 * 1024,
            },
            dictionaries: false,
        }
    }
}

impl ParquetWriter {
    /// `target` is where the files go; paths in the manifest are relative to `run_root`.
    pub(crate) fn new(
        target: &Folder,
        run_root: &Folder,
        schema: &Schema,
        layout: &TableLayout,
    ) -> Self {
        let name = target.path().filename().unwrap_or_default().to_string();
        let file = portable_schema(schema, layout);
        let (dir, single_file) = if name.ends_with(".parquet") {
            (target.parent(), Some(name))
        } else {
            (target.clone(), None)
        };
        Self {
            dir,
            single_file,
            run_root: run_root.clone(),
            schema: file.clone(),
            wire: wire_schema(schema, &file),
            sorted_by: layout.sorted_by.clone(),
            keys: layout.not_null.clone(),
            read_by: layout.read_by,
            stamps: layout
                .stamps
                .iter()
                .filter(|(name, _)| schema.field_with_name(name).is_err())
                .map(|(_, value)| value.clone())
                .collect(),
            current: None,
            files: Vec::new(),
            footprint: Footprint::ONE,
        }
    }

    fn compression(&self) -> Compression {
        let (codec, _) = self.read_by.encoding();
        parse_compression_string(codec).expect("a codec Parquet knows")
    }

    fn statistics(&self) -> EnabledStatistics {
        let (_, statistics) = self.read_by.encoding();
        statistics
            .parse()
            .expect("a statistics level Parquet knows")
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Keys are written without a dictionary: a key is nearly distinct within a row group, so
    /// a dictionary of them saves nothing and costs a lookup per row, and in key order their
    /// plain values compress far better than a dictionary's indices. At 1M customers (a first
    /// run, every other column as before): `suppressed/` 15.9 → 10.7 MB, `decisions/` 8.6 →
    /// 5.0 MB, `offers/` 4.8 → 3.2 MB, the changes 5.1 → 2.3 MB, the audiences 51.3 → 50.0 MB
    /// (mostly hashed identifiers), everything published 206.1 → 192.1 MB (the profile, one row
    /// per key, 120.4 → 120.9 MB).
    fn open(&mut self) -> Result<(), StoreError> {
        let name = match &self.single_file {
            Some(name) => name.clone(),
            None => format!("part-{:05}.parquet", self.files.len()),
        };
        let file = self.dir.join(&name);
        if let Some(local) = self.dir.local_path() {
            std::fs::create_dir_all(local).map_err(StoreError::io(local, "creating folder"))?;
        }
        let props = self
            .keys
            .iter()
            .fold(
                WriterProperties::builder()
                    .set_compression(self.compression())
                    .set_sorting_columns(
                        (!self.sorted_by.is_empty()).then(|| self.sorted_by.clone()),
                    )
                    .set_data_page_row_count_limit(self.footprint.rows_per_page)
                    .set_dictionary_enabled(self.footprint.dictionaries)
                    .set_statistics_enabled(self.statistics()),
                |props, key| {
                    props.set_column_dictionary_enabled(ColumnPath::from(key.as_str()), false)
                },
            )
            .build();
        let writer = ParallelWriter::try_new(
            BufWriter::with_capacity(
                file.store().clone(),
                file.path().clone(),
                self.footprint.buffer_bytes,
            ),
            self.schema.clone(),
            props,
            self.footprint.rows_per_group,
        )
        .map_err(|e| parquet_error(&file, e))?;
        self.current = Some((writer, file, 0));
        Ok(())
    }

    /// The batch with the column types the encoder is handed (the file's portable types, or
    /// what it takes as is) and the constant columns.
    pub fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, StoreError> {
        let failed = |e: datafusion::arrow::error::ArrowError| parquet_error(&self.dir, e);
        let mut columns = batch
            .columns()
            .iter()
            .zip(self.wire.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    return Ok(column.clone());
                }
                // A value the file's type cannot hold (an unsigned integer above the signed
                // maximum) fails the write instead of being written as NULL; the error names
                // the column, never the value.
                let exact = CastOptions {
                    safe: false,
                    ..CastOptions::default()
                };
                cast_with_options(column, field.data_type(), &exact).map_err(|_| {
                    parquet_error(
                        &self.dir,
                        format!(
                            "column {} holds a value too large for {} (an unsigned integer above 9223372036854775807); cast it in the SQL, to DECIMAL(20, 0) or to text",
                            field.name(),
                            field.data_type()
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for stamp in &self.stamps {
            let constant = stamp
                .to_array_of_size(batch.num_rows())
                .map_err(|e| parquet_error(&self.dir, e))?;
            columns.push(constant);
        }
        RecordBatch::try_new(self.wire.clone(), columns).map_err(failed)
    }

    /// Writes a batch already [`Self::conform`]ed.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.single_file.is_none()
            && self
                .current
                .as_ref()
                .is_some_and(|(_, _, rows)| *rows >= ROWS_PER_FILE)
        {
            self.close_current().await?;
        }
        if self.current.is_none() {
            self.open()?;
        }
        let (writer, file, rows) = self.current.as_mut().expect("opened above");
        writer
            .write(batch)
            .await
            .map_err(|e| parquet_error(file, e))?;
        *rows += batch.num_rows() as u64;
        ROWS_WRITTEN.fetch_add(
            batch.num_rows() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        Ok(())
    }

    async fn close_current(&mut self) -> Result<(), StoreError> {
        if let Some((writer, file, rows)) = self.current.take() {
            writer.close().await.map_err(|e| parquet_error(&file, e))?;
            let bytes = file
                .store()
                .head(file.path())
                .await
                .map_err(|e| parquet_error(&file, e))?
                .size;
            self.files.push(WrittenFile {
                path: self.run_root.relative(file.path()),
                rows,
                bytes,
            });
        }
        Ok(())
    }

    /// Closes the last file; an empty output still gets one file carrying the schema.
    pub async fn finish(mut self) -> Result<Vec<WrittenFile>, StoreError> {
        if self.current.is_none() && self.files.is_empty() {
            self.open()?;
        }
        self.close_current().await?;
        Ok(self.files)
    }
}

fn parquet_error(file: &Folder, err: impl std::fmt::Display) -> StoreError {
    StoreError::Parquet {
        path: file.to_string(),
        message: err.to_string(),
    }
}

/// Rows per batch handed to the Parquet writer. Page and row-group boundaries follow batch
/// boundaries, so re-chunking to a fixed size makes the same rows give the same bytes however
/// DataFusion happened to split them.
const WRITE_BATCH_ROWS: usize = 8192;

/// Streams a table into one folder per value of its `Date32` column `column` below `dir`
/// (`<column>=YYYY-MM-DD/part-00000.parquet`), its rows in any order; returns the days written,
/// in order. Every day seen keeps its writer open until the stream ends, so a query need not
/// sort its result by day (a month of per-day partials at 10M customers spilled 13–17 GB
/// sorting). Each open writer holds little ([`Footprint::many`]); a caller bounds how many
/// days one stream holds. The files are a feature's per-day partials, kept as state
/// ([`TableLayout::state_days`]).
pub async fn write_stream_by_day(
    mut stream: SendableRecordBatchStream,
    column: &str,
    dir: &Folder,
    run_root: &Folder,
) -> Result<Vec<chrono::NaiveDate>, StoreError> {
    use datafusion::arrow::compute::{sort_to_indices, take_record_batch};
    use datafusion::arrow::datatypes::Date32Type;
    let schema = stream.schema();
    let failed = |e: datafusion::arrow::error::ArrowError| parquet_error(dir, e);
    let index = schema.index_of(column).map_err(failed)?;
    let layout = TableLayout::state_days();
    let mut days: std::collections::BTreeMap<i32, TableWriter> = Default::default();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(StoreError::Query)?;
        // The batch's rows grouped by day: a stable sort of a few thousand row numbers.
        let order = sort_to_indices(batch.column(index), None, None).map_err(failed)?;
        let batch = take_record_batch(&batch, &order).map_err(failed)?;
        let runs = partition(&[Arc::clone(batch.column(index))]).map_err(failed)?;
        let values = batch.column(index).as_primitive::<Date32Type>();
        for run in runs.ranges() {
            if values.is_null(run.start) {
                return Err(parquet_error(dir, format!("a row has no {column}")));
            }
            let day = values.value(run.start);
            let table = days.entry(day).or_insert_with(|| {
                let folder = dir.join(&format!("{column}={}", day_name(day)));
                let small = Footprint::many(&folder);
                TableWriter::new(&folder, run_root, &schema, &layout).footprint(small)
            });
            table
                .push(&batch.slice(run.start, run.end - run.start))
                .await?;
        }
    }
    let mut written = Vec::with_capacity(days.len());
    for (day, table) in days {
        table.finish().await?;
        written.push(date_of(day));
    }
    Ok(written)
}

fn date_of(days: i32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
        + chrono::TimeDelta::days(i64::from(days))
}

fn day_name(days: i32) -> String {
    date_of(days).to_string()
}

/// Streams every batch of `stream` into Parquet files in `dir`.
pub async fn write_stream(
    mut stream: SendableRecordBatchStream,
    dir: &Folder,
    run_root: &Folder,
    layout: &TableLayout,
) -> Result<(Vec<WrittenFile>, Vec<ColumnSchema>), StoreError> {
    let mut table = TableWriter::new(dir, run_root, &stream.schema(), layout);
    while let Some(batch) = stream.next().await {
        table.push(&batch.map_err(StoreError::Query)?).await?;
    }
    table.finish().await
}

/// One table of a stream split by a column's value: the value, where its files go, and how
/// they are laid out.
pub(crate) struct Part {
    pub(crate) value: String,
    pub(crate) target: Folder,
    pub(crate) layout: TableLayout,
}

/// Streams a table sorted by the text column `column` into one table per value (`parts`), each
/// written as [`write_stream`] writes a table, without that column (a part's layout usually
/// stamps it back as a constant). One query then feeds many tables — every segment's audience —
/// instead of one query per table. Every part gets its files, an empty table included; returns
/// them in the order of `parts`.
pub(crate) async fn write_stream_split(
    mut stream: SendableRecordBatchStream,
    column: &str,
    parts: &[Part],
    run_root: &Folder,
) -> Result<Vec<(Vec<WrittenFile>, Vec<ColumnSchema>)>, StoreError> {
    let schema = stream.schema();
    let failed = |e: datafusion::arrow::error::ArrowError| parquet_error(run_root, e);
    let index = schema.index_of(column).map_err(failed)?;
    let kept: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != index).collect();
    let table_schema = schema.project(&kept).map_err(failed)?;
    let mut written: Vec<Option<(Vec<WrittenFile>, Vec<ColumnSchema>)>> =
        parts.iter().map(|_| None).collect();
    let mut current: Option<(usize, TableWriter)> = None;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(StoreError::Query)?;
        let values = cast(batch.column(index), &DataType::Utf8).map_err(failed)?;
        let values = values.as_string::<i32>();
        let runs = partition(&[Arc::clone(batch.column(index))]).map_err(failed)?;
        let rows = batch.project(&kept).map_err(failed)?;
        for run in runs.ranges() {
            let value = values.value(run.start);
            if current
                .as_ref()
                .is_none_or(|(part, _)| parts[*part].value != value)
            {
                if let Some((part, table)) = current.take() {
                    written[part] = Some(table.finish().await?);
                }
                let part = parts
                    .iter()
                    .position(|p| p.value == value)
                    .filter(|part| written[*part].is_none())
                    .ok_or_else(|| {
                        parquet_error(
                            run_root,
                            format!("rows are not sorted by {column}, or a {column} has no table"),
                        )
                    })?;
                let p = &parts[part];
                current = Some((
                    part,
                    TableWriter::new(&p.target, run_root, &table_schema, &p.layout),
                ));
            }
            let (_, table) = current.as_mut().expect("opened above");
            table
                .push(&rows.slice(run.start, run.end - run.start))
                .await?;
        }
    }
    if let Some((part, table)) = current.take() {
        written[part] = Some(table.finish().await?);
    }
    let mut tables = Vec::with_capacity(parts.len());
    for (part, done) in parts.iter().zip(written) {
        tables.push(match done {
            Some(done) => done,
            None => {
                TableWriter::new(&part.target, run_root, &table_schema, &part.layout)
                    .finish()
                    .await?
            }
        });
    }
    Ok(tables)
}

/// One table being written: batches conformed to the table's types and constant columns, and
/// re-chunked to [`WRITE_BATCH_ROWS`] rows.
struct TableWriter {
    writer: ParquetWriter,
    chunks: BatchCoalescer,
}

impl TableWriter {
    fn new(dir: &Folder, run_root: &Folder, schema: &Schema, layout: &TableLayout) -> Self {
        let writer = ParquetWriter::new(dir, run_root, schema, layout);
        let chunks = BatchCoalescer::new(writer.wire.clone(), WRITE_BATCH_ROWS);
        Self { writer, chunks }
    }

    fn footprint(mut self, footprint: Footprint) -> Self {
        self.writer.footprint = footprint;
        self
    }

    async fn push(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        let conformed = self.writer.conform(batch)?;
        self.chunks
            .push_batch(conformed)
            .map_err(|e| parquet_error(&self.writer.dir, e))?;
        while let Some(chunk) = self.chunks.next_completed_batch() {
            self.writer.write(&chunk).await?;
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<(Vec<WrittenFile>, Vec<ColumnSchema>), StoreError> {
        self.chunks
            .finish_buffered_batch()
            .map_err(|e| parquet_error(&self.writer.dir, e))?;
        while let Some(chunk) = self.chunks.next_completed_batch() {
            self.writer.write(&chunk).await?;
        }
        let schema = describe_schema(self.writer.schema());
        Ok((self.writer.finish().await?, schema))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Date32Array, Int64Array};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    use super::*;

    #[tokio::test]
    async fn keys_are_written_without_a_dictionary() {
        use datafusion::arrow::array::StringArray;
        use datafusion::parquet::basic::Encoding;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, true),
            Field::new("offer", DataType::Utf8, true),
        ]));
        let keys = Int64Array::from_iter_values((0..10_000).map(|i| i / 3));
        let offers = StringArray::from_iter_values((0..10_000).map(|i| ["a", "b", "c"][i % 3]));
        let columns: Vec<Arc<dyn Array>> = vec![Arc::new(keys), Arc::new(offers)];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter([Ok(batch)]),
        ));
        let tmp = tempfile::tempdir().unwrap();
        let root = Folder::local(tmp.path());
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let layout = TableLayout::published(Some("customer_id"), date);
        let (files, _) = write_stream(stream, &root.join("t"), &root, &layout)
            .await
            .unwrap();
        let file = std::fs::File::open(tmp.path().join(&files[0].path)).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        let dictionary = |i: usize| {
            group
                .column(i)
                .encodings()
                .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
        };
        assert!(!dictionary(0), "the key, plain");
        assert!(dictionary(1), "other columns keep their dictionary");
        assert!(dictionary(2), "and so does the run date");
    }

    /// What is published keeps zstd and min/max statistics; what only segflow reads back whole
    /// has no statistics, the state zstd and scratch tables LZ4.
    #[tokio::test]
    async fn tables_are_encoded_for_who_reads_them_back() {
        use datafusion::parquet::basic::Compression as Codec;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let days = Date32Array::from_iter_values((0..1000).map(|i| 20_000 + i % 2));
        let n = Int64Array::from_iter_values(0..1000);
        let columns: Vec<Arc<dyn Array>> = vec![Arc::new(days), Arc::new(n)];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let stream = || {
            Box::pin(RecordBatchStreamAdapter::new(
                schema.clone(),
                futures::stream::iter([Ok(batch.clone())]),
            ))
        };
        let tmp = tempfile::tempdir().unwrap();
        let root = Folder::local(tmp.path());
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        // Each table's file with the codec and statistics expected of it.
        let mut files = Vec::new();
        for (name, layout, expected) in [
            (
                "published",
                TableLayout::published(None, date),
                ("zstd", true),
            ),
            ("scratch", TableLayout::scratch(), ("lz4", false)),
        ] {
            let (written, _) = write_stream(stream(), &root.join(name), &root, &layout)
                .await
                .unwrap();
            files.push((name, written[0].path.clone(), expected));
        }
        let days = write_stream_by_day(stream(), "day", &root.join("days"), &root)
            .await
            .unwrap();
        let day = format!("days/day={}/part-00000.parquet", days[0]);
        files.push(("state", day, ("zstd", false)));
        for (name, path, expected) in files {
            let file = std::fs::File::open(tmp.path().join(&path)).unwrap();
            let reader = SerializedFileReader::new(file).unwrap();
            let column = reader.metadata().row_group(0).column(1).clone();
            let codec = match column.compression() {
                Codec::ZSTD(_) => "zstd",
                Codec::LZ4_RAW => "lz4",
                _ => "another",
            };
            assert_eq!((codec, column.statistics().is_some()), expected, "{name}");
        }
    }

    /// Strings handed to the encoder as views or dictionaries, uncast, give the bytes the same
    /// strings give as plain arrays, whatever the batches: the file's column is a plain string.
    #[tokio::test]
    async fn strings_in_any_arrow_layout_give_the_same_bytes() {
        use datafusion::arrow::array::{DictionaryArray, StringArray, StringViewArray};
        use datafusion::arrow::datatypes::Int32Type;
        let values: Vec<Option<String>> = (0..30_000)
            .map(|i| (i % 11 != 0).then(|| format!("offer {} via channel {}", i % 7, i % 3)))
            .collect();
        let plain: Arc<dyn Array> = Arc::new(StringArray::from(values.clone()));
        let view: Arc<dyn Array> = Arc::new(StringViewArray::from(values.clone()));
        let dictionary: Arc<dyn Array> = Arc::new(
            values
                .iter()
                .map(|v| v.as_deref())
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let tmp = tempfile::tempdir().unwrap();
        let root = Folder::local(tmp.path());
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let mut written = Vec::new();
        for (name, column, batch_rows) in [
            ("plain", plain, 30_000),
            ("view", view, 4_000),
            ("dictionary", dictionary, 7_777),
        ] {
            let schema = Arc::new(Schema::new(vec![
                Field::new("customer_id", DataType::Int64, false),
                Field::new("held_back_from", column.data_type().clone(), true),
            ]));
            let keys = Arc::new(Int64Array::from_iter_values(0..30_000));
            let batch = RecordBatch::try_new(schema.clone(), vec![keys, column]).unwrap();
            let batches: Vec<_> = (0..30_000)
                .step_by(batch_rows)
                .map(|at| Ok(batch.slice(at, batch_rows.min(30_000 - at))))
                .collect();
            let stream = Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(batches),
            ));
            let layout = TableLayout::published(Some("customer_id"), date);
            let (files, columns) = write_stream(stream, &root.join(name), &root, &layout)
                .await
                .unwrap();
            assert_eq!(columns[1].data_type, "Utf8", "{name}");
            written.push(std::fs::read(tmp.path().join(&files[0].path)).unwrap());
        }
        assert!(written[0] == written[1], "views as plain strings");
        assert!(written[0] == written[2], "dictionaries as plain strings");
    }

    #[tokio::test]
    async fn rows_in_any_order_land_in_their_days_folders() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, false),
            Field::new("n", DataType::Int64, false),
        ]));
        // 3 days, their rows interleaved across batches and out of order within them.
        let batches: Vec<_> = (0..4i64)
            .map(|b| {
                let n: Vec<i64> = (0..1000).map(|i| b * 1000 + i).collect();
                let days: Vec<i32> = n.iter().map(|n| 20_000 + ((n * 7) % 3) as i32).collect();
                let columns: Vec<Arc<dyn Array>> = vec![
                    Arc::new(Date32Array::from(days)),
                    Arc::new(Int64Array::from(n)),
                ];
                Ok(RecordBatch::try_new(schema.clone(), columns).unwrap())
            })
            .collect();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(batches),
        ));
        let tmp = tempfile::tempdir().unwrap();
        let root = Folder::local(tmp.path());
        let dir = root.join("days");
        let days = write_stream_by_day(stream, "day", &dir, &root)
            .await
            .unwrap();
        assert_eq!(days, [date_of(20_000), date_of(20_001), date_of(20_002)]);

        let ctx = SessionContext::new();
        for day in 20_000..20_003 {
            let folder = tmp.path().join(format!("days/day={}", day_name(day)));
            let sql = "SELECT min(day) = max(day), count(*), sum(n) FROM t";
            ctx.register_parquet("t", folder.to_str().unwrap(), ParquetReadOptions::default())
                .await
                .unwrap();
            let got = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            ctx.deregister_table("t").unwrap();
            let row = &got[0];
            let expected: Vec<i64> = (0..4000)
                .filter(|n| 20_000 + (n * 7) % 3 == day as i64)
                .collect();
            assert!(row.column(0).as_boolean().value(0), "one day per folder");
            assert_eq!(
                row.column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0),
                expected.len() as i64
            );
            assert_eq!(
                row.column(2)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .value(0),
                expected.iter().sum::<i64>()
            );
        }
    }
}
