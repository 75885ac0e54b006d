//! Rows in and out: YAML rows decoded into Arrow batches of a table's schema (through JSON, so
//! `2026-11-01` becomes a DATE and `"2026-10-01T10:00:00"` a TIMESTAMP), and result batches
//! rendered as text cells for comparison.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Value as Json};

use super::compare::Cell;
use super::spec::Row;

/// The schema given rows are held in: the table's columns, every one nullable (columns a test
/// does not give are NULL).
pub fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// A given row that cannot be read as the table's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// 0-based, as in the YAML list.
    pub row: usize,
    /// The column at fault, when one is.
    pub column: Option<String>,
    pub message: String,
}

/// Columns of `rows` that `schema` does not have, as (row, column).
pub fn unknown_columns(schema: &Schema, rows: &[Row]) -> Vec<(usize, String)> {
    rows.iter()
        .enumerate()
        .flat_map(|(i, row)| {
            row.keys()
                .filter(|c| schema.field_with_name(c).is_err())
                .map(move |c| (i, c.clone()))
        })
        .collect()
}

/// Decodes rows into one batch of `schema` (see [`nullable`]); call [`unknown_columns`] first.
pub fn decode(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch, RowError> {
    let json: Vec<Map<String, Json>> = rows.iter().map(to_json).collect();
    // The decoder would truncate a fraction given for a whole-number column (1.7 → 1), read a
    // number given for a date as days since 1970 and for a time as microseconds, and a number
    // given for text as YAML retyped it (`+33612345678` and `007` lose their first character).
    for (i, row) in json.iter().enumerate() {
        for (column, value) in row {
            let Some(data_type) =
                (schema.field_with_name(column).ok()).map(|f| decodable(f.data_type()))
            else {
                continue;
            };
            let fraction = value.as_f64().is_some_and(|v| v.fract() != 0.0);
            let message = match data_type {
                t if t.is_integer() && fraction => format!("{value} is not a whole number"),
                t if t.is_temporal() && value.is_number() => {
                    format!("{value} is not {}", describe_type(&t))
                }
                t if is_text(&t) && value.is_number() => unquoted(value),
                _ => continue,
            };
            return Err(RowError {
                row: i,
                column: Some(column.clone()),
                message,
            });
        }
    }
    if let Ok(batch) = decode_json(schema, &json) {
        return Ok(batch);
    }
    // Find the row, then the column, that cannot be read.
    for (i, row) in json.iter().enumerate() {
        if decode_json(schema, std::slice::from_ref(row)).is_ok() {
            continue;
        }
        for (column, value) in row {
            let single: Map<String, Json> = [(column.clone(), value.clone())].into_iter().collect();
            if let Err(err) = decode_json(schema, &[single]) {
                let message = match schema.field_with_name(column) {
                    Ok(field) => format!("{value} is not {}", describe_type(field.data_type())),
                    Err(_) => clean(&err),
                };
                return Err(RowError {
                    row: i,
                    column: Some(column.clone()),
                    message,
                });
            }
        }
        if let Err(err) = decode_json(schema, std::slice::from_ref(row)) {
            return Err(RowError {
                row: i,
                column: None,
                message: clean(&err),
            });
        }
    }
    decode_json(schema, &json).map_err(|err| RowError {
        row: 0,
        column: None,
        message: clean(&err),
    })
}

fn clean(err: &ArrowError) -> String {
    let text = err.to_string();
    text.trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .to_string()
}

/// How a column's type reads in a message: "a whole number", "a date like 2026-11-20", …
pub fn describe_type(data_type: &DataType) -> String {
    match data_type {
        t if t.is_integer() => "a whole number".into(),
        t if t.is_floating()
            || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
        {
            "a number".into()
        }
        DataType::Boolean => "true or false".into(),
        DataType::Date32 | DataType::Date64 => "a date like 2026-11-20".into(),
        DataType::Timestamp(..) => "a timestamp like \"2026-11-20T10:00:00\"".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Dictionary(_, value) => describe_type(value),
        other => format!("a {other}"),
    }
}

pub(super) fn is_text(data_type: &DataType) -> bool {
    matches!(
        decodable(data_type),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// What a number written unquoted for a text column is told.
pub(super) fn unquoted(value: impl std::fmt::Display) -> String {
    format!(
        "the column is text and YAML reads {value} unquoted as a number, which it may not keep as written (+33612345678, 007); quote it"
    )
}

/// Dictionary columns are decoded as their values, then cast.
fn decodable(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(_, value) => decodable(value),
        other => other.clone(),
    }
}

fn decode_json(schema: &SchemaRef, rows: &[Map<String, Json>]) -> Result<RecordBatch, ArrowError> {
    let plain = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), decodable(f.data_type()), true))
            .collect::<Vec<_>>(),
    ));
    let mut decoder = ReaderBuilder::new(plain)
        .with_coerce_primitive(true)
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    decoder.serialize(rows)?;
    let Some(batch) = decoder.flush()? else {
        return Ok(RecordBatch::new_empty(schema.clone()));
    };
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

fn to_json(row: &Row) -> Map<String, Json> {
    row.iter()
        .map(|(k, v)| (k.clone(), yaml_to_json(v)))
        .collect()
}

fn yaml_to_json(value: &serde_yaml::Value) -> Json {
    match value {
        serde_yaml::Value::Null => Json::Null,
        serde_yaml::Value::Bool(b) => Json::Bool(*b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        serde_yaml::Value::String(s) => Json::String(s.clone()),
        serde_yaml::Value::Sequence(items) => Json::Array(items.iter().map(yaml_to_json).collect()),
        serde_yaml::Value::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (scalar_key(k), yaml_to_json(v)))
                .collect(),
        ),
        serde_yaml::Value::Tagged(tagged) => yaml_to_json(&tagged.value),
    }
}

fn scalar_key(key: &serde_yaml::Value) -> String {
    super::spec::scalar_text(key).unwrap_or_else(|| "null".into())
}

/// An expected value as the text it is compared by: `700`, `2026-11-01`, `true`; NULL is
/// `None`.
pub fn expected_cell(value: &serde_yaml::Value) -> Cell {
    match value {
        serde_yaml::Value::Null => None,
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.clone()),
        // Lists and structs display like Arrow's: [a, b] and {k: v}.
        serde_yaml::Value::Sequence(items) => Some(format!(
            "[{}]",
            items
                .iter()
                .map(|v| expected_cell(v).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        serde_yaml::Value::Mapping(map) => Some(format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    scalar_key(k),
                    expected_cell(v).unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        serde_yaml::Value::Tagged(tagged) => expected_cell(&tagged.value),
    }
}

/// The rows of `batches` as text cells of the columns at `indices`.
pub fn actual_cells(
    batches: &[RecordBatch],
    indices: &[usize],
) -> Result<Vec<Vec<Cell>>, ArrowError> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = indices
            .iter()
            .map(|&i| {
                let array = batch.column(i);
                ArrayFormatter::try_new(array.as_ref(), &options).map(|f| (array, f))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|(array, f)| (!array.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    fn rows(yaml: &str) -> Vec<Row> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn schema() -> SchemaRef {
        nullable(&Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("name", DataType::Utf8View, true),
            Field::new("signup_date", DataType::Date32, true),
            Field::new(
                "seen_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("amount", DataType::Float64, true),
        ]))
    }

    #[test]
    fn dates_timestamps_and_numbers_are_read_as_the_columns_types() {
        let given = rows(
            "- { customer_id: 1, name: \"7\", signup_date: 2025-01-01, seen_at: \"2026-10-01T10:00:00\", amount: 700 }\n\
             - { customer_id: 2 }",
        );
        let batch = decode(&schema(), &given).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let cells = actual_cells(&[batch], &[0, 1, 2, 3, 4]).unwrap();
        assert_eq!(
            cells[0],
            ["1", "7", "2025-01-01", "2026-10-01T10:00:00", "700.0"].map(|s| Some(s.to_string()))
        );
        assert_eq!(
            cells[1],
            vec![Some("2".to_string()), None, None, None, None]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_row_and_column() {
        let given = rows("- { customer_id: 1 }\n- { customer_id: 2, signup_date: yesterday }");
        let err = decode(&schema(), &given).unwrap_err();
        assert_eq!(err.row, 1);
        assert_eq!(err.column.as_deref(), Some("signup_date"));
        assert_eq!(err.message, "\"yesterday\" is not a date like 2026-11-20");
        // A fraction is not silently cut to a whole number; a whole one written as 2.0 is one.
        let given = rows("- { customer_id: 2.0 }\n- { customer_id: 1.7 }");
        let err = decode(&schema(), &given).unwrap_err();
        assert_eq!((err.row, err.column.as_deref()), (1, Some("customer_id")));
        assert_eq!(err.message, "1.7 is not a whole number");
        // A number for a date or a time was read as days or microseconds since 1970; for
        // text, as YAML retyped it.
        for (row, column, message) in [
            (
                "signup_date: 20200101",
                "signup_date",
                "20200101 is not a date like 2026-11-20",
            ),
            (
                "seen_at: 1700000000",
                "seen_at",
                "1700000000 is not a timestamp like \"2026-11-20T10:00:00\"",
            ),
            (
                "name: +33612345678",
                "name",
                "the column is text and YAML reads 33612345678 unquoted as a number, which it may not keep as written (+33612345678, 007); quote it",
            ),
        ] {
            let err =
                decode(&schema(), &rows(&format!("- {{ customer_id: 1, {row} }}"))).unwrap_err();
            assert_eq!(
                (err.column.as_deref(), err.message.as_str()),
                (Some(column), message)
            );
        }
    }

    #[test]
    fn unknown_columns_are_listed_with_their_rows() {
        let given = rows("- { customer_id: 1, nmae: x }\n- { amount: 2, colour: red }");
        assert_eq!(
            unknown_columns(&schema(), &given),
            vec![(0, "nmae".to_string()), (1, "colour".to_string())]
        );
    }

    #[test]
    fn no_rows_make_an_empty_batch() {
        let batch = decode(&schema(), &[]).unwrap();
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), schema());
    }

    #[test]
    fn expected_values_read_as_written() {
        let row: Row =
            serde_yaml::from_str("{ a: 700, b: 700.5, c: ~, d: true, e: 2026-11-01, f: [x, 2] }")
                .unwrap();
        let cells: Vec<Cell> = row.values().map(expected_cell).collect();
        assert_eq!(
            cells,
            vec![
                Some("700".into()),
                Some("700.5".into()),
                None,
                Some("true".into()),
                Some("2026-11-01".into()),
                Some("[x, 2]".into())
            ]
        );
    }
}
