//! Fixture projects in temporary folders, and running the segflow binary on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Project {
    pub dir: tempfile::TempDir,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Project {
    /// The small hand-made project under tests/fixtures/mini.
    pub fn mini() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures/mini"), dir.path());
        Self { dir }
    }

    /// A hand-made project under tests/fixtures (mini, segs, stories, …).
    pub fn fixture(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures").join(name), dir.path());
        Self { dir }
    }

    /// A fixture in a temporary folder whose name starts with `prefix`.
    pub fn fixture_in(name: &str, prefix: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures").join(name), dir.path());
        Self { dir }
    }

    /// The multi-day segments project under tests/fixtures/segs.
    pub fn segs() -> Self {
        Self::fixture("segs")
    }

    /// Rows of a query over the published output, run by DuckDB (`{out}` is the pipeline's
    /// published folder), as JSON lines.
    pub fn duckdb(&self, pipeline: &str, sql: &str) -> Vec<String> {
        let out = self.path(&format!("out/{pipeline}"));
        let sql = sql.replace("{out}", &out.to_string_lossy());
        let script = format!(
            "import duckdb, json\nfor row in duckdb.sql({sql:?}).fetchall():\n    print(json.dumps([str(v) if v is not None else None for v in row]))"
        );
        python(&script).lines().map(str::to_string).collect()
    }

    /// The repository's example pipeline and SQL, reading the committed sample data.
    pub fn sample() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo().join("pipelines"), &dir.path().join("pipelines"));
        copy_dir(&repo().join("sql"), &dir.path().join("sql"));
        std::os::unix::fs::symlink(repo().join("data"), dir.path().join("data")).unwrap();
        Self { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, content: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // The sample project's data is the repository's, linked: never written through.
        let folder = path.parent().unwrap().canonicalize().unwrap();
        assert!(
            !folder.starts_with(repo().canonicalize().unwrap()),
            "{relative} is the repository's file; write the project's own copy instead"
        );
        std::fs::write(path, content).unwrap();
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
    }

    /// Replaces `from` with `to` in a project file, checking `from` was there.
    pub fn edit(&self, relative: &str, from: &str, to: &str) {
        let text = self.read(relative);
        assert!(text.contains(from), "{relative} does not contain {from:?}");
        self.write(relative, &text.replacen(from, to, 1));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        // A temporary folder of the project's own, where a test sees what segflow leaves.
        let temp = self.path("tmp");
        std::fs::create_dir_all(&temp).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_segflow"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SEGFLOW_FAILPOINT")
            .env("SEGFLOW_LOG", "warn")
            .env("TMPDIR", temp);
        command
    }

    /// What segflow processes left in the temporary folder.
    pub fn temporary_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path("tmp"))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn segflow(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs segflow and asserts it succeeded, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.segflow(args);
        assert!(
            out.status.success(),
            "segflow {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs segflow expecting exit `code`; returns stderr with the project folder hidden.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.segflow(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "segflow {args:?}:\n{stderr}");
        self.hide_paths(&stderr)
    }

    pub fn hide_paths(&self, text: &str) -> String {
        let root = self.dir.path().to_string_lossy().into_owned();
        let canonical = self
            .dir
            .path()
            .canonicalize()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        text.replace(&canonical, "[PROJECT]")
            .replace(&root, "[PROJECT]")
    }

    /// Snapshot settings hiding this project's folder.
    pub fn settings(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        for dir in [
            self.dir.path().canonicalize().unwrap(),
            self.dir.path().to_owned(),
        ] {
            let text = dir.to_string_lossy().into_owned();
            settings.add_filter(&regex_escape(&text), "[PROJECT]");
        }
        settings
    }

    pub fn json(&self, relative: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(relative)).unwrap()
    }

    /// `segflow explain PIPELINE --key KEY --date DATE --json`, parsed.
    pub fn explain_json(&self, pipeline: &str, key: &str, date: &str) -> serde_json::Value {
        let args = ["explain", pipeline, "--key", key, "--date", date, "--json"];
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

/// Snapshots a segflow command run in `$project`: its exit code, stdout and stderr together,
/// with the project folder hidden.
macro_rules! cli_snapshot {
    ($project:expr, $args:expr) => {
        $project
            .settings()
            .bind(|| insta_cmd::assert_cmd_snapshot!($project.command($args)))
    };
}
pub(crate) use cli_snapshot;

/// Runs a Python snippet (pyarrow installed by .ci/run) and returns its stdout.
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed (install the test requirements: pip install -r tests/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
