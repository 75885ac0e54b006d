//! Encodes one Parquet file with its columns in parallel. Encoding (dictionary building,
//! byte-array encoding, compression) is most of what writing a table costs, and a file's
//! columns do not depend on each other: each column of the row group being written has its own
//! task, fed the column's values batch by batch, so a wide table's columns use every core the
//! runtime has while the query producing them runs too. Row groups are closed in order and
//! appended to the file as the plain Arrow writer would; only the encoded row group is buffered,
//! as with that writer.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::writer::SerializedFileWriter;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches of one column waiting for its encoder: a little slack so that producing the next
/// batch and encoding the last overlap.
const QUEUED_BATCHES: usize = 2;

/// A Parquet file being written to `sink`, one row group of `rows_per_group` rows at a time.
pub(super) struct ParallelWriter {
    file: SerializedFileWriter<Vec<u8>>,
    columns: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    sink: BufWriter,
    rows_per_group: usize,
    group: Option<RowGroup>,
}

/// The row group being encoded: a queue into each column's encoder, and the rows sent so far.
struct RowGroup {
    encoders: Vec<Encoder>,
    rows: usize,
}

struct Encoder {
    queue: mpsc::Sender<ArrowLeafColumn>,
    done: JoinHandle<Result<ArrowColumnChunk, ParquetError>>,
}

impl Encoder {
    fn spawn(mut writer: ArrowColumnWriter) -> Self {
        let (queue, mut values) = mpsc::channel::<ArrowLeafColumn>(QUEUED_BATCHES);
        let done = tokio::spawn(async move {
            while let Some(leaf) = values.recv().await {
                writer.write(&leaf)?;
            }
            writer.close()
        });
        Self { queue, done }
    }

    /// The encoded column chunk, once every value was sent.
    async fn finish(self) -> Result<ArrowColumnChunk, ParquetError> {
        drop(self.queue);
        self.done
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?
    }
}

impl ParallelWriter {
    pub(super) fn try_new(
        sink: BufWriter,
        schema: SchemaRef,
        props: WriterProperties,
        rows_per_group: usize,
    ) -> Result<Self, ParquetError> {
        // The Arrow writer sets the file up as readers expect it (the Arrow schema in the
        // footer, the Parquet schema derived from it); the columns are then encoded here.
        let (file, columns) = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))?
            .into_serialized_writer()?;
        Ok(Self {
            file,
            columns,
            schema,
            sink,
            rows_per_group,
            group: None,
        })
    }

    /// Sends `batch`'s columns to their encoders, closing row groups as they fill.
    pub(super) async fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let group = match &mut self.group {
                Some(group) => group,
                None => self.group.insert(self.start_group()?),
            };
            let rows = (self.rows_per_group - group.rows).min(batch.num_rows() - offset);
            let slice = batch.slice(offset, rows);
            let mut encoders = group.encoders.iter();
            for (field, column) in self.schema.fields().iter().zip(slice.columns()) {
                for leaf in compute_leaves(field, column)? {
                    let encoder = encoders.next().ok_or_else(|| {
                        ParquetError::General("more leaf columns than encoders".into())
                    })?;
                    if encoder.queue.send(leaf).await.is_err() {
                        // The encoder stopped early: its result says why.
                        return Err(self.fail().await);
                    }
                }
            }
            group.rows += rows;
            offset += rows;
            if group.rows == self.rows_per_group {
                self.close_group().await?;
            }
        }
        Ok(())
    }

    fn start_group(&self) -> Result<RowGroup, ParquetError> {
        let index = self.file.flushed_row_groups().len();
        let encoders = self
            .columns
            .create_column_writers(index)?
            .into_iter()
            .map(Encoder::spawn)
            .collect();
        Ok(RowGroup { encoders, rows: 0 })
    }

    /// The first error of the row group's encoders.
    async fn fail(&mut self) -> ParquetError {
        let group = self.group.take().expect("a row group is being written");
        for encoder in group.encoders {
            if let Err(e) = encoder.finish().await {
                return e;
            }
        }
        ParquetError::General("a column encoder stopped".into())
    }

    /// Appends the row group's encoded columns to the file and hands its bytes to the sink.
    async fn close_group(&mut self) -> Result<(), ParquetError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let mut row_group = self.file.next_row_group()?;
        for encoder in group.encoders {
            encoder
                .finish()
                .await?
                .append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.drain().await
    }

    async fn drain(&mut self) -> Result<(), ParquetError> {
        let bytes = std::mem::take(self.file.inner_mut());
        self.sink.write_all(&bytes).await.map_err(external)
    }

    /// Writes the last row group and the footer, and completes the upload.
    pub(super) async fn close(mut self) -> Result<(), ParquetError> {
        self.close_group().await?;
        self.file.finish()?;
        self.drain().await?;
        self.sink.shutdown().await.map_err(external)
    }
}

fn external(e: std::io::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Date32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};

    use super::*;

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let keys = Int64Array::from_iter_values(from..from + rows);
        let names = StringArray::from_iter(
            (from..from + rows).map(|i| (i % 7 != 0).then(|| format!("customer {}", i % 13))),
        );
        let days =
            Date32Array::from_iter((from..from + rows).map(|i| (i % 5 != 0).then_some(i as i32)));
        let columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(names), Arc::new(days)];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    /// The same rows in the same batches give the same bytes as the plain Arrow writer, row
    /// groups split at the same rows, also when a batch straddles two row groups.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_equal_the_arrow_writers_byte_for_byte() {
        let batches: Vec<RecordBatch> = (0..10).map(|i| batch(i * 37, 37)).collect();
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap()))
                .set_max_row_group_row_count(Some(100))
                .build()
        };
        let schema = batches[0].schema();
        let mut plain = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props())).unwrap();
        for b in &batches {
            plain.write(b).unwrap();
        }
        let expected = plain.into_inner().unwrap();

        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("t/part-00000.parquet");
        let sink = BufWriter::new(store.clone(), path.clone());
        let mut parallel = ParallelWriter::try_new(sink, schema, props(), 100).unwrap();
        for b in &batches {
            parallel.write(b).await.unwrap();
        }
        parallel.close().await.unwrap();
        let written = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(written.as_ref(), expected.as_slice());
    }
}
