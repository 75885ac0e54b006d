//! Synthetic CRM, address and interaction data.
//!
//! [`generate`] writes a realistic data set for a telecom retailer under one folder:
//!
//! ```text
//! crm/customers.csv            one row per customer (the CRM as of the end of the window)
//! crm/address_changes.csv      every address a customer has lived at, with serviceability
//! crm/holdings.csv             products held, with start and end dates
//! events/year=YYYY/month=M/part-00000.parquet   interactions, one folder per calendar month
//!                                               (part-00001… once a month passes 4M rows)
//! ```
//!
//! The same options always produce byte-identical files: each customer is simulated from its own
//! random stream derived from `(seed, customer_id)`, and customers are written in id order. The
//! generator streams customer by customer, so memory stays bounded (one customer's rows plus one
//! buffer per open file) however many customers are requested.
//!
//! The generator owns the files listed above: existing files at those paths, and month files of
//! `events/` left by an earlier run over another window, are replaced or removed. Other files
//! under the output folder are left alone.

mod calendar;
mod customer;
mod reference;
mod sink;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use calendar::Window;
use sink::{CrmWriter, EventWriter};

/// The longest window the generator accepts: one open Parquet file per month must fit in memory.
pub const MAX_DAYS: u32 = 3_660;

/// What to generate and where.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Number of customers, numbered 1..=customers.
    pub customers: u64,
    /// Length of the interaction window in days.
    pub days: u32,
    /// Seed of every random choice; the same options give byte-identical files.
    pub seed: u64,
    /// First day of the window; interactions fall in `[start, start + days)`.
    pub start: NaiveDate,
    /// Output folder (created if missing).
    pub out: PathBuf,
}

/// What [`generate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerateSummary {
    pub customers: u64,
    /// Rows of `crm/address_changes.csv` (every customer's first address included).
    pub address_changes: u64,
    /// Rows of all `events/` files.
    pub interactions: u64,
    /// Rows of `crm/holdings.csv`.
    pub holdings: u64,
    /// Every file written, CSV files first, then months in calendar order.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("--customers must be at least 1")]
    NoCustomers,
    #[error("--customers must be at most {max}, got {got}")]
    TooManyCustomers { got: u64, max: u64 },
    #[error(
        "--days must be between 1 and {MAX_DAYS}, got {0}; generate longer histories as separate data sets"
    )]
    DaysOutOfRange(u32),
    #[error(
        "a window of {days} days from {start} runs past the end of the calendar; choose an earlier --start"
    )]
    WindowOutOfCalendar { start: NaiveDate, days: u32 },
    #[error("cannot create directory {path}: {source}; check the output path and its permissions")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check free disk space and write permission")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot remove the stale file {path} left by an earlier run: {source}; delete it by hand"
    )]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write Parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
}

impl GenerateError {
    /// Whether the arguments asked for something impossible (exit 2), rather than writing
    /// failed (exit 1).
    pub fn is_argument(&self) -> bool {
        matches!(
            self,
            GenerateError::NoCustomers
                | GenerateError::TooManyCustomers { .. }
                | GenerateError::DaysOutOfRange(_)
                | GenerateError::WindowOutOfCalendar { .. }
        )
    }
}

/// Customer ids and address ids must fit in a signed 64-bit integer with room to spare.
const MAX_CUSTOMERS: u64 = 1 << 40;
const PROGRESS_EVERY: u64 = 100_000;

/// Writes the data set described by `opts` and says what it wrote.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary, GenerateError> {
    generate_in_files_of(opts, sink::ROWS_PER_FILE)
}

fn generate_in_files_of(
    opts: &GenerateOptions,
    rows_per_file: usize,
) -> Result<GenerateSummary, GenerateError> {
    if opts.customers == 0 {
        return Err(GenerateError::NoCustomers);
    }
    if opts.customers > MAX_CUSTOMERS {
        return Err(GenerateError::TooManyCustomers {
            got: opts.customers,
            max: MAX_CUSTOMERS,
        });
    }
    if opts.days == 0 || opts.days > MAX_DAYS {
        return Err(GenerateError::DaysOutOfRange(opts.days));
    }
    let window = Window::new(opts.start, opts.days).ok_or(GenerateError::WindowOutOfCalendar {
        start: opts.start,
        days: opts.days,
    })?;

    let _span = tracing::info_span!(
        "generate",
        customers = opts.customers,
        days = opts.days,
        seed = opts.seed,
        out = %opts.out.display(),
    )
    .entered();

    let crm_dir = opts.out.join("crm");
    sink::create_dir(&crm_dir)?;
    remove_stale_months(&opts.out)?;

    let mut crm = CrmWriter::create(&crm_dir)?;
    let mut events = EventWriter::new(opts.out.clone(), &window, rows_per_file);
    let mut summary = GenerateSummary {
        customers: opts.customers,
        address_changes: 0,
        interactions: 0,
        holdings: 0,
        files: Vec::new(),
    };
    let mut next_address_id = 1;
    for customer_id in 1..=opts.customers {
        let record = customer::simulate(&window, opts.seed, customer_id, &mut next_address_id);
        crm.write(&window, &record)?;
        events.write(&window, &record)?;
        summary.address_changes += record.addresses.len() as u64;
        summary.holdings += record.holdings.len() as u64;
        summary.interactions += record.events.len() as u64;
        if customer_id.is_multiple_of(PROGRESS_EVERY) {
            tracing::info!(
                customers = customer_id,
                interactions = summary.interactions,
                "generated"
            );
        }
    }
    summary.files = crm.finish()?;
    summary.files.extend(events.finish()?);
    tracing::info!(
        customers = summary.customers,
        interactions = summary.interactions,
        files = summary.files.len(),
        "generated data set"
    );
    Ok(summary)
}

/// Removes the month files of `events/` (and then-empty partition folders) so that an earlier
/// run over another window cannot leave months behind that readers would mix in.
fn remove_stale_months(out: &Path) -> Result<(), GenerateError> {
    let events_dir = out.join("events");
    for year_dir in partition_dirs(&events_dir, "year=") {
        for month_dir in partition_dirs(&year_dir, "month=") {
            let Ok(entries) = std::fs::read_dir(&month_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("part-") && name.ends_with(".parquet") {
                    let path = entry.path();
                    std::fs::remove_file(&path)
                        .map_err(|source| GenerateError::RemoveStale { path, source })?;
                }
            }
            // Only succeeds when the folder is now empty, which is the only case we want.
            let _ = std::fs::remove_dir(&month_dir);
        }
        let _ = std::fs::remove_dir(&year_dir);
    }
    Ok(())
}

fn partition_dirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests;
