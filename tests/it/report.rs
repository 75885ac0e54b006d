//! The run's page opened in a real browser (headless Chromium): it renders without console
//! errors or outside fetches, a screenshot is taken at 1280×800, and the figures it shows equal
//! the counts an independent reader (DuckDB) finds in the published files.

use std::path::Path;
use std::process::Command;

use crate::support::{Project, python};

/// The Chromium binary: `$CHROMIUM`, or Debian's `chromium` (installed by `.ci/run`).
fn chromium() -> String {
    let candidates = std::env::var("CHROMIUM").into_iter().chain(
        ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .map(String::from),
    );
    for candidate in candidates {
        let found = Command::new(&candidate).arg("--version").output();
        if found.is_ok_and(|out| out.status.success()) {
            return candidate;
        }
    }
    panic!(
        "the report tests need headless Chromium: `apt-get install chromium` (what .ci/run does), \
         or set CHROMIUM to a Chrome or Chromium binary"
    );
}

/// Runs headless Chromium on a local page with `args`; returns (stdout, stderr).
fn browse(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new("timeout")
        .arg("180")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "chromium failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
}

/// Width and height of a PNG, from its header.
fn png_size(file: &Path) -> (u32, u32) {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", file.display());
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn the_report_renders_in_chromium_and_shows_the_files_counts() {
    let p = Project::sample();
    for date in ["2026-11-19", "2026-11-20"] {
        p.ok(&["run", "daily_segments", "--date", date]);
    }
    let run = p.path("out/daily_segments/runs/run_date=2026-11-20");
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no script, nothing fetched from anywhere.
    for outside in [
        "<script",
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
    ] {
        assert!(!html.contains(outside), "the page holds `{outside}`");
    }

    let profile = p.path("chromium-profile");
    let (dom, log) = browse(&page, &profile, &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let dom_file = p.path("dom.html");
    std::fs::write(&dom_file, &dom).unwrap();

    let shot = p.path("report.png");
    browse(
        &page,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--hide-scrollbars",
        ],
    );
    assert_eq!(png_size(&shot), (1280, 800));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 20_000,
        "a blank screenshot"
    );
    // Kept for people to look at after the tests.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-1280x800.png");
    std::fs::copy(&shot, keep).unwrap();

    // Every figure the page marks up, against the published files.
    let checked = python(&format!(
        r#"
import json, re, duckdb
run, dom = {run:?}, open({dom:?}).read()
def shown(kind, value):
    pairs = re.findall(r'data-' + kind + r'="([^"]*)" data-' + value + r'="([^"]*)"', dom)
    assert pairs, "the page shows no " + kind
    return dict(pairs)
def count(sql):
    return dict((str(k), str(v)) for k, v in duckdb.sql(sql.replace("{{run}}", run)).fetchall())

sizes = count("select segment, count(*) from read_parquet('{{run}}/audiences/*/*.parquet') group by 1")
assert shown("segment", "size") == sizes, (shown("segment", "size"), sizes)

offers = count("select offer, count(distinct customer_id) from read_parquet('{{run}}/offers/*.parquet') group by 1")
page_offers = {{k: v for k, v in shown("offer", "assigned").items() if v != "0"}}
assert page_offers == offers, (page_offers, offers)

held = count("select suppression, count(*) from read_parquet('{{run}}/suppressed/*.parquet') group by 1")
page_held = {{k: v for k, v in shown("suppression", "held").items() if v != "0"}}
assert page_held == held, (page_held, held)

manifest = json.load(open(run + "/manifest.json"))
rows = shown("output", "rows")
for output in manifest["outputs"]:
    path = run + "/" + output["path"]
    files = path if path.endswith(".parquet") else path + "/*.parquet"
    n = duckdb.sql(f"select count(*) from read_parquet('{{files}}')").fetchall()[0][0]
    assert rows[output["path"]] == str(n), (output["path"], rows[output["path"]], n)
assert len(rows) == len(manifest["outputs"])

statuses = shown("check", "status")
assert statuses == {{c["name"]: c["status"] for c in manifest["checks"]}}, statuses
print(len(sizes), len(offers), len(held), len(rows), len(statuses))
"#,
        run = run.display().to_string(),
        dom = dom_file.display().to_string(),
    ));
    let counts: Vec<usize> = checked
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");

    // The index links every run.
    let index = p.read("out/daily_segments/index.html");
    for date in ["2026-11-19", "2026-11-20"] {
        assert!(
            index.contains(&format!("runs/run_date={date}/report.html")),
            "{index}"
        );
    }
}

#[test]
fn a_blocked_run_gets_a_page_saying_why_and_report_rebuilds_it() {
    let p = Project::sample();
    // A breaker that today's sample cannot pass: at most 0% of an audience may leave.
    p.ok(&["run", "daily_segments", "--date", "2026-11-19"]);
    p.edit(
        "pipelines/daily_segments.yaml",
        "max_removed_percent: 50,",
        "max_removed_percent: 0,",
    );
    p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 3);
    let blocked = p.path("out/daily_segments/blocked/run_date=2026-11-20/report.html");
    let html = std::fs::read_to_string(&blocked).unwrap();
    assert!(
        html.contains("Nothing was published for 2026-11-20"),
        "{html}"
    );
    assert!(html.contains("class=\"failed\""), "{html}");
    let index = p.read("out/daily_segments/index.html");
    assert!(
        index.contains("blocked/run_date=2026-11-20/report.html"),
        "{index}"
    );

    std::fs::remove_file(&blocked).unwrap();
    let rebuilt = p.ok(&["report", "daily_segments", "--date", "2026-11-20"]);
    assert!(
        rebuilt.contains("blocked/run_date=2026-11-20/report.html"),
        "{rebuilt}"
    );
    assert_eq!(std::fs::read_to_string(&blocked).unwrap(), html);
}

#[test]
fn report_for_a_date_without_a_run_names_the_dates_there_are() {
    let p = Project::segs();
    // Nothing published yet: said, and nothing written.
    let err = p.fails(&["report", "pipelines/segs.yaml"], 2);
    assert!(err.contains("no run is published yet"), "{err}");
    assert!(!p.path("out").exists());
    p.ok(&["run", "pipelines/segs.yaml", "--date", "2026-11-01"]);
    p.ok(&["run", "pipelines/segs.yaml", "--date", "2026-11-03"]);
    let err = p.fails(
        &["report", "pipelines/segs.yaml", "--date", "2026-10-01"],
        2,
    );
    assert!(
        err.contains("no run is published or blocked for 2026-10-01 (published: 2026-11-01 to 2026-11-03, 2 dates; blocked: none)"),
        "{err}"
    );
}

/// A page rebuilt for an earlier date showed each offer's capacity as the pipeline says today
/// ("300% of 100" after a capacity was lowered); the run's manifest now keeps it.
#[test]
fn a_rebuilt_page_shows_the_capacity_the_run_had() {
    let p = Project::sample();
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let page = "out/daily_segments/runs/run_date=2026-11-20/report.html";
    let before = p.read(page);
    assert!(before.contains("% of 300</td>"), "{before}");
    p.edit(
        "pipelines/daily_segments.yaml",
        "capacity: 300",
        "capacity: 100",
    );
    p.ok(&["report", "daily_segments", "--date", "2026-11-20"]);
    let after = p.read(page);
    assert!(
        after.contains("% of 300</td>") && !after.contains("% of 100</td>"),
        "{after}"
    );
}
