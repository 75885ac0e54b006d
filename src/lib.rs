//! segflow: YAML-declared batch pipelines of SQL over Arrow that publish daily, explainable
//! customer audiences as Parquet.
//!
//! The flow of a run: [`spec`] (the YAML as written) → [`pipeline`] (compiled: names, SQL,
//! DAG, parameters) → [`engine`] (DataFusion session, sources, models) → [`run`] (one date,
//! end to end) → [`store`] (staged, then published atomically) with a [`report::Manifest`].

pub mod checks;
pub mod cli;
pub mod engine;
pub mod error;
pub mod explain;
pub mod functions;
pub mod generate;
pub mod location;
pub mod offers;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod segments;
pub mod spec;
pub mod store;
pub mod suppressions;

pub use error::Error;
pub mod unit_tests;
