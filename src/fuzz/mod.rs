//! Mutations of a pipeline project for fuzzing: structure-aware edits of the pipeline's YAML
//! (values replaced by hostile ones, keys removed, renamed, repeated or invented) and byte-level
//! damage to the YAML and SQL files. The test suite runs a few hundred cases in seconds;
//! `benches/fuzz.sh` runs them for as long as it is given.

#![cfg(test)]

mod cases;
mod mutate;
