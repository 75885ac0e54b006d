//! segflow: YAML-declared batch pipelines of SQL over Arrow that publish daily, explainable
//! customer audiences as Parquet.
//!
//! A run flows through layers that only ever import downwards:
//!
//! ```text
//!  location, spec, functions        where things are; the YAML as written; SQL functions
//!  sql, compile                     SQL files, parameters, rules; the compile context
//!  store                            files, Parquet, locks, atomic publish
//!  engine                           DataFusion session, planning, streaming to Parquet
//!  sources, holdouts, erasure       what every step builds on
//!  features                         windowed aggregates kept up to date day by day
//!  models, suppressions, segments,  one folder per concept: its compiled types, its SQL,
//!  offers, checks                   its run step and its explanation
//!  pipeline                         the parts compiled together, names resolved across them
//!  report                           the manifest a run writes
//!  run                              one date end to end; validate, backfill, rebuilds, scrub
//!  explain, unit_tests              the same steps, for one customer or for given rows
//!  cli                              arguments in, one function per command
//! ```
//!
//! The library's public surface is what the command line uses: load a [`Pipeline`], [`run`]
//! it, [`explain`] it, and read the [`Manifest`] it publishes.

mod checks;
pub mod cli;
mod cluster;
mod compile;
mod engine;
mod erasure;
mod error;
mod explain;
mod features;
pub mod functions;
mod fuzz;
mod generate;
mod holdouts;
mod location;
mod models;
mod objects;
mod offers;
mod pipeline;
mod report;
mod run;
mod segments;
mod sources;
mod spec;
mod sql;
mod store;
mod suppressions;
mod unit_tests;

pub use cli::Error;
pub use engine::redact_quoted as without_values;
pub use error::chain;
pub use explain::{Explanation, explain};
pub use pipeline::{CompileError, Pipeline};
pub use report::Manifest;
pub use run::{RunError, RunOptions, RunReport, backfill, run};
