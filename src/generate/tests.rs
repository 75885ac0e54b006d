use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use chrono::{Datelike, NaiveDate, TimeDelta};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

const CUSTOMERS: u64 = 200;
const DAYS: u32 = 60;

fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
}

fn options(out: &Path, seed: u64) -> GenerateOptions {
    GenerateOptions {
        customers: CUSTOMERS,
        days: DAYS,
        seed,
        start: start(),
        out: out.to_owned(),
    }
}

fn generated(seed: u64) -> (tempfile::TempDir, GenerateSummary) {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&options(dir.path(), seed)).unwrap();
    (dir, summary)
}

/// Rows of a CSV file as maps from column name to value (enough CSV for what the generator
/// writes: quoted fields without embedded newlines).
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = split_csv(lines.next().unwrap());
    lines
        .map(|line| {
            let fields = split_csv(line);
            assert_eq!(fields.len(), header.len(), "{}: {line}", path.display());
            header.iter().cloned().zip(fields).collect()
        })
        .collect()
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn date(s: &str) -> NaiveDate {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} is not a date: {e}"))
}

struct EventRow {
    customer_id: i64,
    time: chrono::NaiveDateTime,
    event_type: String,
    channel: Option<String>,
    product: Option<String>,
    outcome: Option<String>,
    address_id: Option<i64>,
    folder: (i32, u32),
}

fn read_events(summary: &GenerateSummary) -> Vec<EventRow> {
    let mut rows = Vec::new();
    for path in summary
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
    {
        let month_dir = path.parent().unwrap();
        let month: u32 = month_dir.file_name().unwrap().to_str().unwrap()["month=".len()..]
            .parse()
            .unwrap();
        let year: i32 = month_dir
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()["year=".len()..]
            .parse()
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            let ids = column("customer_id");
            let ids = ids.as_primitive::<Int64Type>();
            let times = column("event_time");
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let types = column("event_type");
            let types = types.as_string::<i32>();
            let channels = column("channel");
            let channels = channels.as_string::<i32>();
            let products = column("product");
            let products = products.as_string::<i32>();
            let outcomes = column("outcome");
            let outcomes = outcomes.as_string::<i32>();
            let addresses = column("address_id");
            let addresses = addresses.as_primitive::<Int64Type>();
            let text = |a: &datafusion::arrow::array::StringArray, i: usize| {
                (!a.is_null(i)).then(|| a.value(i).to_owned())
            };
            for i in 0..batch.num_rows() {
                rows.push(EventRow {
                    customer_id: ids.value(i),
                    time: chrono::DateTime::from_timestamp_micros(times.value(i))
                        .unwrap()
                        .naive_utc(),
                    event_type: types.value(i).to_owned(),
                    channel: text(channels, i),
                    product: text(products, i),
                    outcome: text(outcomes, i),
                    address_id: (!addresses.is_null(i)).then(|| addresses.value(i)),
                    folder: (year, month),
                });
            }
        }
    }
    rows
}

fn relative_files(root: &Path, summary: &GenerateSummary) -> Vec<(String, Vec<u8>)> {
    summary
        .files
        .iter()
        .map(|p| {
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, std::fs::read(p).unwrap())
        })
        .collect()
}

#[test]
fn same_seed_gives_byte_identical_files() {
    let (a, summary_a) = generated(7);
    let (b, summary_b) = generated(7);
    let files_a = relative_files(a.path(), &summary_a);
    let files_b = relative_files(b.path(), &summary_b);
    assert_eq!(files_a.len(), files_b.len());
    for ((name_a, bytes_a), (name_b, bytes_b)) in files_a.iter().zip(&files_b) {
        assert_eq!(name_a, name_b);
        assert!(
            bytes_a == bytes_b,
            "{name_a} differs between two runs with the same seed"
        );
    }
    assert_eq!(summary_a.interactions, summary_b.interactions);
}

#[test]
fn another_seed_gives_other_data() {
    let (a, _) = generated(7);
    let (b, _) = generated(8);
    let read =
        |dir: &tempfile::TempDir| std::fs::read(dir.path().join("crm/customers.csv")).unwrap();
    assert_ne!(read(&a), read(&b));
}

#[test]
fn row_counts_match_the_summary() {
    let (dir, summary) = generated(1);
    let crm = dir.path().join("crm");
    let customers = read_csv(&crm.join("customers.csv"));
    assert_eq!(customers.len() as u64, CUSTOMERS);
    let ids: Vec<i64> = customers
        .iter()
        .map(|c| c["customer_id"].parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=CUSTOMERS as i64).collect::<Vec<_>>());
    assert_eq!(
        read_csv(&crm.join("address_changes.csv")).len() as u64,
        summary.address_changes
    );
    assert_eq!(
        read_csv(&crm.join("holdings.csv")).len() as u64,
        summary.holdings
    );
    assert_eq!(read_events(&summary).len() as u64, summary.interactions);
    assert!(summary.address_changes >= CUSTOMERS);
    assert!(
        summary.holdings > CUSTOMERS,
        "most customers hold a product or two"
    );
    assert!(
        summary.interactions > 10 * CUSTOMERS,
        "expected a few dozen interactions per customer over two months, got {}",
        summary.interactions
    );
}

#[test]
fn every_event_is_in_the_window_in_its_month_folder_and_of_a_known_customer() {
    let (_dir, summary) = generated(2);
    let end = start() + TimeDelta::days(i64::from(DAYS));
    let known_types = [
        "purchase",
        "web_visit",
        "app_visit",
        "email_send",
        "email_open",
        "email_click",
        "sms_send",
        "support_call",
        "complaint",
        "technician_visit",
        "unsubscribe",
    ];
    let mut seen_types = HashSet::new();
    for event in read_events(&summary) {
        let day = event.time.date();
        assert!(
            day >= start() && day < end,
            "event on {day} is outside the window"
        );
        assert_eq!(
            (day.year(), day.month()),
            event.folder,
            "event on {day} filed in the wrong month"
        );
        assert!((1..=CUSTOMERS as i64).contains(&event.customer_id));
        assert!(
            known_types.contains(&event.event_type.as_str()),
            "{}",
            event.event_type
        );
        seen_types.insert(event.event_type);
    }
    for kind in [
        "purchase",
        "web_visit",
        "email_send",
        "email_open",
        "support_call",
    ] {
        assert!(seen_types.contains(kind), "no {kind} events at all");
    }
}

#[test]
fn every_customer_has_an_address_from_before_signup() {
    let (dir, _) = generated(3);
    let crm = dir.path().join("crm");
    let signup: HashMap<String, NaiveDate> = read_csv(&crm.join("customers.csv"))
        .into_iter()
        .map(|c| (c["customer_id"].clone(), date(&c["signup_date"])))
        .collect();
    let mut first_move_in: HashMap<String, NaiveDate> = HashMap::new();
    let mut address_ids = HashSet::new();
    for a in read_csv(&crm.join("address_changes.csv")) {
        assert!(
            address_ids.insert(a["address_id"].clone()),
            "address_id {} repeats",
            a["address_id"]
        );
        let moved_in = date(&a["moved_in_on"]);
        first_move_in
            .entry(a["customer_id"].clone())
            .and_modify(|d| *d = (*d).min(moved_in))
            .or_insert(moved_in);
    }
    for (id, signed_up) in &signup {
        let moved_in = first_move_in
            .get(id)
            .unwrap_or_else(|| panic!("customer {id} has no address"));
        assert!(
            moved_in <= signed_up,
            "customer {id} moved in on {moved_in}, after signing up on {signed_up}"
        );
    }
}

#[test]
fn fibre_is_only_held_where_the_address_has_it() {
    let (dir, _) = generated(4);
    let crm = dir.path().join("crm");
    let mut addresses: BTreeMap<String, Vec<(NaiveDate, bool)>> = BTreeMap::new();
    for a in read_csv(&crm.join("address_changes.csv")) {
        addresses
            .entry(a["customer_id"].clone())
            .or_default()
            .push((date(&a["moved_in_on"]), a["fiber_available"] == "true"));
    }
    let mut fibre_holdings = 0;
    for h in read_csv(&crm.join("holdings.csv"))
        .into_iter()
        .filter(|h| h["product"] == "internet_fiber")
    {
        fibre_holdings += 1;
        let started = date(&h["started_on"]);
        let fiber_then = addresses[&h["customer_id"]]
            .iter()
            .filter(|(moved_in, _)| *moved_in <= started)
            .max_by_key(|(moved_in, _)| *moved_in)
            .map(|&(_, fiber)| fiber);
        assert_eq!(
            fiber_then,
            Some(true),
            "customer {} got fibre on {started} without coverage",
            h["customer_id"]
        );
        if !h["ended_on"].is_empty() {
            assert!(date(&h["ended_on"]) > started);
        }
    }
    assert!(fibre_holdings > 0);
}

#[test]
fn unsubscribes_and_failed_satellite_visits_are_consistent_with_the_crm() {
    let (dir, summary) = generated(5);
    let crm = dir.path().join("crm");
    let customers: HashMap<i64, HashMap<String, String>> = read_csv(&crm.join("customers.csv"))
        .into_iter()
        .map(|c| (c["customer_id"].parse().unwrap(), c))
        .collect();
    let line_of_sight: HashMap<i64, bool> = read_csv(&crm.join("address_changes.csv"))
        .into_iter()
        .map(|a| {
            (
                a["address_id"].parse().unwrap(),
                a["satellite_line_of_sight"] == "true",
            )
        })
        .collect();
    for event in read_events(&summary) {
        match event.event_type.as_str() {
            "unsubscribe" => {
                let channel = event.channel.expect("an unsubscribe names its channel");
                let consent = &customers[&event.customer_id][&format!("consent_{channel}")];
                assert_eq!(
                    consent, "false",
                    "customer {} unsubscribed from {channel}",
                    event.customer_id
                );
            }
            "technician_visit" => {
                let address = event
                    .address_id
                    .expect("a technician visit names the address");
                assert!(line_of_sight.contains_key(&address));
                if event.outcome.as_deref() == Some("not_serviceable") {
                    assert_eq!(event.product.as_deref(), Some("satellite_tv"));
                    assert!(
                        !line_of_sight[&address],
                        "satellite refused at address {address} with line of sight"
                    );
                }
            }
            _ => {}
        }
    }
}

#[test]
fn a_shorter_rerun_removes_months_it_no_longer_covers() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 9);
    generate(&opts).unwrap();
    assert!(
        dir.path()
            .join("events/year=2026/month=3/part-00000.parquet")
            .exists()
    );
    opts.days = 10;
    let summary = generate(&opts).unwrap();
    assert!(!dir.path().join("events/year=2026/month=3").exists());
    let months = summary
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert_eq!(months, 1);
}

#[test]
fn rejects_empty_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), 1);
    opts.customers = 0;
    assert!(matches!(generate(&opts), Err(GenerateError::NoCustomers)));
    opts.customers = 1;
    opts.days = 0;
    assert!(matches!(
        generate(&opts),
        Err(GenerateError::DaysOutOfRange(0))
    ));
}

#[test]
fn large_months_continue_in_further_parts_with_the_same_rows() {
    let (_whole_dir, whole) = generated(6);
    let split_dir = tempfile::tempdir().unwrap();
    let split = generate_in_files_of(&options(split_dir.path(), 6), 1_000).unwrap();
    assert!(
        split
            .files
            .iter()
            .any(|p| p.ends_with("part-00001.parquet")),
        "expected a second part in some month: {:?}",
        split.files
    );
    let fingerprint = |rows: Vec<EventRow>| {
        rows.into_iter()
            .map(|e| (e.customer_id, e.time, e.event_type, e.folder))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fingerprint(read_events(&whole)),
        fingerprint(read_events(&split))
    );
    assert_eq!(split.interactions, whole.interactions);
}
