//! Sources read over plain HTTP(S) from a real web server (Python's `http.server` on
//! 127.0.0.1): files work like local ones; a folder on a server that cannot list is refused
//! before the run starts (exit 2), at the source's line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::Project;

/// A web server for a folder, stopped when dropped.
struct WebServer {
    child: Child,
    url: String,
}

impl WebServer {
    fn serve(folder: &std::path::Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(folder)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .unwrap_or_else(|| panic!("no port in {line:?}"))
            .to_string();
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn csv_sources_over_http_publish_what_local_files_do() {
    let local = Project::sample();
    local.ok(&["run", "daily_segments", "--date", "2026-11-20"]);

    let p = Project::sample();
    let web = WebServer::serve(&p.path("data/sample"));
    let file = "pipelines/daily_segments.yaml";
    p.write(
        file,
        &p.read(file)
            .replace("uri: data/sample/crm/", &format!("uri: {}/crm/", web.url)),
    );
    p.ok(&["validate", "daily_segments"]);
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let count = |p: &Project| {
        p.duckdb(
            "daily_segments",
            "select segment, test_group, count(*) from read_parquet('{out}/runs/run_date=2026-11-20/audiences/*/*.parquet') group by all order by all",
        )
    };
    assert_eq!(count(&p), count(&local));

    // A folder needs a server that lists it; Python's does not speak WebDAV.
    p.edit(
        file,
        "uri: data/sample/events/",
        &format!("uri: {}/events/", web.url),
    );
    let err = p.fails(&["-q", "run", "daily_segments", "--date", "2026-11-21"], 2);
    assert!(
        err.contains("source interactions") && err.contains("WebDAV") && err.lines().count() == 1,
        "{err}"
    );
}
