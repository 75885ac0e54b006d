//! segflow: YAML-declared batch pipelines of SQL over Arrow that publish daily audiences.

pub mod functions;
pub mod generate;
