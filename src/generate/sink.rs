//! Streaming writers for the generated files: three CSV files and one Parquet file per month.
//!
//! Nothing here holds more than one customer's rows plus one bounded buffer per open file, so
//! memory does not grow with the number of customers.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;

use super::GenerateError;
use super::calendar::Window;
use super::customer::{CustomerRecord, Event};

const CSV_BUFFER_BYTES: usize = 1 << 20;
/// Rows of one month gathered before they are handed to the Parquet writer.
const BATCH_ROWS: usize = 8_192;
/// Rows per Parquet row group: large enough to compress well, small enough that a dozen open
/// month files stay within tens of megabytes.
const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per Parquet file before a month continues in the next part (64 row groups).
pub(super) const ROWS_PER_FILE: usize = 64 * ROW_GROUP_ROWS;

pub(super) fn create_dir(path: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(path).map_err(|source| GenerateError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

fn create_file(path: &Path) -> Result<BufWriter<File>, GenerateError> {
    let file = File::create(path).map_err(|source| GenerateError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(BufWriter::with_capacity(CSV_BUFFER_BYTES, file))
}

/// The three CRM extracts.
pub(super) struct CrmWriter {
    customers: CsvFile,
    address_changes: CsvFile,
    holdings: CsvFile,
    row: String,
}

struct CsvFile {
    path: PathBuf,
    out: BufWriter<File>,
}

impl CsvFile {
    fn create(path: PathBuf, header: &str) -> Result<CsvFile, GenerateError> {
        let mut file = CsvFile {
            out: create_file(&path)?,
            path,
        };
        file.write(header)?;
        Ok(file)
    }

    fn write(&mut self, row: &str) -> Result<(), GenerateError> {
        self.out
            .write_all(row.as_bytes())
            .map_err(|source| GenerateError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn finish(mut self) -> Result<PathBuf, GenerateError> {
        match self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().sync_all())
        {
            Ok(()) => Ok(self.path),
            Err(source) => Err(GenerateError::Write {
                path: self.path,
                source,
            }),
        }
    }
}

impl CrmWriter {
    pub(super) fn create(crm_dir: &Path) -> Result<CrmWriter, GenerateError> {
        Ok(CrmWriter {
            customers: CsvFile::create(
                crm_dir.join("customers.csv"),
                "customer_id,first_name,last_name,email,phone,signup_date,country,region,\
                 preferred_channel,consent_email,consent_sms,consent_push,consent_mail\n",
            )?,
            address_changes: CsvFile::create(
                crm_dir.join("address_changes.csv"),
                "customer_id,address_id,moved_in_on,street,city,postcode,region,dwelling_type,\
                 fiber_available,satellite_line_of_sight\n",
            )?,
            holdings: CsvFile::create(
                crm_dir.join("holdings.csv"),
                "customer_id,product,started_on,ended_on\n",
            )?,
            row: String::with_capacity(512),
        })
    }

    pub(super) fn write(&mut self, w: &Window, c: &CustomerRecord) -> Result<(), GenerateError> {
        let row = &mut self.row;
        let id = c.customer_id;

        row.clear();
        let region = c.addresses.last().map_or("", |a| a.city.region);
        let _ = write!(row, "{id},");
        for field in [
            c.first_name,
            c.last_name,
            c.email.as_str(),
            c.phone.as_str(),
        ] {
            push_field(row, field);
            row.push(',');
        }
        let _ = write!(row, "{},{},", w.date(c.signup), c.country);
        push_field(row, region);
        let _ = writeln!(
            row,
            ",{},{},{},{},{}",
            c.preferred_channel, c.consent.email, c.consent.sms, c.consent.push, c.consent.mail
        );
        self.customers.write(row)?;

        row.clear();
        for a in &c.addresses {
            let _ = write!(row, "{id},{},{},", a.address_id, w.date(a.moved_in));
            for field in [
                a.street.as_str(),
                a.city.name,
                a.postcode.as_str(),
                a.city.region,
            ] {
                push_field(row, field);
                row.push(',');
            }
            let dwelling = if a.apartment { "apartment" } else { "house" };
            let _ = writeln!(
                row,
                "{dwelling},{},{}",
                a.fiber_available, a.satellite_line_of_sight
            );
        }
        self.address_changes.write(row)?;

        row.clear();
        for h in &c.holdings {
            let _ = write!(row, "{id},{},{},", h.product.as_str(), w.date(h.started));
            if let Some(ended) = h.ended {
                let _ = write!(row, "{}", w.date(ended));
            }
            row.push('\n');
        }
        self.holdings.write(row)
    }

    pub(super) fn finish(self) -> Result<Vec<PathBuf>, GenerateError> {
        Ok(vec![
            self.customers.finish()?,
            self.address_changes.finish()?,
            self.holdings.finish()?,
        ])
    }
}

/// Appends a CSV field, quoted only when it has to be.
fn push_field(row: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        row.push('"');
        row.push_str(&value.replace('"', "\"\""));
        row.push('"');
    } else {
        row.push_str(value);
    }
}

/// The interactions table's schema (without the `year`/`month` partition columns, which live in
/// the folder names only).
pub(super) fn interactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, true),
        Field::new("campaign_id", DataType::Utf8, true),
        Field::new("offer", DataType::Utf8, true),
        Field::new("product", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("outcome", DataType::Utf8, true),
        Field::new("address_id", DataType::Int64, true),
    ]))
}

/// One open Parquet file per month of the window, opened when its first row arrives. A month
/// with more rows than fit in one file ([`ROWS_PER_FILE`] by default) continues in `part-00001.parquet` and so on: the Parquet
/// writer keeps every row group's metadata until the file is closed, so capping the file size is
/// what keeps memory flat at any scale.
pub(super) struct EventWriter {
    out_dir: PathBuf,
    schema: SchemaRef,
    properties: WriterProperties,
    months: Vec<Option<MonthFile>>,
    /// Number of files started so far in each month.
    parts: Vec<u32>,
    /// Closed files with their month index and part number.
    closed: Vec<(usize, u32, PathBuf)>,
    rows_per_file: usize,
    batch_rows: usize,
}

struct MonthFile {
    path: PathBuf,
    part: u32,
    // The Parquet writer buffers its output itself.
    writer: ArrowWriter<File>,
    rows: RowBuffer,
    rows_in_file: usize,
}

impl EventWriter {
    pub(super) fn new(out_dir: PathBuf, w: &Window, rows_per_file: usize) -> EventWriter {
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        EventWriter {
            out_dir,
            schema: interactions_schema(),
            properties,
            months: w.partitions.iter().map(|_| None).collect(),
            parts: vec![0; w.partitions.len()],
            closed: Vec::new(),
            rows_per_file,
            batch_rows: BATCH_ROWS.min(rows_per_file),
        }
    }

    /// Relative path of one file of a month under the output folder.
    fn month_path(year: i32, month: u32, part: u32) -> PathBuf {
        Path::new("events")
            .join(format!("year={year}"))
            .join(format!("month={month}"))
            .join(format!("part-{part:05}.parquet"))
    }

    pub(super) fn write(&mut self, w: &Window, c: &CustomerRecord) -> Result<(), GenerateError> {
        for event in &c.events {
            let index = w.partition_of(event.at);
            if self.months[index].is_none() {
                let opened = self.open(w, index)?;
                self.months[index] = Some(opened);
            }
            let month = self.months[index].as_mut().expect("opened above");
            month.rows.push(w, c.customer_id, event);
            if month.rows.len < self.batch_rows {
                continue;
            }
            month.flush(&self.schema)?;
            if month.rows_in_file >= self.rows_per_file {
                let full = self.months[index].take().expect("open");
                let part = full.part;
                self.closed.push((index, part, full.close(&self.schema)?));
            }
        }
        Ok(())
    }

    fn open(&mut self, w: &Window, index: usize) -> Result<MonthFile, GenerateError> {
        let (year, month) = w.partitions[index];
        let part = self.parts[index];
        self.parts[index] += 1;
        let path = self.out_dir.join(Self::month_path(year, month, part));
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        let file = File::create(&path).map_err(|source| GenerateError::Write {
            path: path.clone(),
            source,
        })?;
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(self.properties.clone()))
            .map_err(|source| GenerateError::Parquet {
                path: path.clone(),
                source,
            })?;
        Ok(MonthFile {
            path,
            part,
            writer,
            rows: RowBuffer::default(),
            rows_in_file: 0,
        })
    }

    /// Flushes and closes every month file; returns the paths of all files in calendar order.
    pub(super) fn finish(mut self) -> Result<Vec<PathBuf>, GenerateError> {
        for (index, month) in std::mem::take(&mut self.months).into_iter().enumerate() {
            if let Some(month) = month {
                let part = month.part;
                self.closed.push((index, part, month.close(&self.schema)?));
            }
        }
        self.closed.sort_by_key(|&(index, part, _)| (index, part));
        Ok(self.closed.into_iter().map(|(_, _, path)| path).collect())
    }
}

impl MonthFile {
    fn parquet_error(&self, source: ParquetError) -> GenerateError {
        GenerateError::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    fn flush(&mut self, schema: &SchemaRef) -> Result<(), GenerateError> {
        let rows = self.rows.len;
        let batch = self
            .rows
            .finish(schema)
            .map_err(|e| self.parquet_error(e.into()))?;
        self.writer
            .write(&batch)
            .map_err(|e| self.parquet_error(e))?;
        self.rows_in_file += rows;
        Ok(())
    }

    fn close(mut self, schema: &SchemaRef) -> Result<PathBuf, GenerateError> {
        if self.rows.len > 0 {
            self.flush(schema)?;
        }
        let file = match self.writer.into_inner() {
            Ok(file) => file,
            Err(source) => {
                return Err(GenerateError::Parquet {
                    path: self.path,
                    source,
                });
            }
        };
        match file.sync_all() {
            Ok(()) => Ok(self.path),
            Err(source) => Err(GenerateError::Write {
                path: self.path,
                source,
            }),
        }
    }
}

#[derive(Default)]
struct RowBuffer {
    len: usize,
    customer_id: Int64Builder,
    event_time: TimestampMicrosecondBuilder,
    event_type: StringBuilder,
    channel: StringBuilder,
    campaign_id: StringBuilder,
    offer: StringBuilder,
    product: StringBuilder,
    amount: Float64Builder,
    outcome: StringBuilder,
    address_id: Int64Builder,
}

impl RowBuffer {
    fn push(&mut self, w: &Window, customer_id: i64, e: &Event) {
        self.customer_id.append_value(customer_id);
        self.event_time.append_value(w.micros(e.at));
        self.event_type.append_value(e.kind.as_str());
        self.channel.append_option(e.channel);
        self.campaign_id
            .append_option(e.campaign.map(|c| w.campaigns[c as usize].id.as_str()));
        self.offer.append_option(e.offer.map(|o| o.as_str()));
        self.product.append_option(e.product);
        self.amount.append_option(e.amount);
        self.outcome.append_option(e.outcome);
        self.address_id.append_option(e.address_id);
        self.len += 1;
    }

    fn finish(
        &mut self,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        self.len = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.customer_id.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.campaign_id.finish()),
            Arc::new(self.offer.finish()),
            Arc::new(self.product.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.outcome.finish()),
            Arc::new(self.address_id.finish()),
        ];
        RecordBatch::try_new(schema.clone(), columns)
    }
}
