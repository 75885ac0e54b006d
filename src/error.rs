//! The crate's error: every module's error, and the exit code each maps to.

use crate::generate::GenerateError;
use crate::pipeline::CompileError;
use crate::run::{BackfillError, RunError};
use crate::unit_tests::UnitTestError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Run(Box<RunError>),
    #[error(transparent)]
    Backfill(Box<BackfillError>),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    UnitTest(#[from] UnitTestError),
    #[error("{0} SQL unit test(s) failed")]
    TestsFailed(usize),
}

impl From<RunError> for Error {
    fn from(err: RunError) -> Self {
        Error::Run(Box::new(err))
    }
}

impl From<BackfillError> for Error {
    fn from(err: BackfillError) -> Self {
        Error::Backfill(Box::new(err))
    }
}

impl Error {
    /// 0 published; 1 runtime failure; 2 invalid pipeline or arguments; 3 blocked by a gate.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Compile(_) => 2,
            Error::Run(err) => err.exit_code(),
            Error::Backfill(err) => err.source.exit_code(),
            Error::Usage(_) => 2,
            Error::Generate(_) => 1,
            Error::UnitTest(err) => err.exit_code(),
            Error::TestsFailed(_) => 1,
        }
    }
}
