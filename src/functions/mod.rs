//! SQL functions segflow registers with DataFusion.
//!
//! | function | returns |
//! | --- | --- |
//! | `normalize_email(email)` | trimmed, lower-cased address; dots and `+tag` removed for gmail.com / googlemail.com |
//! | `sha256_email(email)` | hex SHA-256 of `normalize_email(email)` |
//! | `normalize_phone(phone, default_country)` | E.164, e.g. `+447700900123` |
//! | `sha256_phone_e164(phone, default_country)` | hex SHA-256 of `+447700900123` (Google Ads Customer Match) |
//! | `sha256_phone_digits(phone, default_country)` | hex SHA-256 of `447700900123` (Meta Custom Audiences) |
//! | `segflow_bucket(salt, key)` | stable Int32 bucket in `[0, 9999]` for holdouts and splits |
//!
//! All six are NULL-in, NULL-out. A value that is present but is not a plausible email or
//! phone number also gives NULL rather than failing the run: one bad CRM row must not block a
//! daily audience. Those values are counted in [`IdentifierStats`] so a run can report them.

mod args;
mod bucket;
mod email;
mod phone;
#[cfg(test)]
mod sql_tests;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use bucket::{BUCKETS, bucket};
pub use email::{normalize_email_str, sha256_email_str};
pub use phone::{
    calling_code, normalize_phone_str, sha256_phone_digits_str, sha256_phone_e164_str,
};

use bucket::BucketUdf;
use email::{EmailOutput, EmailUdf};
use phone::{PhoneOutput, PhoneUdf};

/// Counts of identifiers that were present but could not be normalized, shared by every
/// function returned from one [`register`] or [`udfs`] call.
///
/// Counts are per evaluation, not per distinct value: a query that hashes the same column
/// twice, or a plan that is executed twice, counts a bad value twice. A call whose arguments
/// are all literals is evaluated once, when DataFusion folds it during planning.
#[derive(Debug, Clone)]
pub struct IdentifierStats {
    invalid_emails: Arc<AtomicU64>,
    invalid_phones: Arc<AtomicU64>,
    /// The functions run in this process. On a Ballista cluster they run on the executors,
    /// whose counts do not come back: the counts are then unknown, not zero.
    counted_here: bool,
}

impl Default for IdentifierStats {
    fn default() -> Self {
        Self {
            invalid_emails: Arc::default(),
            invalid_phones: Arc::default(),
            counted_here: true,
        }
    }
}

impl IdentifierStats {
    /// The same counters, for functions that run in other processes (a cluster's executors).
    pub(crate) fn counted_elsewhere(self) -> Self {
        Self {
            counted_here: false,
            ..self
        }
    }

    /// Whether the counts are this run's: false when its functions ran on a cluster.
    pub fn counted(&self) -> bool {
        self.counted_here
    }

    /// Non-NULL values that `normalize_email` or `sha256_email` turned into NULL.
    pub fn invalid_emails(&self) -> u64 {
        self.invalid_emails.load(Ordering::Relaxed)
    }

    /// Non-NULL values that `normalize_phone`, `sha256_phone_e164` or `sha256_phone_digits`
    /// turned into NULL.
    pub fn invalid_phones(&self) -> u64 {
        self.invalid_phones.load(Ordering::Relaxed)
    }

    fn add_invalid_emails(&self, count: u64) {
        if count > 0 {
            self.invalid_emails.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn add_invalid_phones(&self, count: u64) {
        if count > 0 {
            self.invalid_phones.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn same_counters(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.invalid_emails, &other.invalid_emails)
            && Arc::ptr_eq(&self.invalid_phones, &other.invalid_phones)
    }

    fn hash_counters<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.invalid_emails).hash(state);
        Arc::as_ptr(&self.invalid_phones).hash(state);
    }
}

/// An identifier function giving `output` (e.g. a normalized or hashed e-mail), counting the
/// values it could not normalize into `stats`.
#[derive(Debug)]
pub(crate) struct CountingUdf<O> {
    output: O,
    signature: datafusion::logical_expr::Signature,
    stats: IdentifierStats,
}

impl<O> CountingUdf<O> {
    pub(crate) fn new(output: O, stats: IdentifierStats) -> Self {
        Self {
            output,
            signature: datafusion::logical_expr::Signature::user_defined(
                datafusion::logical_expr::Volatility::Immutable,
            ),
            stats,
        }
    }
}

// Two instances are the same function only if they also feed the same counters.
impl<O: PartialEq> PartialEq for CountingUdf<O> {
    fn eq(&self, other: &Self) -> bool {
        self.output == other.output && self.stats.same_counters(&other.stats)
    }
}

impl<O: Eq> Eq for CountingUdf<O> {}

impl<O: Hash> Hash for CountingUdf<O> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.output.hash(state);
        self.stats.hash_counters(state);
    }
}

/// Registers all of segflow's functions with `ctx` and returns the counters they share.
pub fn register(ctx: &SessionContext) -> IdentifierStats {
    let stats = IdentifierStats::default();
    for udf in udfs(&stats) {
        ctx.register_udf(udf);
    }
    stats
}

/// All of segflow's functions, counting invalid identifiers into `stats`; for sessions built
/// some other way than [`register`] (a `SessionStateBuilder`, a Ballista client).
pub fn udfs(stats: &IdentifierStats) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(EmailUdf::new(EmailOutput::Normalized, stats.clone())),
        ScalarUDF::new_from_impl(EmailUdf::new(EmailOutput::Sha256, stats.clone())),
        ScalarUDF::new_from_impl(PhoneUdf::new(PhoneOutput::E164, stats.clone())),
        ScalarUDF::new_from_impl(PhoneUdf::new(PhoneOutput::Sha256E164, stats.clone())),
        ScalarUDF::new_from_impl(PhoneUdf::new(PhoneOutput::Sha256Digits, stats.clone())),
        ScalarUDF::new_from_impl(BucketUdf::new()),
    ]
}
