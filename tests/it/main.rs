//! segflow's integration tests: the binary run on fixture projects in temporary folders.

mod ballista;
mod errors;
mod features;
mod gates;
mod hostile;
mod http;
mod names;
mod objects;
mod offers;
mod publish;
mod reader;
mod report;
mod s3;
mod sample;
mod segments;
mod stories;
mod support;
mod unit_tests;
