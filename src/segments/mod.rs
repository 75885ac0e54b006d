//! Segments: who is in which segment today, in which group, what changed since the previous
//! published run, how customers migrated between segments, and the membership history carried
//! from run to run.
//!
//! All of it is set-based SQL generated from the pipeline's rules ([`sql`]) and run on
//! DataFusion ([`step`]); tables stream to Parquet and only per-segment counts are collected.
//! `explain` evaluates the same SQL for the customers it explains ([`explain`]).

mod compile;
mod explain;
mod sql;
mod step;

pub(crate) use compile::{Segment, Segments, compile};
pub use explain::SegmentExplanation;
pub(crate) use explain::explain;
pub use step::{Flow, Overlap, SegmentStats};
pub(crate) use step::{HELD, SegmentsError, evaluate, plan, publish};
