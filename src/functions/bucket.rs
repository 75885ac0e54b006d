//! `segflow_bucket`: the stable hash that assigns holdout groups and A/B splits.

use std::fmt::{Display, Write as _};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int32Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use sha2::{Digest, Sha256};

use super::args::{
    DOC_SECTION, StrArg, check_arity, coerce_string_arg, finish, output_rows, string_type,
    take_args,
};

/// Number of buckets: a bucket is in `0..BUCKETS`, so one bucket is 0.01% of keys.
pub const BUCKETS: u16 = 10_000;

/// The holdout bucket of `key` under `salt`, in `0..10000`.
///
/// ```text
/// bucket = u64::from_be_bytes(SHA-256(utf8(salt) || ":" || utf8(key))[0..8]) % 10000
/// ```
///
/// Integer keys are written in decimal (`42`, `-7`), string keys as they are. An analyst can
/// reproduce any bucket in Python:
///
/// ```python
/// import hashlib
/// int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10000
/// ```
///
/// A cryptographic hash rather than a fast one because the assignment must be identical in
/// every engine and language that ever recomputes it, and must not correlate with the key's
/// value (sequential ids would otherwise land in neighbouring buckets). Changing the salt
/// reshuffles everyone; keeping it keeps every customer in the same group day after day.
pub fn bucket(salt: &str, key: impl Display) -> u16 {
    let mut key_text = String::new();
    write!(key_text, "{key}").expect("writing to a String cannot fail");
    bucket_of_str(salt, &key_text)
}

fn bucket_of_str(salt: &str, key: &str) -> u16 {
    let digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(b":")
        .chain_update(key.as_bytes())
        .finalize();
    let first8: [u8; 8] = digest[..8]
        .try_into()
        .expect("SHA-256 digests are 32 bytes");
    let bucket = u64::from_be_bytes(first8) % u64::from(BUCKETS);
    u16::try_from(bucket).expect("a remainder of 10000 fits in u16")
}

/// `segflow_bucket(salt, key)` → Int32 in `[0, 9999]`; see [`bucket`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct BucketUdf {
    signature: Signature,
}

impl BucketUdf {
    pub(crate) const NAME: &'static str = "segflow_bucket";

    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for BucketUdf {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(Self::NAME, arg_types, &["salt", "key"])?;
        let salt = coerce_string_arg(Self::NAME, "salt", &arg_types[0], "")?;
        let key = match &arg_types[1] {
            key if key.is_integer() => key.clone(),
            DataType::Dictionary(_, value) if value.is_integer() => value.as_ref().clone(),
            key => match string_type(key) {
                Some(string) => string,
                None => {
                    return plan_err!(
                        "{}: argument `key` must be an integer or a string, got {key}; \
                         CAST it to BIGINT or VARCHAR to choose how it is written before hashing",
                        Self::NAME
                    );
                }
            },
        };
        Ok(vec![salt, key])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (rows, all_scalar) = output_rows(&args.args, args.number_rows);
        let [salt, key] = take_args::<2>(Self::NAME, args.args)?;
        // Arrow's integer-to-string cast writes plain decimal, exactly what `f"{key}"` does.
        let key = if key.data_type().is_integer() {
            key.cast_to(&DataType::Utf8, None)?
        } else {
            key
        };
        let salt = StrArg::new(Self::NAME, &salt)?;
        let key = StrArg::new(Self::NAME, &key)?;

        let mut result = Int32Builder::with_capacity(rows);
        for row in 0..rows {
            match (salt.get(row), key.get(row)) {
                (Some(salt), Some(key)) => {
                    result.append_value(i32::from(bucket_of_str(salt, key)));
                }
                _ => result.append_null(),
            }
        }
        finish(Arc::new(result.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            Documentation::builder(
                DOC_SECTION,
                "Stable bucket in [0, 9999] of a key under a salt, used for holdout groups and \
                 A/B splits: int.from_bytes(hashlib.sha256(f\"{salt}:{key}\".encode())\
                 .digest()[:8], \"big\") % 10000 in Python. Integer keys are written in decimal.",
                "segflow_bucket(salt, key)",
            )
            .with_sql_example("SELECT customer_id FROM customers WHERE segflow_bucket('2026', customer_id) < 500;")
            .with_argument("salt", "A string; changing it reshuffles every key.")
            .with_argument("key", "The entity key, an integer or string column.")
            .build()
        });
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each expected value was computed independently with
    // python3 -c 'import hashlib; salt, key = ...; print(int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 10000)'
    #[test]
    fn buckets_match_the_python_formula() {
        assert_eq!(bucket("2026", 42), 9851);
        assert_eq!(bucket("2026", 43), 432);
        assert_eq!(bucket("2026", -7), 2050);
        assert_eq!(bucket("2026", u64::MAX), 7826);
        assert_eq!(bucket("2026", "C000123"), 8641);
        assert_eq!(bucket("spring-test", "42"), 2231);
        assert_eq!(bucket("", ""), 4368);
        assert_eq!(bucket("sél", "ünïcode"), 1061);
    }

    #[test]
    fn integer_and_decimal_string_keys_share_a_bucket() {
        assert_eq!(bucket("2026", 42), bucket("2026", "42"));
        assert_eq!(bucket("2026", 42u8), bucket("2026", 42i64));
    }

    #[test]
    fn buckets_are_in_range_and_spread_evenly() {
        let mut per_decile = [0u32; 10];
        for key in 0..20_000 {
            let b = bucket("2026", key);
            assert!(b < BUCKETS);
            per_decile[usize::from(b / 1000)] += 1;
        }
        for count in per_decile {
            assert!(
                (1_800..=2_200).contains(&count),
                "uneven deciles: {per_decile:?}"
            );
        }
    }
}
