//! What a run wrote, as its manifest lists it: each table's files, rows and schema.

use serde::{Deserialize, Serialize};

use super::{ColumnSchema, StoreError, WrittenFile};
use crate::objects::Folder;

/// One published table of the run: a folder of Parquet files (or one file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub kind: OutputKind,
    /// The folder (or file) relative to the run folder.
    pub path: String,
    pub rows: u64,
    pub files: Vec<WrittenFile>,
    pub schema: Vec<ColumnSchema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Model,
    Audience,
    Changes,
    Migration,
    Suppressed,
    Offers,
    Decisions,
    State,
}

/// Files written for one table, before they are named in the manifest.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) files: Vec<WrittenFile>,
    pub(crate) schema: Vec<ColumnSchema>,
}

impl Written {
    pub(crate) fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    pub(crate) fn into_output(self, name: &str, kind: OutputKind, path: &str) -> Output {
        Output {
            name: name.to_string(),
            kind,
            path: path.to_string(),
            rows: self.rows(),
            files: self.files,
            schema: self.schema,
        }
    }
}

/// Where one run reads and writes: the staged run folder (published), scratch space (never
/// published, always on this machine), and the folder of the previous published run it
/// compares with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunDirs<'a> {
    pub(crate) run_dir: &'a Folder,
    pub(crate) work_dir: &'a Folder,
    pub(crate) previous_run: Option<&'a Folder>,
}

impl RunDirs<'_> {
    /// A table of the previous run (e.g. `state/memberships`), when that run has it.
    pub(crate) async fn previous(&self, relative: &str) -> Result<Option<Folder>, StoreError> {
        let Some(run) = self.previous_run else {
            return Ok(None);
        };
        let table = run.join(relative);
        let exists = table
            .exists()
            .await
            .map_err(|source| StoreError::object("reading the previous run", &table, source))?;
        Ok(exists.then_some(table))
    }
}
