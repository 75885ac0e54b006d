//! Argument plumbing shared by segflow's scalar functions: type coercion at planning time and
//! row-wise access to string arguments that may be columns or literals.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, DocSection};
use sha2::{Digest, Sha256};

/// The documentation section every segflow function is listed under.
pub(crate) const DOC_SECTION: DocSection = DocSection {
    include: true,
    label: "segflow functions",
    description: Some("Identifier normalization, hashing and holdout bucketing for activation"),
};

/// Checks the number of arguments at planning time, naming them in the message.
pub(crate) fn check_arity(function: &str, arg_types: &[DataType], names: &[&str]) -> Result<()> {
    if arg_types.len() != names.len() {
        return plan_err!(
            "{function} takes {} argument(s) ({}), got {}",
            names.len(),
            names.join(", "),
            arg_types.len()
        );
    }
    Ok(())
}

/// The type a string argument is coerced to: any string type is kept as is (the functions read
/// all three), dictionary-encoded strings (Hive partition columns, some Parquet files) are
/// unpacked, and an untyped NULL becomes Utf8 so that it simply yields NULL. `None` for
/// anything else.
pub(crate) fn string_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(data_type.clone()),
        DataType::Null => Some(DataType::Utf8),
        DataType::Dictionary(_, value) if !value.is_null() => string_type(value),
        _ => None,
    }
}

/// [`string_type`], or a planning error naming the function and argument, followed by `hint`.
pub(crate) fn coerce_string_arg(
    function: &str,
    arg: &str,
    data_type: &DataType,
    hint: &str,
) -> Result<DataType> {
    match string_type(data_type) {
        Some(string) => Ok(string),
        None => plan_err!("{function}: argument `{arg}` must be a string, got {data_type}{hint}"),
    }
}

/// A string argument read row by row, whether it arrived as a column or as a literal.
pub(crate) enum StrArg<'a> {
    Scalar(Option<&'a str>),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
}

impl<'a> StrArg<'a> {
    pub(crate) fn new(function: &str, value: &'a ColumnarValue) -> Result<Self> {
        Ok(match value {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
            ) => StrArg::Scalar(v.as_deref()),
            ColumnarValue::Scalar(ScalarValue::Null) => StrArg::Scalar(None),
            ColumnarValue::Array(array) => match array.data_type() {
                DataType::Utf8 => StrArg::Utf8(array.as_string::<i32>()),
                DataType::LargeUtf8 => StrArg::LargeUtf8(array.as_string::<i64>()),
                DataType::Utf8View => StrArg::Utf8View(array.as_string_view()),
                other => return exec_err!("{function}: expected a string column, got {other}"),
            },
            ColumnarValue::Scalar(other) => {
                return exec_err!(
                    "{function}: expected a string literal, got {}",
                    other.data_type()
                );
            }
        })
    }

    /// The value at `row`, or `None` for NULL. A literal has the same value on every row.
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            StrArg::Scalar(v) => *v,
            StrArg::Utf8(a) => a.is_valid(row).then(|| a.value(row)),
            StrArg::LargeUtf8(a) => a.is_valid(row).then(|| a.value(row)),
            StrArg::Utf8View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// How many rows to compute: one when every argument is a literal (the result is then a
/// literal too, which is what lets DataFusion fold constant calls), otherwise the batch size.
pub(crate) fn output_rows(args: &[ColumnarValue], number_rows: usize) -> (usize, bool) {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    if all_scalar {
        (1, true)
    } else {
        (number_rows, false)
    }
}

/// Wraps a computed array as the function's result, turning it back into a literal when every
/// argument was one.
pub(crate) fn finish(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// Moves exactly `N` evaluated arguments out of the call.
pub(crate) fn take_args<const N: usize>(
    function: &str,
    args: Vec<ColumnarValue>,
) -> Result<[ColumnarValue; N]> {
    let got = args.len();
    match args.try_into() {
        Ok(array) => Ok(array),
        Err(_) => exec_err!("{function}: expected {N} argument(s), got {got}"),
    }
}

/// Lower-case hexadecimal SHA-256 of some bytes, kept on the stack so hashing a column does not
/// allocate per row.
pub(crate) struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut hex = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(bytes), &mut hex)
            .expect("a SHA-256 digest is 32 bytes, exactly 64 hex digits");
        Sha256Hex(hex)
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}
