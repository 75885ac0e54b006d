//! Typed parameters: the values behind `$name` placeholders, bound by DataFusion, never
//! pasted into SQL text.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{DataType, ExactNumberInfo};
use indexmap::IndexMap;

use crate::spec::ParamValue;

/// The parameter every query can use: the run date, a DATE.
pub(crate) const RUN_DATE: &str = "run_date";

/// A `--param` value that does not fit the pipeline's parameters.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("--param {name}: no such parameter; {known}")]
    Unknown { name: String, known: String },
    #[error("--param {name}={value}: expected {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("--param run_date: the run date is set with --date")]
    RunDate,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Date(NaiveDate),
    Text(String),
}

/// The dates segflow computes with: timestamps are nanoseconds (up to 2262), and date
/// arithmetic over a year or more must stay inside that.
pub(crate) const FIRST_DATE: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid");
pub(crate) const LAST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2199, 12, 31).expect("valid");

/// What a date outside the supported range is told.
pub(crate) const DATE_RANGE: &str = "a date between 1900-01-01 and 2199-12-31";

/// A date written as ISO 8601 writes it, zero-padded (`2026-11-20`): `2026-11-2` is as likely a
/// typo of `2026-11-21` as of `2026-11-02`, so it is not read as a date.
pub(crate) fn iso_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && (bytes.iter().enumerate()).all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// Text shaped like a date without its zeros (`2026-1-5`).
fn unpadded_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let digits = |p: &&str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
    matches!(parts.as_slice(), [year, rest @ ..] if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) && rest.len() == 2 && rest.iter().all(digits))
}

/// A date inside the supported range.
pub(crate) fn supported_date(date: NaiveDate) -> Result<NaiveDate, &'static str> {
    if (FIRST_DATE..=LAST_DATE).contains(&date) {
        Ok(date)
    } else {
        Err(DATE_RANGE)
    }
}

impl Value {
    fn from_spec(value: &ParamValue) -> Result<Self, &'static str> {
        Ok(match value {
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Int(i) => Value::Int(*i),
            ParamValue::Float(f) if f.is_finite() => Value::Float(*f),
            ParamValue::Float(_) => return Err("a finite number (not .nan or .inf)"),
            // YAML reads `1_000.0` as text, which SQL would then compare as text or fail to
            // cast at run time.
            ParamValue::Text(t) if grouped_number(t) => {
                return Err("the number without _ (YAML reads 1_000 as text)");
            }
            ParamValue::Text(t) => match iso_date(t) {
                Some(date) => Value::Date(supported_date(date)?),
                None if unpadded_date(t) => return Err("the date zero-padded, like 2026-01-05"),
                None => Value::Text(t.clone()),
            },
        })
    }

    /// Parses `text` as a value of the same type as `self`.
    fn parse_like(&self, text: &str) -> Result<Value, &'static str> {
        match self {
            Value::Bool(_) => text.parse().map(Value::Bool).map_err(|_| "true or false"),
            Value::Int(_) => text.parse().map(Value::Int).map_err(|_| "a whole number"),
            Value::Float(_) => match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Value::Float(f)),
                Ok(_) => Err("a finite number"),
                Err(_) => Err("a number"),
            },
            Value::Date(_) => iso_date(text)
                .ok_or("a date like 2026-11-30")
                .and_then(supported_date)
                .map(Value::Date),
            Value::Text(_) => Ok(Value::Text(text.to_string())),
        }
    }

    pub(crate) fn sql_type(&self) -> DataType {
        match self {
            Value::Bool(_) => DataType::Boolean,
            Value::Int(_) => DataType::BigInt(None),
            Value::Float(_) => DataType::Double(ExactNumberInfo::None),
            Value::Date(_) => DataType::Date,
            Value::Text(_) => DataType::Varchar(None),
        }
    }

    pub(crate) fn to_scalar(&self) -> ScalarValue {
        match self {
            Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Value::Int(i) => ScalarValue::Int64(Some(*i)),
            Value::Float(f) => ScalarValue::Float64(Some(*f)),
            Value::Date(d) => ScalarValue::Date32(Some(days_since_epoch(*d))),
            Value::Text(t) => ScalarValue::Utf8(Some(t.clone())),
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => (*f).into(),
            Value::Date(d) => d.to_string().into(),
            Value::Text(t) => t.clone().into(),
        }
    }
}

/// Whether `text` is a number with its digits grouped by `_` (`1_000`, `2_500.50`).
fn grouped_number(text: &str) -> bool {
    let digits = text.trim_start_matches(['-', '+']);
    digits.contains('_')
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.replace('_', "").parse::<f64>().is_ok()
}

pub(crate) fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")).num_days() as i32
}

/// Reads `--param NAME=VALUE` (the value is typed later, against the declared parameter).
pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected NAME=VALUE, e.g. lookback_days=90, not {text:?}"
        )),
    }
}

/// The pipeline's declared parameters (with `run_date`), in declaration order.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    values: IndexMap<String, Value>,
}

impl Params {
    /// Types the YAML `params:`; returns each parameter that cannot be used, with why.
    pub(crate) fn from_spec(
        spec: &IndexMap<String, ParamValue>,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut values = IndexMap::new();
        values.insert(
            RUN_DATE.to_string(),
            Value::Date(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")),
        );
        let mut problems = Vec::new();
        for (name, value) in spec {
            if name == RUN_DATE {
                problems.push((
                    name.clone(),
                    "run_date is set by --date and cannot be declared".to_string(),
                ));
                continue;
            }
            match Value::from_spec(value) {
                Ok(value) => {
                    values.insert(name.clone(), value);
                }
                Err(expected) => problems.push((name.clone(), format!("give {expected}"))),
            }
        }
        if problems.is_empty() {
            Ok(Self { values })
        } else {
            Err(problems)
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    /// "parameters: $run_date, $lookback_days", for error messages.
    pub(crate) fn describe_names(&self) -> String {
        let names: Vec<String> = self.values.keys().map(|n| format!("${n}")).collect();
        format!("parameters: {}", names.join(", "))
    }

    /// The values for one run: the run date and `--param name=value` overrides, each parsed
    /// as its declared type.
    pub(crate) fn bind(
        &self,
        run_date: NaiveDate,
        overrides: &[(String, String)],
    ) -> Result<Params, ParamError> {
        let mut bound = self.clone();
        bound
            .values
            .insert(RUN_DATE.to_string(), Value::Date(run_date));
        for (name, text) in overrides {
            let name = name.as_str();
            if name == RUN_DATE {
                return Err(ParamError::RunDate);
            }
            let declared = self.values.get(name).ok_or_else(|| ParamError::Unknown {
                name: name.to_string(),
                known: self.describe_names(),
            })?;
            let value = declared
                .parse_like(text)
                .map_err(|expected| ParamError::Invalid {
                    name: name.to_string(),
                    value: text.to_string(),
                    expected,
                })?;
            bound.values.insert(name.to_string(), value);
        }
        Ok(bound)
    }

    /// A run's `recorded` parameters (its manifest's) as overrides of these: those still
    /// declared, of the type they are declared with, other than the run date.
    pub(crate) fn recorded(
        &self,
        recorded: &BTreeMap<String, serde_json::Value>,
    ) -> Vec<(String, String)> {
        recorded
            .iter()
            .filter(|(name, _)| name.as_str() != RUN_DATE)
            .filter_map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let declared = self.values.get(name)?;
                declared.parse_like(&text).ok()?;
                Some((name.clone(), text))
            })
            .collect()
    }

    pub(crate) fn run_date(&self) -> NaiveDate {
        match self.values.get(RUN_DATE) {
            Some(Value::Date(date)) => *date,
            _ => unreachable!("run_date is always a date"),
        }
    }

    pub(crate) fn param_values(&self) -> ParamValues {
        let map: std::collections::HashMap<String, ScalarValue> = self
            .values
            .iter()
            .map(|(name, value)| (name.clone(), value.to_scalar()))
            .collect();
        ParamValues::from(map)
    }

    pub(crate) fn to_json(&self) -> BTreeMap<String, serde_json::Value> {
        self.values
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(text: &str) -> (String, String) {
        parse_param(text).unwrap()
    }

    fn params() -> Params {
        let mut spec = IndexMap::new();
        spec.insert("days".to_string(), ParamValue::Int(30));
        spec.insert("since".to_string(), ParamValue::Text("2026-01-01".into()));
        Params::from_spec(&spec).unwrap()
    }

    #[test]
    fn dates_are_written_zero_padded() {
        assert_eq!(iso_date("2026-11-02"), NaiveDate::from_ymd_opt(2026, 11, 2));
        for text in [
            "2026-11-2",
            "2026-1-05",
            "26-11-02",
            "2026/11/02",
            "2026-11-31",
            "2026-11-02x",
        ] {
            assert_eq!(iso_date(text), None, "{text}");
        }
        // A parameter written without padding is refused rather than read as text.
        let value = Value::from_spec(&ParamValue::Text("2026-1-5".into()));
        assert_eq!(value.err(), Some("the date zero-padded, like 2026-01-05"));
        let value = Value::from_spec(&ParamValue::Text("2026-Q1".into())).unwrap();
        assert!(matches!(value, Value::Text(_)));
    }

    #[test]
    fn overrides_keep_the_declared_type() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let bound = params()
            .bind(date, &[pair("days=7"), pair("since=2026-02-01")])
            .unwrap();
        assert_eq!(bound.get("days"), Some(&Value::Int(7)));
        assert_eq!(
            bound.get("since"),
            Some(&Value::Date(NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()))
        );
        assert_eq!(bound.run_date(), date);
    }

    #[test]
    fn numbers_grouped_with_underscores_are_refused_not_read_as_text() {
        for text in ["1_000", "1_000.0", "-2_500.50"] {
            let mut spec = IndexMap::new();
            spec.insert("threshold".to_string(), ParamValue::Text(text.into()));
            let problems = Params::from_spec(&spec).unwrap_err();
            assert_eq!(
                problems,
                [(
                    "threshold".to_string(),
                    "give the number without _ (YAML reads 1_000 as text)".to_string()
                )]
            );
        }
        let mut spec = IndexMap::new();
        spec.insert("code".to_string(), ParamValue::Text("a_1".into()));
        spec.insert("batch".to_string(), ParamValue::Text("2026_q4".into()));
        assert!(Params::from_spec(&spec).is_ok());
    }

    #[test]
    fn overrides_are_checked() {
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let err = params()
            .bind(date, &[pair("days=7; drop table x")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--param days=7; drop table x: expected a whole number"
        );
        let err = params().bind(date, &[pair("dayz=7")]).unwrap_err();
        assert!(
            err.to_string().contains("$run_date, $days, $since"),
            "{err}"
        );
        assert!(params().bind(date, &[pair("run_date=2026-01-01")]).is_err());
    }
}
