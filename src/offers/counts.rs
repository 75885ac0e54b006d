//! Per-offer counts of the decisions, taken from `decisions/` as it is written instead of
//! reading it back (at 1M customers, 2.6M rows: 0.5–0.6 s a run).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, partition};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};

use super::sql::Status;
use crate::engine::Observer;

/// What became of one offer's eligible customers.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Tally {
    /// Customers eligible (distinct keys).
    pub(super) eligible: u64,
    /// Decisions per [`Status`], in its order.
    statuses: [u64; Status::ALL.len()],
}

impl Tally {
    pub(super) fn of(&self, status: Status) -> u64 {
        self.statuses[status as usize]
    }
}

/// Counts decisions batch by batch. They come sorted by (key, offer), so the rows of one
/// (customer, offer) pair are next to each other, also across batches: a pair counts once as
/// eligible where its rows start, and each row once under its status — what counting distinct
/// keys per offer gives, without holding a set of keys.
pub(super) struct DecisionCounts {
    key: String,
    /// The (key, offer) of the last row seen.
    last: Option<(ScalarValue, String)>,
    pub(super) tallies: HashMap<String, Tally>,
}

impl DecisionCounts {
    pub(super) fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            last: None,
            tallies: HashMap::new(),
        }
    }
}

impl Observer for DecisionCounts {
    fn observe(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                DataFusionError::Internal(format!("the decisions have no column {name}"))
            })
        };
        let key = column(&self.key)?;
        let offer = cast(&column("offer")?, &DataType::Utf8View)?;
        let status = cast(&column("status")?, &DataType::Utf8View)?;
        let (offers, statuses) = (offer.as_string_view(), status.as_string_view());
        let pair = |row: usize| -> Result<_, DataFusionError> {
            Ok((ScalarValue::try_from_array(&key, row)?, offers.value(row)))
        };
        let continued = match &self.last {
            Some((last_key, last_offer)) => {
                let (first_key, first_offer) = pair(0)?;
                first_key == *last_key && first_offer == last_offer
            }
            None => false,
        };
        for (i, run) in partition(&[Arc::clone(&key), Arc::clone(&offer)])?
            .ranges()
            .into_iter()
            .enumerate()
        {
            if offers.is_null(run.start) {
                continue;
            }
            let name = offers.value(run.start);
            let tally = match self.tallies.get_mut(name) {
                Some(tally) => tally,
                None => self.tallies.entry(name.to_string()).or_default(),
            };
            if i > 0 || !continued {
                tally.eligible += 1;
            }
            for row in run {
                if let Some(status) = Status::named(statuses.value(row)) {
                    tally.statuses[status as usize] += 1;
                }
            }
        }
        let (last_key, last_offer) = pair(rows - 1)?;
        self.last = Some((last_key, last_offer.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(rows: &[(i64, &str, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("offer", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
        ]));
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn a_pair_split_between_batches_counts_once() {
        let mut counts = DecisionCounts::new("customer_id");
        counts
            .observe(&batch(&[
                (1, "a", "assigned"),
                (1, "b", "suppressed"),
                (2, "a", "capacity"),
            ]))
            .unwrap();
        // A duplicated pair (a profile with a repeated key) across the batch boundary: one
        // customer, two decisions.
        counts
            .observe(&batch(&[(2, "a", "outranked"), (2, "b", "assigned")]))
            .unwrap();
        counts.observe(&batch(&[])).unwrap();
        counts
            .observe(&batch(&[(3, "a", "assigned"), (3, "a", "assigned")]))
            .unwrap();
        let tally = |name: &str| counts.tallies[name];
        // assigned, suppressed, capacity, outranked
        assert_eq!(
            tally("a"),
            Tally {
                eligible: 3,
                statuses: [3, 0, 1, 1]
            }
        );
        assert_eq!(
            tally("b"),
            Tally {
                eligible: 2,
                statuses: [1, 1, 0, 0]
            }
        );
    }
}
