//! Careless and hostile input: every mistake is caught at its line, nothing wrong is published,
//! and no error prints a customer's data. Each test is named after what used to go wrong.

use crate::support::Project;

const MINI: &str = "pipelines/mini.yaml";
const SEGS: &str = "pipelines/segs.yaml";
const OFFERS: &str = "pipelines/offers.yaml";

#[test]
fn a_scope_naming_a_channel_nothing_uses_is_an_error_not_a_rule_that_holds_back_nobody() {
    let p = Project::fixture("offers");
    p.edit(
        OFFERS,
        "scope: { channels: [email] }",
        "scope: { channels: [emial] }",
    );
    let err = p.fails(&["validate", OFFERS], 2);
    assert!(
        err.contains("pipelines/offers.yaml:14:14:") && err.contains("no channel named \"emial\""),
        "{err}"
    );
    assert!(err.contains("channels: email, sms, mail"), "{err}");
}

#[test]
fn a_channel_listed_twice_is_an_error_not_every_row_published_twice() {
    let p = Project::fixture("offers");
    p.edit(OFFERS, "channels: [mail]", "channels: [mail, mail]");
    let err = p.fails(&["validate", OFFERS], 2);
    assert!(
        err.contains("pipelines/offers.yaml:41:")
            && err.contains(
                "offers.list.landline_bundle.channels: \"mail\" is listed twice; list each channel once"
            ),
        "{err}"
    );
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "        spent_over_100_today: spend_today > 100\n",
        "        spent_over_100_today: spend_today > 100\n      channels: [sms, email, sms]\n",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("segments.list.big_spenders.channels: \"sms\" is listed twice"),
        "{err}"
    );
}

#[test]
fn more_channels_than_a_set_of_channels_holds_is_an_error_not_a_wrong_audience() {
    let many: Vec<String> = (0..63).map(|i| format!("c{i}")).collect();
    let many = format!("channels: [{}]", many.join(", "));
    let p = Project::fixture("offers");
    p.edit(OFFERS, "channels: [mail]", &many);
    let err = p.fails(&["validate", OFFERS], 2);
    assert!(
        err.contains("offers.list.landline_bundle.channels: an offer reaches customers on at most 62 channels; this one lists 63"),
        "{err}"
    );
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "        spent_over_100_today: spend_today > 100\n",
        &format!("        spent_over_100_today: spend_today > 100\n      {many}\n"),
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains(
            "segments.list: segments reach customers on at most 62 channels in all; these name 63"
        ),
        "{err}"
    );
}

#[test]
fn an_empty_list_of_offers_or_segments_is_an_error_at_its_line_not_a_parser_error() {
    for (fixture, file, list, message) in [
        (
            "offers",
            OFFERS,
            "  list:\n    fiber_upgrade:",
            "offers.list: declare at least one offer, or remove `offers:`",
        ),
        (
            "segs",
            SEGS,
            "  list:\n",
            "segments.list: declare at least one segment, or remove `segments:`",
        ),
    ] {
        let p = Project::fixture(fixture);
        let text = p.read(file);
        let list = text.find(list).expect("the fixture has a list");
        let end = text.find("output:").expect("the fixture has an output");
        p.write(
            file,
            &format!("{}  list: {{}}\n{}", &text[..list], &text[end..]),
        );
        let err = p.fails(&["validate", file], 2);
        assert!(err.contains(message), "{err}");
    }
}

#[test]
fn an_empty_scope_is_an_error_not_a_rule_that_holds_back_nobody() {
    let p = Project::fixture("offers");
    p.edit(OFFERS, "scope: { channels: [email] }", "scope: {}");
    let err = p.fails(&["validate", OFFERS], 2);
    assert!(
        err.contains("an empty scope would hold back nobody"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_name_both_lines_instead_of_the_last_silently_winning() {
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "    quiet:\n",
        "    big_spenders:\n      description: again\n      conditions: { x: spend_today > 0 }\n    quiet:\n",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains(
            "pipelines/segs.yaml:16:5: segments.list.big_spenders: declared twice, first at line 12"
        ),
        "{err}"
    );

    let p = Project::mini();
    p.edit(
        MINI,
        "  min_spend: 10.0\n",
        "  min_spend: 10.0\n  min_spend: 20.0\n",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("params.min_spend: declared twice, first at line 4"),
        "{err}"
    );

    let p = Project::mini();
    p.edit(
        MINI,
        "models:",
        "  orders:\n    uri: data/customers.csv\n    format: csv\nmodels:",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("sources.orders: declared twice, first at line 11"),
        "{err}"
    );
}

#[test]
fn parameters_that_are_not_finite_numbers_are_refused() {
    let p = Project::mini();
    p.edit(MINI, "min_spend: 10.0", "min_spend: .nan");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("pipelines/mini.yaml:4:3: params.min_spend: give a finite number"),
        "{err}"
    );
    let p = Project::mini();
    for value in ["NaN", "inf", "-infinity"] {
        let param = format!("min_spend={value}");
        let err = p.fails(&["run", MINI, "--date", "2026-11-20", "--param", &param], 2);
        assert!(err.contains("expected a finite number"), "{err}");
    }
    assert!(!p.path("out").exists());
}

#[test]
fn split_weights_that_overflow_are_refused() {
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "      description: Bought nothing today\n",
        "      description: Bought nothing today\n      split: { salt: s, variants: { a: 4294967295, b: 4294967295 } }\n",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("segs.yaml:18:7: split.variants: the weights add up to 8589934590"),
        "{err}"
    );
}

#[test]
fn percentages_outside_their_range_are_refused_at_their_line() {
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "output:",
        "checks:\n  - { audience: \"*\", max_removed_percent: -5 }\n  - { audience: quiet, max_added_percent: .nan }\noutput:",
    );
    p.edit(
        SEGS,
        "    big_spenders:\n",
        "    big_spenders:\n      holdout: { percent: 120, salt: x }\n",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("holdout.percent: use a share between 0 and 100"),
        "{err}"
    );
    assert!(
        err.contains("checks[0].max_removed_percent: use a share between 0 and 100"),
        "{err}"
    );
    assert!(
        err.contains("checks[1].max_added_percent: use a share of 0 or more"),
        "{err}"
    );
}

#[test]
fn files_outside_the_partition_folders_block_the_run_instead_of_being_counted_and_skipped() {
    let p = Project::mini();
    let orders = p.read("data/orders/2026-11.json");
    std::fs::remove_file(p.path("data/orders/2026-11.json")).unwrap();
    p.write("data/orders/year=2026/2026-11.json", &orders);
    p.edit(
        MINI,
        "    format: ndjson",
        "    format: ndjson\n    partitioned_by: { year: int }",
    );
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    p.write("data/orders/late.json", &orders);
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/orders/late.json is not under the partition folders year=…"),
        "{err}"
    );
    let before = p.read("out/mini/latest.json");
    p.fails(&["run", MINI, "--date", "2026-11-21"], 3);
    assert_eq!(p.read("out/mini/latest.json"), before, "nothing published");
}

#[test]
fn a_score_that_is_text_is_refused_at_its_line_without_printing_customer_data() {
    let p = Project::fixture("offers");
    p.edit(OFFERS, "score: spend / 10", "score: CAST(spend AS VARCHAR)");
    let err = p.fails(&["validate", OFFERS], 2);
    assert!(
        err.contains("pipelines/offers.yaml:23:7: offer fiber_upgrade, score: `CAST(spend AS VARCHAR)` is Utf8View, not a number"),
        "{err}"
    );
    let err = p.fails(&["run", OFFERS, "--date", "2026-11-01"], 2);
    assert!(
        !err.contains("Ada") && !err.contains("Cannot cast"),
        "{err}"
    );
}

#[test]
fn a_key_the_profile_lacks_is_an_error_at_validate_not_at_run_time() {
    let p = Project::fixture("segs");
    p.edit(SEGS, "key: customer_id", "key: client_id");
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("pipelines/segs.yaml:10:3: segments.from: profile has no column client_id, the pipeline's key"),
        "{err}"
    );
}

#[test]
fn division_by_zero_names_the_segment_and_the_condition() {
    let p = Project::fixture("segs");
    p.edit(
        SEGS,
        "spent_over_100_today: spend_today > 100",
        "spent_over_100_today: CAST(spend_today AS BIGINT) / (customer_id - customer_id) > 100",
    );
    let err = p.fails(&["run", SEGS, "--date", "2026-11-04"], 1);
    assert!(
        err.contains(
            "pipelines/segs.yaml:15:9: segment big_spenders, condition spent_over_100_today: "
        ) && err.contains("Divide by zero"),
        "{err}"
    );
    assert!(!p.path("out/segs/runs").exists());
}

#[test]
fn dates_out_of_range_name_the_date_and_the_supported_range() {
    let p = Project::mini();
    let err = p.fails(&["run", MINI, "--date", "2263-01-01"], 2);
    assert!(
        err.contains("--date") && err.contains("between 1900-01-01 and 2199-12-31"),
        "{err}"
    );
    let err = p.fails(
        &[
            "backfill",
            MINI,
            "--from",
            "1850-01-01",
            "--to",
            "1850-01-02",
        ],
        2,
    );
    assert!(err.contains("between 1900-01-01 and 2199-12-31"), "{err}");
    // `2026-11-2` is as likely a typo of 2026-11-21 as of 2026-11-02: a rerun of the wrong
    // date would rebuild every date published after it.
    let err = p.fails(&["run", MINI, "--date", "2026-11-2"], 2);
    assert!(
        err.contains("expected a date like 2026-11-20, not \"2026-11-2\""),
        "{err}"
    );
    assert!(!p.path("out").exists());
}

#[test]
fn a_parameter_that_overflows_date_arithmetic_names_the_parameter() {
    let p = Project::sample();
    let args = [
        "run",
        "daily_segments",
        "--date",
        "2026-11-20",
        "--param",
        "lookback_days=100000000000",
    ];
    let err = p.fails(&args, 2);
    assert!(
        err.contains("model customer_profile overflowed computing dates or numbers with --date 2026-11-20 and --param lookback_days=100000000000"),
        "{err}"
    );
    assert!(!p.path("out/daily_segments/runs").exists());
}

#[test]
fn a_byte_order_mark_is_accepted_and_bytes_that_are_not_utf8_are_located() {
    let p = Project::mini();
    let text = p.read(MINI);
    p.write(MINI, &format!("\u{feff}{text}"));
    p.ok(&["validate", MINI]);
    let mut bytes = text.into_bytes();
    let at = bytes.iter().position(|b| *b == b'm').unwrap();
    bytes[at] = 0xE9;
    std::fs::write(p.path(MINI), bytes).unwrap();
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("pipelines/mini.yaml:1:11: the file is not UTF-8 text"),
        "{err}"
    );
}

#[test]
fn a_system_file_given_as_the_pipeline_is_not_echoed() {
    let p = Project::mini();
    p.write(
        "secrets.txt",
        "root:x:0:0:root:/root:/bin/bash\nmy-password: hunter2\n",
    );
    let err = p.fails(&["validate", "secrets.txt"], 2);
    assert!(
        !err.contains("hunter2") && !err.contains("/bin/bash"),
        "{err}"
    );
    assert!(err.contains("secrets.txt:"), "{err}");
}

#[test]
fn deeply_nested_yaml_is_rejected_with_a_clear_message() {
    let p = Project::mini();
    let deep = format!(
        "pipeline: x\nsources:\n  a: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    p.write("pipelines/deep.yaml", &deep);
    let err = p.fails(&["validate", "pipelines/deep.yaml"], 2);
    assert!(
        err.contains("pipelines/deep.yaml:3:") && err.contains("nests deeper than 32 levels"),
        "{err}"
    );
}

#[test]
fn a_run_that_never_ends_times_out_naming_the_model_and_publishes_nothing() {
    let p = Project::mini();
    p.ok(&["run", MINI, "--date", "2026-11-19"]);
    let before = p.read("out/mini/latest.json");
    // A recursive query that never stops.
    p.write(
        "sql/mini/spend.sql",
        "with recursive r(n) as (select 1 union all select n + 1 from r) \
         select n as customer_id, sum(n) as spend, count(*) as orders from r group by 1",
    );
    let err = p.fails(&["run", MINI, "--date", "2026-11-20", "--timeout", "3s"], 1);
    assert!(
        err.contains("took longer than --timeout 3s") && err.contains("model"),
        "{err}"
    );
    assert_eq!(p.read("out/mini/latest.json"), before);
    assert!(!p.path("out/mini/runs/run_date=2026-11-20").exists());
}

#[test]
fn a_secret_written_in_the_pipeline_is_refused_and_unknown_store_options_are_named() {
    let p = Project::mini();
    p.edit(
        MINI,
        "output:",
        "stores:\n  s3://bucket:\n    secret_access_key: hunter2\n    regoin: eu-west-1\n    region: eu-west-1\noutput:",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("mini.yaml:24:5: stores.s3://bucket.secret_access_key: a secret never goes in the pipeline file"),
        "{err}"
    );
    assert!(
        err.contains("stores.s3://bucket.regoin: not an option of s3:// stores"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    p.edit(
        MINI,
        "secret_access_key: hunter2",
        "secret_access_key: { env: MY_SECRET }",
    );
    p.edit(MINI, "    regoin: eu-west-1\n", "");
    p.ok(&["validate", MINI]);
    // One store serves a bucket: options for a folder of it are refused.
    p.edit(MINI, "  s3://bucket:\n", "  s3://bucket/exports/:\n");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("stores.s3://bucket/exports/: options are per bucket; write s3://bucket"),
        "{err}"
    );
}

#[test]
fn a_store_option_value_its_builder_refuses_is_named_at_its_line() {
    let p = Project::mini();
    p.edit(MINI, "uri: out/", "uri: s3://out/");
    p.edit(
        MINI,
        "output:",
        "stores:\n  s3://out:\n    region: eu-west-1\n    allow_http: maybe\noutput:",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("mini.yaml:25:5: stores.s3://out.allow_http: ")
            && err.contains("failed to parse \"maybe\" as boolean"),
        "{err}"
    );
}

#[test]
fn a_bad_datafusion_setting_in_the_environment_is_named_and_nothing_is_published() {
    let p = Project::mini();
    let run = |batch_size: &str| {
        p.command(&["-q", "run", MINI, "--date", "2026-11-20"])
            .env("DATAFUSION_EXECUTION_BATCH_SIZE", batch_size)
            .output()
            .unwrap()
    };
    let out = run("lots");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("DATAFUSION_EXECUTION_BATCH_SIZE=\"lots\" is not a valid value for DataFusion's datafusion.execution.batch_size"),
        "{err}"
    );
    assert!(!p.path("out/mini/latest.json").exists());
    assert!(run("1024").status.success());
}

#[test]
fn running_out_of_memory_names_the_step_and_suggests_a_limit_and_publishes_nothing() {
    let p = Project::sample();
    p.ok(&["-q", "run", "daily_segments", "--date", "2026-11-19"]);
    let before = p.read("out/daily_segments/latest.json");
    let args = [
        "-q",
        "run",
        "daily_segments",
        "--date",
        "2026-11-20",
        "--memory-limit",
        "64KiB",
    ];
    let err = p.fails(&args, 1);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("needs more memory than --memory-limit 64KiB allows")
            && first.contains("run it with --memory-limit 512MiB or more"),
        "{err}"
    );
    assert_eq!(p.read("out/daily_segments/latest.json"), before);
    assert!(
        !p.path("out/daily_segments/runs/run_date=2026-11-20")
            .exists()
    );
}

#[test]
fn a_profile_with_two_rows_for_a_customer_fails_the_run_instead_of_offering_twice() {
    let p = Project::fixture("offers");
    p.ok(&["run", OFFERS, "--date", "2026-11-01"]);
    let before = p.read("out/offers/latest.json");
    // Customer 1's row twice, and customer 2's three times.
    let customers = p.read("data/customers.csv");
    let extra =
        "1,900,true,false,true,false\n2,800,true,false,true,false\n2,800,true,false,true,false\n";
    p.write("data/customers.csv", &format!("{customers}{extra}"));
    let err = p.fails(&["run", OFFERS, "--date", "2026-11-02"], 1);
    assert!(
        err.contains("sql/offers/profile.sql: model profile has more than one row for 2 customer_id values (5 rows)")
            && err.contains("make profile return one row per customer_id"),
        "{err}"
    );
    assert_eq!(p.read("out/offers/latest.json"), before);
    assert!(!p.path("out/offers/runs/run_date=2026-11-02").exists());
}

/// One parameter in error is reported alone: the others stay known, so the SQL files using
/// them are not reported too ("unknown parameter $min_spend").
#[test]
fn a_parameter_in_error_leaves_the_others_known() {
    let p = Project::mini();
    p.edit(
        MINI,
        "  min_spend: 10.0\n",
        "  min_spend: 10.0\n  launch: \"2026-1-31\"\n",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("params.launch: give the date zero-padded, like 2026-01-05"),
        "{err}"
    );
    assert!(!err.contains("unknown parameter"), "{err}");
}

/// A model's columns must be its own: two of one name failed the run (exit 1) naming a table
/// of segflow's, and a published model's `run_date` replaced the run's date in its files.
#[test]
fn a_model_returning_a_name_twice_or_its_own_run_date_is_refused_at_its_line_whatever_the_case() {
    let p = Project::mini();
    let profile = "sql/mini/profile.sql";
    let text = p.read(profile);
    p.write(
        profile,
        &text.replace("    a.email,\n", "    a.email,\n    s.customer_id,\n"),
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("sql/mini/profile.sql:2:7: model profile: the query returns two columns named customer_id; name them apart"),
        "{err}"
    );
    p.write(
        profile,
        &text.replace(
            "    a.email,\n",
            "    a.email,\n    s.orders AS run_date,\n",
        ),
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("model profile: the query returns a column named run_date, which segflow writes into every published table"),
        "{err}"
    );
    // Names apart only by case: readers of Parquet that match names whatever their case
    // (DuckDB among them) took one for the other.
    p.write(
        profile,
        &text.replace(
            "    a.email,\n",
            "    a.email,\n    s.orders AS \"Email\",\n",
        ),
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("sql/mini/profile.sql:4:17: model profile: the query returns columns named email and Email, which most readers of Parquet (DuckDB, Spark, BigQuery) take for one column; name them apart"),
        "{err}"
    );
    p.write(
        profile,
        &text.replace(
            "    a.email,\n",
            "    a.email,\n    s.orders AS \"Run_Date\",\n",
        ),
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("model profile: the query returns a column named Run_Date, which readers that ignore case take for the run_date"),
        "{err}"
    );
}

/// A profile row without a key was left out of every audience and offer, with exit 0.
#[test]
fn a_profile_with_rows_without_a_key_fails_the_run_naming_how_many() {
    let p = Project::fixture("offers");
    let customers = p.read("data/customers.csv");
    let extra = ",900,true,false,true,false\n,800,true,false,true,false\n";
    p.write("data/customers.csv", &format!("{customers}{extra}"));
    let err = p.fails(&["run", OFFERS, "--date", "2026-11-01"], 1);
    assert!(
        err.contains("sql/offers/profile.sql: model profile has 2 rows without a customer_id")
            && err.contains("(WHERE customer_id IS NOT NULL)"),
        "{err}"
    );
    assert!(!p.path("out/offers/runs/run_date=2026-11-01").exists());
}

#[test]
fn a_sql_segment_returning_its_key_as_text_is_an_error_not_every_audience_keyed_by_text() {
    let p = Project::segs();
    p.write(
        "sql/segs/vip.sql",
        "select '0' || cast(customer_id as varchar) as customer_id from customers where vip",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("sql/segs/vip.sql:1:1: segment vip: the query returns customer_id as VARCHAR, where profile has BIGINT"),
        "{err}"
    );
    // An integer of another width is the same key.
    p.write(
        "sql/segs/vip.sql",
        "select cast(customer_id as int) as customer_id from customers where vip",
    );
    p.ok(&["validate", SEGS]);
}

#[test]
fn generate_refuses_impossible_arguments_with_exit_2() {
    let p = Project::mini();
    let err = p.fails(&["generate", "--customers", "0", "generated"], 2);
    assert!(err.contains("--customers must be at least 1"), "{err}");
    let err = p.fails(&["generate", "--days", "0", "generated"], 2);
    assert!(err.contains("--days must be between 1 and"), "{err}");
}

const SAMPLE: &str = "pipelines/daily_segments.yaml";

#[test]
fn a_salt_shared_with_an_earlier_group_is_an_error_not_an_empty_control_group() {
    let p = Project::sample();
    p.edit(SAMPLE, "salt: lapsing-2026", "salt: daily-2026");
    p.edit(SAMPLE, "salt: champions-ab-2026", "salt: daily-2026");
    p.edit(SAMPLE, "salt: fiber-2026", "salt: daily-2026");
    let err = p.fails(&["validate", "daily_segments"], 2);
    for line in [
        "segments.list.lapsing_high_value.holdout.salt: \"daily-2026\" is also the global holdout's salt; the same buckets would decide both groups, so this control group would come out smaller than asked, or empty. Give the holdout a salt of its own",
        "segments.list.champions.split.salt: \"daily-2026\" is also the global holdout's salt",
        "offers.list.fiber_upgrade.holdout.salt: \"daily-2026\" is also the global holdout's salt",
    ] {
        assert!(err.contains(line), "{line}\n{err}");
    }
    // segflow's own draws have their salts.
    let p = Project::sample();
    p.edit(
        SAMPLE,
        "salt: fiber-2026",
        "salt: segflow-capacity:fiber_upgrade",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("offers.list.fiber_upgrade.holdout.salt: \"segflow-capacity:fiber_upgrade\": salts starting with segflow- are segflow's own"),
        "{err}"
    );
    // A share smaller than one bucket would be no control group at all.
    let p = Project::sample();
    p.edit(
        SAMPLE,
        "{ percent: 10, salt: lapsing-2026 }",
        "{ percent: 0.004, salt: lapsing-2026 }",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("holdout.percent: 0.004 is less than one bucket (0.01%): the control group would be empty"),
        "{err}"
    );
    // Between two buckets, a share would be rounded to one of them.
    p.edit(SAMPLE, "{ percent: 0.004,", "{ percent: 33.3301,");
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("holdout.percent: 33.3301 is not a whole number of buckets, which are 0.01% each; use 33.33 or 33.34"),
        "{err}"
    );
    p.edit(SAMPLE, "{ percent: 33.3301,", "{ percent: 7.07,");
    p.ok(&["validate", "daily_segments"]);
}

#[test]
fn a_capacity_of_zero_is_refused_since_it_does_not_mean_no_limit() {
    let p = Project::sample();
    p.edit(SAMPLE, "capacity: 300", "capacity: 0");
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("pipelines/daily_segments.yaml:208:7: offers.list.fiber_upgrade.capacity: 0 gives the offer to nobody (it does not mean no limit)"),
        "{err}"
    );
    assert!(err.contains("leave capacity out for no limit"), "{err}");
}

#[test]
fn check_settings_that_would_do_nothing_are_errors() {
    let p = Project::sample();
    p.edit(
        SAMPLE,
        "  - { source: interactions, row_count: { min: 1000 } }",
        "  - { source: interactions, row_count: { min: 1000 }, max_failed_percent: 5 }\n  - { source: customers, accepted_values: { column: country, values: [] } }\n  - { source: customers, row_count: {} }\n  - { source: customers, accepted_values: { column: country, values: [FR, .nan] }, name: countries }\n  - { source: customers, sql: checks/missing.sql }\n  - { source: customers, row_count: { min: 1 }, name: audiences_circuit_breaker_lapsing_high_value }",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("checks[0].max_failed_percent: a row_count check has no share of failing rows to tolerate"),
        "{err}"
    );
    assert!(
        err.contains("checks[1].accepted_values.values: list at least one accepted value"),
        "{err}"
    );
    assert!(
        err.contains(
            "checks[2].row_count: give a min, a max or both (without them every count passes)"
        ),
        "{err}"
    );
    assert!(
        err.contains("checks[3].accepted_values.values: .nan and .inf are not values a column is compared with"),
        "{err}"
    );
    // A file that cannot be read is said once, not followed by "say what to check".
    assert!(err.contains("checks[4].sql"), "{err}");
    assert!(!err.contains("checks[4]: say what to check"), "{err}");
    // The breaker on every audience reports a result per audience, named after it.
    assert!(
        err.contains("checks[11]: two checks would report results named \"audiences_circuit_breaker_lapsing_high_value\""),
        "{err}"
    );
}

/// The mini project with a Parquet source of two monthly files, written by pyarrow; `second`
/// is the Python expression of the second file's table, given `t`, the first's.
fn two_monthly_files(second: &str) -> Project {
    let p = Project::mini();
    p.edit(
        MINI,
        "models:",
        "  events:\n    uri: data/events/\n    format: parquet\n    partitioned_by: { month: int }\n    columns: { customer_id: int, amount: double }\nmodels:",
    );
    let dir = p.path("data/events");
    crate::support::python(&format!(
        "import os, pyarrow as pa, pyarrow.parquet as pq\n\
         d = {dir:?}\n\
         for m in ('1', '2'): os.makedirs(os.path.join(d, 'month=' + m))\n\
         t = pa.table({{'customer_id': pa.array([1, 2], pa.int64()), 'amount': [10.0, 20.0]}})\n\
         pq.write_table(t, os.path.join(d, 'month=1', 'a.parquet'))\n\
         pq.write_table({second}, os.path.join(d, 'month=2', 'b.parquet'))\n"
    ));
    p
}

#[test]
fn a_column_one_file_lacks_is_a_contract_difference_not_nulls() {
    let p = two_monthly_files("t.rename_columns(['customer_id', 'amount_eur'])");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("file [PROJECT]/data/events/month=2/b.parquet: column amount is missing (the file has: customer_id, amount_eur)"),
        "{err}"
    );
    // A key stored as INT in one file and BIGINT in another is read as BIGINT from both.
    let p = two_monthly_files("t.set_column(0, 'customer_id', t.column(0).cast(pa.int32()))");
    p.ok(&["validate", MINI]);
    // Nor, undeclared, as the files store it: named, with how to read it.
    let p = two_monthly_files("t.set_column(1, 'amount', t.column(1).cast(pa.float32()))");
    p.edit(
        MINI,
        "columns: { customer_id: int, amount: double }",
        "columns: { customer_id: int }",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("column amount is Float64 in [PROJECT]/data/events/month=1/a.parquet but Float32 in [PROJECT]/data/events/month=2/b.parquet; declare it under `columns:`"),
        "{err}"
    );
    // Two kinds of one column cannot both be read as declared.
    let p = two_monthly_files("t.set_column(1, 'amount', t.column(1).cast(pa.string()))");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("column amount: the contract says double, the file has Utf8"),
        "{err}"
    );
}

#[test]
fn a_partition_folder_of_the_wrong_type_is_refused_naming_it() {
    let p = two_monthly_files("t");
    std::fs::rename(p.path("data/events/month=2"), p.path("data/events/month=x")).unwrap();
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains(
            "month=x/b.parquet: folder month=x is not an int, as partitioned_by declares month"
        ),
        "{err}"
    );
    // Zero-padded, it reads as 2, yet a filter `month = 2` would list `month=2` only.
    std::fs::rename(
        p.path("data/events/month=x"),
        p.path("data/events/month=02"),
    )
    .unwrap();
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("month=02/b.parquet: folder month=02 is written otherwise than SQL writes the int 2, so a filter `month = 2` would skip its files; rename it month=2"),
        "{err}"
    );
    // A column of the files named like a partition: two columns of one name.
    let p = two_monthly_files("t.append_column('month', pa.array([2, 2], pa.int64()))");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains(
            "the files hold a column month, which partitioned_by also reads from their folders"
        ),
        "{err}"
    );
}

/// A source reads the files whose names end with its extension: a file meant to be read
/// (`b.CSV`, `b.csv.gz`) had its rows left out of the run with exit 0.
#[test]
fn a_file_of_a_source_named_otherwise_than_its_extension_is_named_not_skipped() {
    let p = Project::mini();
    let customers = p.read("data/customers.csv");
    std::fs::create_dir(p.path("data/customers")).unwrap();
    p.write("data/customers/a.csv", &customers);
    p.write("data/customers/_SUCCESS", "");
    p.edit(MINI, "uri: data/customers.csv", "uri: data/customers/");
    p.ok(&["validate", MINI]);
    p.write("data/customers/b.CSV", &customers);
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/customers/b.CSV: not read, as its name does not end with .csv; rename it to end with .csv"),
        "{err}"
    );
    std::fs::remove_file(p.path("data/customers/b.CSV")).unwrap();
    p.write("data/customers/b.csv.gz", "");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/customers/b.csv.gz: not read, as its name does not end with .csv; it is compressed"),
        "{err}"
    );
}

#[test]
fn csv_files_listing_columns_in_another_order_are_refused_not_read_by_position() {
    let p = Project::mini();
    let customers = p.read("data/customers.csv");
    std::fs::create_dir(p.path("data/customers")).unwrap();
    p.write("data/customers/a.csv", &customers);
    p.write(
        "data/customers/b.csv",
        "customer_id,signup_date,email,country\n9,2026-03-01,x@example.com,GB\n",
    );
    p.edit(MINI, "uri: data/customers.csv", "uri: data/customers/");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("b.csv: its columns are customer_id, signup_date, email, country where")
            && err.contains("a.csv has customer_id, email, signup_date, country; every CSV file of a source lists the same columns in the same order"),
        "{err}"
    );
    assert!(!err.contains("x@example.com"), "{err}");
}

#[test]
fn an_object_store_uri_with_a_fragment_is_refused_not_read_elsewhere() {
    let p = Project::mini();
    p.edit(MINI, "uri: out/", "uri: \"s3://bucket/team#2/\"");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("has a `#` or `?`, which a URL reads as the end of its path"),
        "{err}"
    );
}

#[test]
fn an_erased_customer_is_in_no_check_sample_and_no_explanation() {
    // Customer 17, in the sample's erasure requests, lives in GB: a check accepting other
    // countries fails on their CRM row.
    let p = Project::sample();
    p.edit(
        SAMPLE,
        "  - { source: interactions, row_count: { min: 1000 } }",
        "  - { source: interactions, row_count: { min: 1000 } }\n  - { source: customers, accepted_values: { column: country, values: [FR, IE, ES, NL, DE] }, severity: warn }",
    );
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let sampled = p.duckdb(
        "daily_segments",
        "select count(*), count(*) filter (where customer_id in (17, 2048)) \
         from read_parquet('{out}/runs/run_date=2026-11-20/checks/customers_accepted_values/*.parquet')",
    );
    assert_eq!(sampled, ["[\"100\", \"0\"]"]);
    let text = p.ok(&[
        "explain",
        "daily_segments",
        "--key",
        "17",
        "--date",
        "2026-11-20",
    ]);
    assert!(
        text.contains("erased: the customer asked to be forgotten") && !text.contains("member"),
        "{text}"
    );
    let json = p.explain_json("daily_segments", "17", "2026-11-20");
    assert_eq!(json["erased"], true);
    assert_eq!(json["found"], false);
    assert_eq!(json["segments"].as_array().map(Vec::len), Some(0));
    // Text is never a whole-number key: a usage error, not "not found".
    let err = p.fails(&["explain", "daily_segments", "--key", "abc"], 2);
    assert!(
        err.contains("--key abc: customer_id is a whole number in customer_profile"),
        "{err}"
    );
}

#[test]
fn csv_identifiers_with_a_leading_zero_stay_text_not_numbers() {
    let p = Project::mini();
    p.write(
        "data/customers.csv",
        "customer_id,email,signup_date,country,postcode\n\
         1,ada@example.com,2026-01-05,GB,02134\n\
         2,bob@example.com,2026-02-10,GB,10001\n\
         3,cy@example.com,2026-03-01,IE,00501\n",
    );
    p.edit(
        "sql/mini/active.sql",
        "select customer_id, email, signup_date",
        "select customer_id, email, signup_date, postcode",
    );
    p.edit(
        "sql/mini/profile.sql",
        "    a.email,",
        "    a.email,\n    a.postcode,",
    );
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let postcodes = p.duckdb(
        "mini",
        "select postcode, typeof(postcode) from read_parquet('{out}/runs/run_date=2026-11-20/models/profile/*.parquet') order by customer_id",
    );
    assert_eq!(
        postcodes,
        [
            r#"["02134", "VARCHAR"]"#,
            r#"["10001", "VARCHAR"]"#,
            r#"["00501", "VARCHAR"]"#
        ]
    );
}

/// CRM exports quote values that hold line breaks (an address, a note). Such a file is read
/// whole, never in byte ranges that could start inside a value, and its types are inferred from
/// whole records.
#[test]
fn csv_values_holding_line_breaks_are_read_whole() {
    let p = Project::mini();
    let note = |id: usize| format!("called {id}\nno answer, twice\nleft a note\n\"call back\"");
    let mut text = "customer_id,email,signup_date,notes\n".to_string();
    for id in 1..=3000 {
        let quoted = note(id).replace('"', "\"\"");
        text += &format!("{id},c{id}@example.com,2026-01-05,\"{quoted}\"\n");
    }
    p.write("data/customers.csv", &text);
    p.edit(
        "sql/mini/active.sql",
        "select customer_id, email, signup_date",
        "select customer_id, email, signup_date, notes",
    );
    p.edit(
        "sql/mini/profile.sql",
        "    a.email,",
        "    a.email,\n    a.notes,",
    );
    let out = p
        .command(&["run", MINI, "--date", "2026-11-20"])
        // DataFusion would split any file into four byte ranges.
        .env("DATAFUSION_OPTIMIZER_REPARTITION_FILE_MIN_SIZE", "1")
        .env("DATAFUSION_EXECUTION_TARGET_PARTITIONS", "4")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let read = p.duckdb(
        "mini",
        "select count(*), count(distinct customer_id), max(customer_id) from read_parquet('{out}/runs/run_date=2026-11-20/models/profile/*.parquet')",
    );
    assert_eq!(read, [r#"["3000", "3000", "3000"]"#]);
    let notes = p.duckdb(
        "mini",
        "select customer_id, notes from read_parquet('{out}/runs/run_date=2026-11-20/models/profile/*.parquet') where customer_id in (1, 1500, 3000) order by 1",
    );
    let notes: Vec<Vec<String>> = (notes.iter())
        .map(|row| serde_json::from_str(row).unwrap())
        .collect();
    let expected: Vec<Vec<String>> = (["1", "1500", "3000"].iter())
        .map(|id| vec![id.to_string(), note(id.parse().unwrap())])
        .collect();
    assert_eq!(notes, expected);
}

/// A line of a CSV file's first MiB that is not a record of the file is named as one further
/// down is: file, line (as an editor counts them), what is wrong; never its values.
#[test]
fn a_bad_csv_line_among_the_first_blocks_the_run_naming_file_and_line() {
    let p = Project::mini();
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let published = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");
    let header = "customer_id,email,signup_date,country\n";
    let note = "1,ada@example.com,2026-01-05,\"G\nB\"\n";
    p.write(
        "data/customers.csv",
        &format!("{header}{note}\n2,bob@example.com,2026-02-10,GB,secret\n"),
    );
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 5: not the 4 fields of the file's other lines"),
        "{err}"
    );
    assert!(!err.contains("secret") && !err.contains("bob"), "{err}");
    let mut latin1 = format!("{header}{note}").into_bytes();
    latin1.extend_from_slice(b"2,bob@example.com,2026-02-10,G\xe9B\n");
    std::fs::write(p.path("data/customers.csv"), latin1).unwrap();
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/customers.csv, line 4: text that is not UTF-8"),
        "{err}"
    );
    // A value the contract's type cannot read, which type inference saw.
    p.write(
        "data/customers.csv",
        &format!("{header}{note}2,bob@example.com,someday,GB\n"),
    );
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 4: column signup_date: the contract says date, the line holds something else"),
        "{err}"
    );
    assert!(!err.contains("someday") && !err.contains("Utf8"), "{err}");
    // A header naming a column twice.
    p.write(
        "data/customers.csv",
        "customer_id,email,signup_date,email\n1,a@example.com,2026-01-05,b@example.com\n",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/customers.csv, line 1: the header names column email twice; give each column a name of its own"),
        "{err}"
    );
    // Every line ending with a delimiter: an empty column without a name, which `SELECT *`
    // published as an all-NULL column named `C5`; and a name left out in the middle.
    p.write(
        "data/customers.csv",
        "customer_id,email,signup_date,country,\n1,a@example.com,2026-01-05,GB,\n",
    );
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 1: the header's last column has no name; name it, or end the lines without the `,` that ends them"),
        "{err}"
    );
    p.write(
        "data/customers.csv",
        "customer_id,email, ,country\n1,a@example.com,2026-01-05,GB\n",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("data/customers.csv, line 1: the header's column 3 has no name; name it"),
        "{err}"
    );
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        published
    );
}

/// A key left without a value reads as if it were not there: a scope whose list was commented
/// out would hold back everything, a feature's `where:` would count every event. Refused,
/// naming the key's line.
#[test]
fn a_pipeline_key_left_without_a_value_is_refused_at_its_line() {
    let p = Project::sample();
    let pipeline = "pipelines/daily_segments.yaml";
    p.edit(
        pipeline,
        "    scope: { offers: [landline_bundle] }",
        "    scope:\n    # { offers: [landline_bundle] }",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    let line = p
        .read(pipeline)
        .lines()
        .position(|l| l == "    scope:")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("daily_segments.yaml:{line}:5: suppressions.already_has_landline.scope: has no value; give it one, or remove the key")),
        "{err}"
    );
    assert!(
        err.contains("a rule without a scope holds back everything"),
        "{err}"
    );
    p.edit(pipeline, "    scope:\n    # {", "    scope: {");
    p.edit(
        pipeline,
        "    where: \"event_type IN ('email_send', 'sms_send', 'email_open', 'email_click', 'purchase')\"",
        "    where: ~",
    );
    let err = p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 2);
    assert!(
        err.contains("features.campaign_contacts.where: has no value"),
        "{err}"
    );
}

/// Consent rules hold channels back by their exact name: a segment activated through `Email`
/// or an offer through `e-mail` would reach customers without e-mail consent. Refused.
#[test]
fn a_channel_written_unlike_a_channel_name_is_refused() {
    let p = Project::sample();
    let pipeline = "pipelines/daily_segments.yaml";
    let original = p.read(pipeline);
    let text = original.replacen("channels: [email, mail]", "channels: [Email, mail]", 1);
    p.write(
        pipeline,
        &text.replace(
            "channels: [email, sms, push]",
            "channels: [e-mail, sms, push]",
        ),
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("segments.list.lapsing_high_value.channels: \"Email\" is not a channel name")
            && err.contains("offers.list.mobile_plan.channels: \"e-mail\" is not a channel name"),
        "{err}"
    );
    // A typo of a channel the pipeline declares.
    p.write(
        pipeline,
        &original.replacen("channels: [email, mail]", "channels: [emial, mail]", 1),
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("segments.list.lapsing_high_value.channels: \"emial\" is not one of the pipeline's channels (email, sms, push, mail, phone); did you mean email?"),
        "{err}"
    );
}

/// Without `channels:`, a typo of a channel a consent rule is scoped to (`emial`) is refused: the
/// rule holds back `email` by name, so the typo would reach everyone who withdrew consent. A
/// channel of its own that several lists name (`mail` beside `email`) stays valid.
#[test]
fn an_undeclared_channel_a_typo_away_from_a_consent_rules_is_refused() {
    let p = Project::sample();
    let pipeline = "pipelines/daily_segments.yaml";
    let undeclared =
        p.read(pipeline)
            .replacen("channels: [email, sms, push, mail, phone]\n", "", 1);
    p.write(pipeline, &undeclared);
    p.ok(&["validate", "daily_segments"]);
    p.write(
        pipeline,
        &undeclared.replacen("channels: [email, mail]", "channels: [emial, mail]", 1),
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("segments.list.lapsing_high_value.channels: no suppression is scoped to \"emial\", while email_consent_withdrawn, contact_frequency_cap hold back \"email\"; did you mean email?"),
        "{err}"
    );
    assert!(
        err.contains("list the pipeline's channels under `channels:`"),
        "{err}"
    );
}

/// A SQL rule's `offer` column holds back that offer only: offer codes renamed upstream would
/// hold back nobody. None of them an offer of the pipeline blocks the run; some of them (an
/// offer retired, still in the contact history) is logged.
#[test]
fn a_sql_rule_naming_no_offer_of_the_pipeline_blocks_the_run() {
    let p = Project::sample();
    let rule = "sql/daily_segments/suppress_unanswered_offer.sql";
    p.edit(rule, "    offer,\n", "    upper(offer) AS offer,\n");
    let err = p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 3);
    let text = p.read("pipelines/daily_segments.yaml");
    let line = text
        .lines()
        .position(|l| l == "  unanswered_offer:")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("daily_segments.yaml:{line}:3: suppression unanswered_offer (sql/daily_segments/suppress_unanswered_offer.sql): its "))
            && err.contains("rows naming an offer name none of the pipeline's offers (fiber_upgrade, satellite_tv, mobile_plan, loyalty_reward, winback, landline_bundle), so it holds back nobody"),
        "{err}"
    );
    assert!(!p.path("out/daily_segments/runs").exists());
    // `winback` keeps its name, the others lose it.
    p.edit(
        rule,
        "upper(offer) AS offer",
        "replace(offer, '_', '-') AS offer",
    );
    let out = p.segflow(&["run", "daily_segments", "--date", "2026-11-20"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rows of the rule name an offer the pipeline does not have: they hold back nothing suppression=unanswered_offer"),
        "{stderr}"
    );
}

/// A SQL rule's row without an offer holds back the rule's whole scope, so it covers the same
/// key's rows naming an offer: `suppressed/` had both, a row twice, in an order that changed
/// from run to run.
#[test]
fn a_sql_rule_row_without_an_offer_covers_the_keys_rows_naming_one() {
    let p = Project::sample();
    let rule = "sql/daily_segments/suppress_unanswered_offer.sql";
    let text = p.read(rule);
    let body = text.split_once("SELECT").unwrap().1;
    let whole = body
        .replacen("    offer,\n", "    CAST(NULL AS VARCHAR) AS offer,\n", 1)
        .replacen(
            "CAST(sends_90d AS VARCHAR) || ' unanswered sends of ' || offer || ' in 90 days'",
            "'every offer'",
            1,
        );
    p.write(rule, &format!("{text}\nUNION ALL SELECT{whole}"));
    p.ok(&["run", "daily_segments", "--date", "2026-11-20"]);
    let suppressed = "'{out}/runs/run_date=2026-11-20/suppressed/*.parquet'";
    let twice = p.duckdb(
        "daily_segments",
        &format!(
            "SELECT count(*) FROM (SELECT customer_id, held_back_from, suppression FROM {suppressed} \
             GROUP BY ALL HAVING count(*) > 1)"
        ),
    );
    assert_eq!(twice, ["[\"0\"]"]);
    let details = p.duckdb(
        "daily_segments",
        &format!("SELECT DISTINCT detail FROM {suppressed} WHERE suppression = 'unanswered_offer'"),
    );
    assert_eq!(details, ["[\"every offer\"]"]);
}

/// SQL reads a number compared with a date as days after 1970: `signup_date >= 20261101` held
/// for nobody, and the audience was published empty. Refused at the condition's line; date
/// arithmetic with numbers stays as it is.
#[test]
fn a_condition_comparing_a_date_with_a_number_is_refused() {
    let p = Project::sample();
    let pipeline = "pipelines/daily_segments.yaml";
    p.edit(
        pipeline,
        "joined_recently: { sql: tenure_days <= 30,",
        "joined_recently: { sql: \"signup_date >= 20261101\",",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("segment new_customers, condition joined_recently: `signup_date >= 20261101` compares a date or time with the number 20261101"),
        "{err}"
    );
    p.edit(
        pipeline,
        "\"signup_date >= 20261101\"",
        "\"signup_date >= $run_date - 30\"",
    );
    p.ok(&["validate", "daily_segments"]);
    // A ratio of whole numbers compared with a fraction is rounded down first: 3 / 4 is 0.
    p.edit(
        pipeline,
        "\"signup_date >= $run_date - 30\"",
        "\"email_opens_90d / NULLIF(email_sends_90d, 0) >= 0.5\"",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains(
            "compares a division of whole numbers with 0.5, but SQL rounds such a division down"
        ),
        "{err}"
    );
    p.edit(
        pipeline,
        "\"email_opens_90d /",
        "\"CAST(email_opens_90d AS DOUBLE) /",
    );
    p.ok(&["validate", "daily_segments"]);
    // In a model's SQL, pointing at the number.
    let model = "sql/daily_segments/customer_profile.sql";
    p.edit(
        model,
        "WHERE CAST(c.signup_date AS DATE) <= $run_date",
        "WHERE CAST(c.signup_date AS DATE) <= 20261120",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    let line = p
        .read(model)
        .lines()
        .position(|l| l.contains("<= 20261120"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{model}:{line}:38: model customer_profile: compares a date or time with the number 20261120")),
        "{err}"
    );
    // And a ratio of whole numbers there.
    p.edit(
        model,
        "WHERE CAST(c.signup_date AS DATE) <= 20261120",
        "WHERE c.customer_id / 2 >= 0.5",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("model customer_profile: compares a division of whole numbers with 0.5"),
        "{err}"
    );
    // The same through parameters, which are bound as casts of their values.
    p.edit(
        pipeline,
        "  lookback_days: 365\n",
        "  lookback_days: 365\n  launch: 20261101\n  share: 0.5\n",
    );
    p.edit(
        model,
        "WHERE c.customer_id / 2 >= 0.5",
        "WHERE c.customer_id / 2 >= $share",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("model customer_profile: compares a division of whole numbers with 0.5"),
        "{err}"
    );
    p.edit(
        model,
        "WHERE c.customer_id / 2 >= $share",
        "WHERE CAST(c.signup_date AS DATE) >= $launch",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("model customer_profile: compares a date or time with the number 20261101"),
        "{err}"
    );
}

/// `lookback_days: 365.0` is a DOUBLE, and a date minus a DOUBLE does not plan: the error points
/// at the parameter's use and says how to write it, instead of `Date32 - Float64` at line 1.
#[test]
fn a_whole_number_written_as_a_decimal_parameter_is_named() {
    let p = Project::sample();
    p.edit(
        "pipelines/daily_segments.yaml",
        "  lookback_days: 365\n",
        "  lookback_days: 365.0\n",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("sql/daily_segments/customer_profile.sql:72:61: model customer_profile: ")
            && err.contains("$lookback_days is 365.0, a DOUBLE, where a whole number is needed; write it 365 under params"),
        "{err}"
    );
}

/// Erased keys are matched as text: an erasure list read as decimals (`2272.0`, an export with
/// gaps) matched no customer, and the run published everyone with exit 0. Refused.
#[test]
fn an_erasure_list_whose_keys_are_not_of_the_profiles_kind_is_refused() {
    let p = Project::sample();
    p.edit(
        "pipelines/daily_segments.yaml",
        "    uri: data/sample/crm/erasure_requests.csv\n    format: csv\n    columns: { customer_id: int }\n",
        "    uri: erasures.csv\n    format: csv\n",
    );
    p.write(
        "erasures.csv",
        "customer_id,requested_on\n17.0,2026-06-02\n2272.0,2026-10-15\n",
    );
    let expected = "erasure.source: erasure_requests has customer_id as DOUBLE, where customer_profile has BIGINT: its keys would match no customer; declare `columns: { customer_id: int }` on the source";
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(err.contains(expected), "{err}");
    let err = p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 2);
    assert!(err.contains(expected), "{err}");
    assert!(!p.path("out/daily_segments/runs").exists());
}

/// A blocked run keeps the failing rows its checks sampled; once one of those customers is
/// erased, they go too (the run was never published, so the rewrite of published runs missed
/// them).
#[test]
fn failing_rows_kept_by_a_blocked_run_lose_a_customer_erased_later() {
    let p = Project::sample();
    let pipeline = "pipelines/daily_segments.yaml";
    let customers = std::fs::read_to_string(p.path("data/sample/crm/customers.csv")).unwrap();
    let faxed = customers.replace(
        ",London,email,true,false,true,false",
        ",London,fax,true,false,true,false",
    );
    assert_ne!(faxed, customers);
    p.write("customers.csv", &faxed);
    p.edit(
        pipeline,
        "uri: data/sample/crm/customers.csv",
        "uri: customers.csv",
    );
    p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 3);
    let blocked = "out/daily_segments/blocked/run_date=2026-11-20";
    let sampled = |customer: &str| {
        let glob = p.path(&format!("{blocked}/checks/**/*.parquet"));
        crate::support::python(&format!(
            "import duckdb\nprint(duckdb.sql(\"select count(*) from read_parquet('{}', union_by_name = true) where customer_id = {customer}\").fetchall()[0][0])",
            glob.display()
        ))
        .trim()
        .to_string()
    };
    let line = faxed.lines().find(|l| l.contains(",London,fax,")).unwrap();
    let customer = line.split(',').next().unwrap().to_string();
    assert_eq!(sampled(&customer), "1");
    // The data mended, the customer asks to be forgotten.
    p.write("customers.csv", &customers);
    p.write(
        "erasures.csv",
        &format!("customer_id,requested_on\n{customer},2026-11-20\n"),
    );
    p.edit(
        pipeline,
        "uri: data/sample/crm/erasure_requests.csv",
        "uri: erasures.csv",
    );
    p.ok(&["run", "daily_segments", "--date", "2026-11-21"]);
    let left = std::fs::read_dir(p.path(&format!("{blocked}/checks")))
        .map(|dir| dir.count())
        .unwrap_or(0);
    assert_eq!(
        left, 0,
        "the blocked run's samples still hold the erased customer"
    );
    assert!(p.path(&format!("{blocked}/report.json")).exists());
}

/// `explain` of a customer whose erasure no run has carried out yet says the published runs
/// still hold them, not that none does.
#[test]
fn explain_tells_an_erasure_not_yet_carried_out() {
    let p = Project::sample();
    p.ok(&["-q", "run", "daily_segments", "--date", "2026-11-20"]);
    let erasures = std::fs::read_to_string(p.path("data/sample/crm/erasure_requests.csv")).unwrap();
    p.write("erasures.csv", &format!("{erasures}2272,2026-11-20\n"));
    p.edit(
        "pipelines/daily_segments.yaml",
        "uri: data/sample/crm/erasure_requests.csv",
        "uri: erasures.csv",
    );
    let explain = [
        "explain",
        "daily_segments",
        "--key",
        "2272",
        "--date",
        "2026-11-20",
    ];
    let out = p.ok(&explain);
    assert!(
        out.contains("erased: the customer asked to be forgotten; the next run removes them from every published run, which hold them until then"),
        "{out}"
    );
    p.ok(&["-q", "run", "daily_segments", "--date", "2026-11-21"]);
    let out = p.ok(&explain);
    assert!(out.contains("no run holds anything about them"), "{out}");
}

/// A column renamed upstream in one month's file read as NULL there: a feature's counts of
/// that month changed with exit 0. A column a feature reads must be in every file of its source.
#[test]
fn a_column_a_feature_reads_missing_from_one_file_is_refused() {
    let p = Project::sample();
    let events = p.path("events");
    crate::support::python(&format!(
        "import shutil, pyarrow.parquet as pq\n\
         shutil.copytree({:?}, {events:?})\n\
         path = {events:?} + '/year=2026/month=11/part-00000.parquet'\n\
         t = pq.read_table(path)\n\
         pq.write_table(t.rename_columns(['result' if c == 'outcome' else c for c in t.column_names]), path)\n",
        p.path("data/sample/events").canonicalize().unwrap()
    ));
    p.edit(
        "pipelines/daily_segments.yaml",
        "uri: data/sample/events/",
        "uri: events/",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("feature customer_features: interactions has no column outcome in ")
            && err.contains(
                "events/year=2026/month=11/part-00000.parquet, though other files have it"
            ),
        "{err}"
    );
}

#[test]
fn feature_names_its_per_day_state_uses_are_refused_at_validate() {
    let p = Project::mini();
    let dir = p.path("data/events");
    crate::support::python(&format!(
        "import os, datetime as dt, pyarrow as pa, pyarrow.parquet as pq\n\
         os.makedirs({dir:?})\n\
         t = pa.table({{'customer_id': pa.array([1, 2], pa.int64()), 'event_time': [dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 2)], 'event_type': ['buy', 'view']}})\n\
         pq.write_table(t, os.path.join({dir:?}, 'e.parquet'))\n"
    ));
    p.edit(
        MINI,
        "models:",
        "  events: { uri: data/events/, format: parquet }\nfeatures:\n  f: { from: events, key: [customer_id, event_type], time: event_time, windows: [7], aggregates: { day: { count: \"*\" }, event_type: { count: \"*\" } } }\nmodels:",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("features.f.aggregates.day: the feature's per-day state has a column day already")
            && err.contains("features.f.aggregates.event_type: the feature's per-day state has a column event_type already"),
        "{err}"
    );
    // Each error points at its own aggregate.
    let at = |name: &str| {
        let line = err.lines().find(|l| l.contains(name)).unwrap();
        line.split(": ")
            .find(|part| part.starts_with("pipelines/mini.yaml:"))
            .map(str::to_string)
    };
    assert_ne!(at("aggregates.day:"), at("aggregates.event_type:"), "{err}");
}

#[test]
fn a_json_file_whose_lines_omit_a_declared_key_reads_it_as_null() {
    // JSON lines leave out what they do not have: a file of orders without amounts is not a
    // file that lacks the column.
    let p = Project::mini();
    p.edit(
        MINI,
        "    format: ndjson",
        "    format: ndjson\n    columns: { amount: double }",
    );
    p.write(
        "data/orders/2026-12.json",
        "{\"customer_id\": 3, \"order_date\": \"2026-12-01\"}\n",
    );
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
}

/// 60,000 lines of customers, past the first MiB that reading a source checks, with a quoted
/// value over two lines (lines 11-12) and a blank line (30), so that lines and records differ;
/// each signed up at `signup`; `faults` puts, at those lines, a customer whose columns after
/// the key are the text given.
fn many_customers(p: &Project, signup: &str, faults: &[(usize, &str)]) {
    let mut lines = vec!["customer_id,email,signup_date,country,visits".to_string()];
    let mut id = 0;
    while lines.len() < 60_000 {
        let number = lines.len() + 1;
        if number == 30 {
            lines.push(String::new());
            continue;
        }
        id += 1;
        let rest = match faults.iter().find(|(line, _)| *line == number) {
            Some((_, rest)) => rest.to_string(),
            None if number == 11 => format!(",c@example.com,{signup},\"G\nB\",1"),
            None => format!(",c{id}@example.com,{signup},GB,{}", id % 7),
        };
        lines.extend(format!("{id}{rest}").split('\n').map(str::to_string));
    }
    p.write("data/customers.csv", &(lines.join("\n") + "\n"));
}

/// Old Mac files end lines with a lone `\r`, which the CSV parser takes as a line break too:
/// lines are counted as an editor shows them, in the first lines checked and further down.
#[test]
fn a_bad_csv_value_in_a_file_of_carriage_returns_is_named_at_its_line() {
    let p = Project::mini();
    let with_cr = |p: &Project| {
        let text = p.read("data/customers.csv").replace('\n', "\r");
        p.write("data/customers.csv", &text);
    };
    many_customers(&p, "2026-01-05", &[(4, ",x@example.com,soon,GB,1")]);
    with_cr(&p);
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 4: column signup_date: the contract says date"),
        "{err}"
    );
    many_customers(&p, "2026-01-05", &[(50_001, ",x@example.com,soon,GB,1")]);
    with_cr(&p);
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 50001: column signup_date: the contract says date"),
        "{err}"
    );
}

#[test]
fn a_bad_csv_value_past_the_checked_lines_blocks_the_run_naming_file_line_and_column() {
    let p = Project::mini();
    many_customers(&p, "2026-01-05", &[]);
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let published = p.read("out/mini/runs/run_date=2026-11-20/manifest.json");
    let blocked = |signup: &str, faults: &[(usize, &str)]| {
        many_customers(&p, signup, faults);
        p.fails(&["run", MINI, "--date", "2026-11-20"], 3)
    };

    // A date that is not one, 2 MB into the file.
    // Its text holds what arrow's message says around it: the line is counted, not read.
    let err = blocked(
        "2026-01-05",
        &[(
            50_001,
            ",x@example.com,yesterday for column 0 at line 3,GB,1",
        )],
    );
    assert!(
        err.contains("source customers does not match its column contract")
            && err.contains("data/customers.csv, line 50001: column signup_date: the contract says date, the line holds something else"),
        "{err}"
    );
    assert!(
        !err.contains("yesterday") && !err.contains("x@example.com"),
        "{err}"
    );
    assert_eq!(
        p.read("out/mini/runs/run_date=2026-11-20/manifest.json"),
        published
    );

    // A line with a field too many, after a number that is not one in a column nothing reads.
    let err = blocked(
        "2026-01-05",
        &[
            (2_000, ",c@example.com,2026-01-05,GB,n/a"),
            (40_000, ",y@example.com,2026-01-05,GB,1,extra"),
        ],
    );
    assert!(
        err.contains("data/customers.csv, line 40000: not the 5 fields of the file's other lines"),
        "{err}"
    );

    // An undeclared column read as a number from the first lines, and text further down.
    p.edit(
        "sql/mini/active.sql",
        "where signup_date",
        "where visits >= 0 and signup_date",
    );
    let err = blocked(
        "2026-01-05",
        &[(45_000, ",z@example.com,2026-01-05,GB,n/a")],
    );
    assert!(
        err.contains("data/customers.csv, line 45000: column visits, not in the contract, was read as int from the file's first lines"),
        "{err}"
    );
    assert!(!err.contains("n/a"), "{err}");

    // Timestamps are read by a parser of their own.
    p.edit(MINI, "signup_date: date", "signup_date: timestamp");
    let err = blocked(
        "2026-01-05 10:00:00",
        &[(30_001, ",t@example.com,soon,GB,1")],
    );
    assert!(
        err.contains(
            "data/customers.csv, line 30001: column signup_date: the contract says timestamp"
        ),
        "{err}"
    );

    // A source nothing reads, declared first, with a fault of the same column and type, is
    // not named instead of the one that failed.
    p.edit(MINI, "signup_date: timestamp", "signup_date: date");
    many_customers(
        &p,
        "2026-01-05",
        &[(50_001, ",a@example.com,yesterday,GB,1")],
    );
    std::fs::rename(p.path("data/customers.csv"), p.path("data/archive.csv")).unwrap();
    p.edit(
        MINI,
        "sources:\n",
        "sources:\n  archive: { uri: data/archive.csv, format: csv, columns: { signup_date: date } }\n",
    );
    let err = blocked("2026-01-05", &[(55_001, ",b@example.com,yesterday,GB,1")]);
    assert!(
        err.contains("source customers does not match")
            && err.contains("customers.csv, line 55001: column signup_date"),
        "{err}"
    );
}

/// Events at instants shown in America/Santiago, which skips 2026-09-06 00:00-00:59: a day
/// there starts at 01:00 (04:00 UTC), and a 7-day window ending on 2026-09-12 starts then.
#[test]
fn a_feature_over_zoned_times_counts_local_days_across_a_skipped_midnight() {
    let p = Project::mini();
    let dir = p.path("data/events");
    crate::support::python(&format!(
        "import os, datetime as dt, pyarrow as pa, pyarrow.parquet as pq\n\
         os.makedirs({dir:?})\n\
         utc = dt.timezone.utc\n\
         # 1: 01:30 on the 6th there; 2: 23:30 on the 5th; 3: 23:30 on the 12th; 4: 00:30 on the 13th\n\
         times = [dt.datetime(2026, 9, 6, 4, 30, tzinfo=utc), dt.datetime(2026, 9, 6, 3, 30, tzinfo=utc), dt.datetime(2026, 9, 13, 2, 30, tzinfo=utc), dt.datetime(2026, 9, 13, 3, 30, tzinfo=utc)]\n\
         t = pa.table({{'customer_id': pa.array([1, 2, 3, 4], pa.int64()), 'event_time': pa.array(times, pa.timestamp('us', tz='America/Santiago'))}})\n\
         pq.write_table(t, os.path.join({dir:?}, 'e.parquet'))\n"
    ));
    p.edit(
        MINI,
        "models:",
        "  events: { uri: data/events/, format: parquet, columns: { customer_id: int, event_time: timestamp } }\nfeatures:\n  visits: { from: events, key: customer_id, time: event_time, windows: [7], publish: true, aggregates: { seen: { count: \"*\" } } }\nmodels:",
    );
    let seen = |date: &str| {
        p.duckdb(
            "mini",
            &format!("select customer_id, seen_7d from read_parquet('{{out}}/runs/run_date={date}/models/visits/*.parquet') order by 1"),
        )
    };
    p.ok(&["run", MINI, "--date", "2026-09-12"]);
    assert_eq!(seen("2026-09-12"), [r#"["1", "1"]"#, r#"["3", "1"]"#]);
    // The next day's run, from the state: the 6th left the window, the 13th came in.
    p.ok(&["run", MINI, "--date", "2026-09-13"]);
    assert_eq!(seen("2026-09-13"), [r#"["3", "1"]"#, r#"["4", "1"]"#]);
    // `segflow test` cuts the days the same way.
    let tests = [
        "run_date: 2026-09-12",
        "tests:",
        "  - name: days_start_where_the_zone_starts_them",
        "    given:",
        "      events:",
        r#"        - { customer_id: 1, event_time: "2026-09-06T04:30:00Z" }"#,
        r#"        - { customer_id: 2, event_time: "2026-09-06T03:30:00Z" }"#,
        r#"        - { customer_id: 3, event_time: "2026-09-13T02:30:00Z" }"#,
        "    expect:",
        "      model: visits",
        "      columns: [customer_id, seen_7d]",
        "      rows:",
        "        - { customer_id: 1, seen_7d: 1 }",
        "        - { customer_id: 3, seen_7d: 1 }",
    ];
    p.write("pipelines/mini.tests.yaml", &tests.join("\n"));
    let tested = p.ok(&["test", MINI]);
    assert!(tested.contains("1 passed, 0 failed"), "{tested}");
}

/// Events partitioned by UTC month: one at 02:00 UTC on 1 September is still 31 August in
/// Santiago, and counts for a window ending then although its folder is September's.
#[test]
fn a_zoned_event_in_the_next_utc_months_folder_counts_for_its_local_day() {
    let p = Project::mini();
    let dir = p.path("data/events");
    crate::support::python(&format!(
        "import os, datetime as dt, pyarrow as pa, pyarrow.parquet as pq\n\
         utc = dt.timezone.utc\n\
         for month, customer, time in [(8, 1, dt.datetime(2026, 8, 30, 12, tzinfo=utc)), (9, 2, dt.datetime(2026, 9, 1, 2, tzinfo=utc))]:\n\
         \x20   folder = os.path.join({dir:?}, 'year=2026', f'month={{month}}')\n\
         \x20   os.makedirs(folder)\n\
         \x20   t = pa.table({{'customer_id': pa.array([customer], pa.int64()), 'event_time': pa.array([time], pa.timestamp('us', tz='America/Santiago'))}})\n\
         \x20   pq.write_table(t, os.path.join(folder, 'e.parquet'))\n"
    ));
    p.edit(
        MINI,
        "models:",
        "  events: { uri: data/events/, format: parquet, partitioned_by: { year: int, month: int }, columns: { customer_id: int, event_time: timestamp } }\nfeatures:\n  visits: { from: events, key: customer_id, time: event_time, windows: [7], publish: true, aggregates: { seen: { count: \"*\" } } }\nmodels:",
    );
    p.ok(&["run", MINI, "--date", "2026-08-31"]);
    let seen = p.duckdb(
        "mini",
        "select customer_id, seen_7d from read_parquet('{out}/runs/run_date=2026-08-31/models/visits/*.parquet') order by 1",
    );
    assert_eq!(seen, [r#"["1", "1"]"#, r#"["2", "1"]"#]);
}

/// JSON has no dates or times: an event log's `"2026-11-20T10:00:00+05:00"` is text, and a
/// contract declaring it `timestamp` was refused ("the data has Utf8"). It now reads as the
/// instant it names, counted in UTC days; a line that is not JSON, or a value not of its
/// declared type further down a file, blocks the run naming the file and the line, never the
/// value.
#[test]
fn json_times_read_as_declared_and_bad_lines_are_named() {
    let p = Project::mini();
    let pipeline = "pipelines/events.yaml";
    p.write(
        pipeline,
        "pipeline: events
key: customer_id
sources:
  orders:
    uri: events/
    format: ndjson
    columns: { customer_id: int, ordered_at: timestamp }
features:
  daily:
    from: orders
    key: customer_id
    time: ordered_at
    windows: [1]
    publish: true
    aggregates:
      orders: { count: \"*\" }
output:
  uri: out/
",
    );
    let good: String = (1..=3000)
        .map(|i| format!("{{\"customer_id\": {i}, \"ordered_at\": \"2026-11-19T10:00:00\"}}\n"))
        .collect();
    // 2026-11-20T21:00 and 18:00 in UTC count for the run date; 2026-11-21T01:00 does not.
    let zoned = "{\"customer_id\": 1, \"ordered_at\": \"2026-11-21T02:00:00+05:00\"}
{\"customer_id\": 2, \"ordered_at\": \"2026-11-20T23:00:00+05:00\"}
{\"customer_id\": 3, \"ordered_at\": \"2026-11-21T06:00:00+05:00\"}
";
    p.write("events/2026-11.json", &format!("{good}{zoned}"));
    p.ok(&["run", "events", "--date", "2026-11-20"]);
    let counted = p.duckdb(
        "events",
        "SELECT customer_id, orders_1d FROM read_parquet('{out}/runs/run_date=2026-11-20/models/daily/*.parquet') ORDER BY 1",
    );
    assert_eq!(counted, [r#"["1", "1"]"#, r#"["2", "1"]"#]);

    // A value of the wrong type past the lines DataFusion infers the schema from.
    let secret = "{\"customer_id\": 4, \"ordered_at\": \"Alice Smith\"}\n";
    p.write("events/2026-11.json", &format!("{good}{secret}"));
    let err = p.fails(&["run", "events", "--date", "2026-11-21"], 3);
    assert!(
        err.contains("2026-11.json, line 3001: column ordered_at: the contract says timestamp, the line holds something else"),
        "{err}"
    );
    assert!(!err.contains("Alice"), "{err}");
    // A line that is not JSON.
    p.write(
        "events/2026-11.json",
        &format!("{{\"customer_id\": 4,\n{good}"),
    );
    let err = p.fails(&["run", "events", "--date", "2026-11-21"], 3);
    assert!(
        err.contains("2026-11.json, line 1: not a JSON object (one per line)"),
        "{err}"
    );
    let err = p.fails(&["validate", pipeline], 2);
    assert!(err.contains("line 1: not a JSON object"), "{err}");
    // A key holding text on one line and an object on another cannot be one column.
    p.write(
        "events/2026-11.json",
        &format!("{{\"customer_id\": 4, \"meta\": \"web\"}}\n{{\"customer_id\": 5, \"meta\": {{\"src\": \"app\"}}}}\n{good}"),
    );
    let err = p.fails(&["validate", pipeline], 2);
    assert!(
        err.contains("2026-11.json, line 2: key meta holds an object where file ")
            && err.contains(
                "2026-11.json, line 1 holds a single value; a column holds one kind of value"
            ),
        "{err}"
    );
    assert!(!err.contains("web") && !err.contains("app"), "{err}");
}

/// A check's values of another kind than its column planned fine in `validate`, then failed the
/// run with exit 1 and no line (`'a'` cast to a number), or would match nothing (`yes` among
/// booleans). They are refused at the check's line, in `validate` and in the run.
#[test]
fn checks_comparing_values_of_another_kind_are_refused_at_their_line() {
    let p = Project::sample();
    let original = p.read(SAMPLE);
    let accepted =
        "accepted_values: { column: preferred_channel, values: [email, sms, push, mail] }";
    let cases = [
        (
            accepted,
            "accepted_values: { column: products_held, values: [0, 1, a] }",
            "check customer_profile_accepted_values: accepted_values: products_held is int, and 'a' is not a value of that kind; list values of its type",
        ),
        (
            accepted,
            "accepted_values: { column: preferred_channel, values: [email, 1] }",
            "accepted_values: preferred_channel is string, and 1 is not a value of that kind; quote it (\"1\") to list it as text",
        ),
        (
            accepted,
            "accepted_values: { column: consent_email, values: [yes] }",
            "accepted_values: consent_email is boolean, and 'yes' is not a value of that kind",
        ),
        (
            "relationships: { column: customer_id, to: customers, field: customer_id }",
            "relationships: { column: customer_id, to: customers, field: email }",
            "relationships: customer_id is int and customers.email is string: they do not compare",
        ),
    ];
    for (from, to, expected) in cases {
        p.write(SAMPLE, &original.replacen(from, to, 1));
        let err = p.fails(&["validate", "daily_segments"], 2);
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("daily_segments.yaml:25"), "{err}");
    }
    // Values of the column's kind stay valid: numbers of an int column, dates as text.
    let valid = original.replacen(
        accepted,
        "accepted_values: { column: products_held, values: [0, 1, 2, 3, 4] }",
        1,
    );
    p.write(SAMPLE, &valid);
    p.ok(&["validate", "daily_segments"]);
    // The run stops the same way before it publishes anything.
    p.write(SAMPLE, &original.replacen(cases[0].0, cases[0].1, 1));
    let err = p.fails(&["run", "daily_segments", "--date", "2026-11-20"], 2);
    assert!(err.contains(cases[0].2), "{err}");
    assert!(!p.path("out/daily_segments/latest.json").exists());
}

/// A segment's `channels:` deleted by mistake published its members for no channel, and the
/// consent rules, scoped to channels, held back none of them: members who withdrew their
/// consent to e-mail were in `email_engaged` with exit 0. Saying nothing about channels is
/// refused while rules are scoped to channels; `channels: []` says it is meant.
#[test]
fn a_segment_without_channels_beside_consent_rules_is_refused() {
    let p = Project::sample();
    let original = p.read(SAMPLE);
    let said = "      description: Opens and clicks our e-mails\n      channels: [email]\n";
    assert!(original.contains(said));
    let silent = "      description: Opens and clicks our e-mails\n";
    p.write(SAMPLE, &original.replacen(said, silent, 1));
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("segments.list.email_engaged: says no channels, so the suppressions scoped to channels (email_consent_withdrawn, sms_consent_withdrawn"),
        "{err}"
    );
    assert!(
        err.contains("or write channels: [] to publish it for no channel"),
        "{err}"
    );
    let meant = "      description: Opens and clicks our e-mails\n      channels: []\n";
    p.write(SAMPLE, &original.replacen(said, meant, 1));
    p.ok(&["validate", "daily_segments"]);
}

/// A literal that cannot be cast fails when constants are folded, as a plan is optimized:
/// `validate` built plans without optimizing them and said ok, and the run failed with exit 1
/// and the optimizer's name hidden. It is now an error at the literal.
#[test]
fn a_literal_that_cannot_be_cast_is_refused_at_validate() {
    let p = Project::sample();
    let sql = "sql/daily_segments/customer_profile.sql";
    p.edit(
        sql,
        "COALESCE(c.consent_email, false) AS consent_email,",
        "COALESCE(c.consent_email, false) AS consent_email, CAST('abc' AS INT) AS odd,",
    );
    let err = p.fails(&["validate", "daily_segments"], 2);
    assert!(
        err.contains("customer_profile.sql:57:62: model customer_profile: Optimizer rule 'simplify_expressions' failed")
            && err.contains("Cannot cast string 'abc' to value of Int32 type"),
        "{err}"
    );
}

/// `explain` bound the pipeline's default parameters, not the ones the published run was given:
/// after `run --param high_value_threshold=300.0`, customer 9 (468.99 spent) was a published
/// member whom `explain` called "not a member". It now binds the run's parameters, then any
/// `--param` of its own.
#[test]
fn explain_uses_the_parameters_the_published_run_used() {
    let p = Project::sample();
    let args = ["run", "daily_segments", "--date", "2026-11-20"];
    p.ok(&[&args[..], &["--param", "high_value_threshold=300.0"]].concat());
    let lapsing = |json: &serde_json::Value| {
        let segments = json["segments"].as_array().unwrap();
        let segment = segments
            .iter()
            .find(|s| s["name"] == "lapsing_high_value")
            .unwrap();
        (
            segment["member"].clone(),
            segment["published_member"].clone(),
        )
    };
    let json = p.explain_json("daily_segments", "9", "2026-11-20");
    assert_eq!(lapsing(&json), (true.into(), true.into()), "{json}");
    // A --param of explain's own asks what another threshold would decide.
    let asked = [
        "explain",
        "daily_segments",
        "--key",
        "9",
        "--date",
        "2026-11-20",
        "--json",
        "--param",
        "high_value_threshold=500.0",
    ];
    let json: serde_json::Value = serde_json::from_str(&p.ok(&asked)).unwrap();
    assert_eq!(lapsing(&json), (false.into(), true.into()), "{json}");
}

/// Options for a bucket no URI is in (`s3://crm-extract` for `s3://crm-extracts`) applied to
/// nothing, silently: the bucket's region or endpoint was then missing. It is an error naming
/// the pipeline's buckets.
#[test]
fn store_options_for_a_bucket_nothing_uses_are_refused() {
    let p = Project::mini();
    p.edit(MINI, "uri: out/", "uri: s3://audiences/segflow/");
    p.edit(
        MINI,
        "output:",
        "stores:\n  s3://audience:\n    region: eu-west-1\noutput:",
    );
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("stores.s3://audience: no source or output is in this bucket, so its options would apply to nothing; the pipeline's buckets: s3://audiences"),
        "{err}"
    );
}

/// A CSV column empty in every sampled line was read as NULL, losing the values further down;
/// times in seconds and dates in milliseconds were written as bare integers (DuckDB and
/// pyarrow read numbers); an unsigned integer above the signed maximum was written as NULL.
#[test]
fn columns_are_published_with_every_value_as_the_types_readers_know() {
    let p = Project::mini();
    p.edit(
        MINI,
        "models:",
        "  referrals:\n    uri: data/referrals.csv\n    format: csv\n  devices:\n    uri: data/devices/\n    format: parquet\nmodels:\n  referral_list:\n    sql: sql/mini/referral_list.sql\n    publish: true\n  device_list:\n    sql: sql/mini/device_list.sql\n    publish: true",
    );
    p.write("sql/mini/referral_list.sql", "select * from referrals\n");
    p.write("sql/mini/device_list.sql", "select * from devices\n");
    // Referrers start past the sample of the first 1,000 lines.
    let mut csv = String::from("customer_id,referrer\n");
    for id in 1..=1500 {
        let referrer = if id > 1200 { "partner" } else { "" };
        csv += &format!("{id},{referrer}\n");
    }
    p.write("data/referrals.csv", &csv);
    let devices = p.path("data/devices");
    let write_devices = |hash: &str| {
        crate::support::python(&format!(
            "import os, datetime, pyarrow as pa, pyarrow.parquet as pq\n\
             os.makedirs({devices:?}, exist_ok=True)\n\
             pq.write_table(pa.table({{\n\
                 'customer_id': pa.array([1, 2], pa.int64()),\n\
                 'seen': pa.array([datetime.datetime(2026, 11, 19, 10), None], pa.timestamp('s')),\n\
                 'born': pa.array([datetime.date(1990, 5, 17), None], pa.date64()),\n\
                 'device_hash': pa.array([5, {hash}], pa.uint64()),\n\
             }}), os.path.join({devices:?}, 'a.parquet'))\n"
        ))
    };
    write_devices("7");
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let referrers = p.duckdb(
        "mini",
        "select count(referrer), typeof(any_value(referrer)) from read_parquet('{out}/runs/run_date=2026-11-20/models/referral_list/*.parquet')",
    );
    assert_eq!(referrers, [r#"["300", "VARCHAR"]"#]);
    let devices = p.duckdb(
        "mini",
        "select seen, typeof(seen), born, typeof(born), device_hash from read_parquet('{out}/runs/run_date=2026-11-20/models/device_list/*.parquet') where customer_id = 1",
    );
    assert_eq!(
        devices,
        [r#"["2026-11-19 10:00:00", "TIMESTAMP", "1990-05-17", "DATE", "5"]"#]
    );
    write_devices("2**64 - 1");
    let err = p.fails(&["run", MINI, "--date", "2026-11-21"], 1);
    assert!(
        err.contains("column device_hash holds a value too large for Int64 (an unsigned integer above 9223372036854775807); cast it in the SQL, to DECIMAL(20, 0) or to text"),
        "{err}"
    );
    assert!(!err.contains("18446744073709551615"), "{err}");
}

/// Text that is not UTF-8 further down a CSV file than the sample blocked nothing: the run
/// failed (exit 1) without naming the file, its message's `UTF-8` taken for a value.
#[test]
fn text_that_is_not_utf8_past_the_sample_is_located() {
    let p = Project::mini();
    let mut csv = b"customer_id,email,signup_date\n".to_vec();
    for id in 1..=1500 {
        let email: &[u8] = if id == 1300 { b"fran\xe7ois" } else { b"c" };
        csv.extend_from_slice(format!("{id},").as_bytes());
        csv.extend_from_slice(email);
        csv.extend_from_slice(b"@example.com,2026-01-05\n");
    }
    std::fs::write(p.path("data/customers.csv"), csv).unwrap();
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 3);
    assert!(
        err.contains("data/customers.csv, line 1301: text that is not UTF-8"),
        "{err}"
    );
}

/// Timestamps Spark and Hive write as INT96 were read in nanoseconds: a `9999-12-31` "valid
/// until" was published as 1816-03-29.
#[test]
fn int96_timestamps_keep_their_year() {
    let p = Project::mini();
    p.edit(
        MINI,
        "models:",
        "  contracts:\n    uri: data/contracts/\n    format: parquet\n    columns: { valid_until: timestamp }\nmodels:\n  contract_list:\n    sql: sql/mini/contract_list.sql\n    publish: true",
    );
    p.write("sql/mini/contract_list.sql", "select * from contracts\n");
    let dir = p.path("data/contracts");
    crate::support::python(&format!(
        "import os, datetime, pyarrow as pa, pyarrow.parquet as pq\n\
         os.makedirs({dir:?})\n\
         t = pa.table({{'customer_id': pa.array([1, 2], pa.int64()), 'valid_until': pa.array([datetime.datetime(9999, 12, 31), datetime.datetime(1500, 1, 1)], pa.timestamp('us'))}})\n\
         pq.write_table(t, os.path.join({dir:?}, 'a.parquet'), use_deprecated_int96_timestamps=True, store_schema=False)\n"
    ));
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let read = p.duckdb(
        "mini",
        "select valid_until from read_parquet('{out}/runs/run_date=2026-11-20/models/contract_list/*.parquet') order by customer_id",
    );
    assert_eq!(
        read,
        [r#"["9999-12-31 00:00:00"]"#, r#"["1500-01-01 00:00:00"]"#]
    );
}

/// A file in a subfolder of a source's folder was skipped without a word (DataFusion reads the
/// folder's own files and those under partition folders); a glob with a wildcard before its
/// last `/` matched nothing, or only the folder's own files.
#[test]
fn files_in_subfolders_of_a_source_are_refused_not_skipped() {
    let p = Project::mini();
    let orders = p.read("data/orders/2026-11.json");
    // Spark's scratch folder and hidden folders are not the source's.
    p.write("data/orders/_temporary/0/part-0.json", &orders);
    p.write("data/orders/.cache/part-0.json", &orders);
    p.ok(&["validate", MINI]);
    p.write("data/orders/late/2026-11.json", &orders);
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("source orders: [PROJECT]/data/orders/late/2026-11.json is in a subfolder of the source's folder, whose files segflow does not read; move it into data/orders/"),
        "{err}"
    );
    std::fs::remove_dir_all(p.path("data/orders/late")).unwrap();
    p.edit(MINI, "uri: data/orders/", "uri: data/*/*.json");
    let err = p.fails(&["validate", MINI], 2);
    assert!(
        err.contains("source orders: data/*/*.json has a wildcard before its last `/`"),
        "{err}"
    );
    p.edit(MINI, "uri: data/*/*.json", "uri: data/orders/*.json");
    p.ok(&["validate", MINI]);
    // Below a partition folder, a file deeper than the partitions go.
    std::fs::remove_file(p.path("data/orders/2026-11.json")).unwrap();
    p.write("data/orders/month=11/2026-11.json", &orders);
    p.write("data/orders/month=11/late/2026-11.json", &orders);
    p.edit(MINI, "uri: data/orders/*.json", "uri: data/orders/");
    p.edit(
        MINI,
        "    format: ndjson",
        "    format: ndjson\n    partitioned_by: { month: int }",
    );
    let err = p.fails(&["run", MINI, "--date", "2026-11-20"], 2);
    assert!(
        err.contains("month=11/late/2026-11.json is in a subfolder of the source's folder, whose files segflow does not read; move it into its partition folder"),
        "{err}"
    );
}

/// A key renamed or retyped since the previous run failed every later run on the previous
/// run's tables (`No field named cust_id`, a text key cast to a number), or published keys of
/// two types in one run.
#[test]
fn a_key_renamed_or_retyped_since_the_previous_run_is_refused_with_the_way_out() {
    let p = Project::segs();
    p.ok(&["run", SEGS, "--date", "2026-11-01"]);
    p.edit(
        "sql/segs/profile.sql",
        "    c.customer_id,",
        "    cast(c.customer_id as int) as customer_id,",
    );
    let err = p.fails(&["run", SEGS, "--date", "2026-11-02"], 2);
    assert!(
        err.contains("the pipeline keys customers by customer_id (Int32), but the run of 2026-11-01 it follows keyed them by customer_id (Int64)"),
        "{err}"
    );
    assert!(err.contains("publish to a new output.uri"), "{err}");
    p.edit(
        "sql/segs/profile.sql",
        "    cast(c.customer_id as int) as customer_id,",
        "    c.customer_id as cust_id,",
    );
    p.edit(
        "sql/segs/profile.sql",
        "group by c.customer_id",
        "group by cust_id",
    );
    p.edit(SEGS, "key: customer_id", "key: cust_id");
    p.edit(
        "sql/segs/vip.sql",
        "select customer_id",
        "select customer_id as cust_id",
    );
    let err = p.fails(&["run", SEGS, "--date", "2026-11-02"], 2);
    assert!(
        err.contains("keys customers by cust_id (Int64), but the run of 2026-11-01 it follows keyed them by customer_id (Int64)"),
        "{err}"
    );
    // A new output starts a new history.
    p.edit(SEGS, "uri: out/", "uri: out2/");
    p.ok(&["run", SEGS, "--date", "2026-11-02"]);
}

/// A panic in the query engine (DataFusion's `lpad` given a negative width computed from the
/// data allocates without bound) printed Rust's backtrace and exited 101.
#[test]
fn a_panic_in_the_query_engine_is_one_line_and_exit_1() {
    let p = Project::segs();
    p.ok(&["run", SEGS, "--date", "2026-11-01"]);
    p.edit(
        SEGS,
        "spent_over_100_today: spend_today > 100",
        "spent_over_100_today: \"lpad(first_name, 1 - length(first_name) * 2) <> ''\"",
    );
    let err = p.fails(&["run", SEGS, "--date", "2026-11-02"], 1);
    assert!(
        err.contains("segflow: error: segflow stopped on an internal error (capacity overflow); nothing more was published"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    p.edit(
        SEGS,
        "spent_over_100_today: \"lpad(first_name, 1 - length(first_name) * 2) <> ''\"",
        "spent_over_100_today: spend_today > 100",
    );
    p.ok(&["run", SEGS, "--date", "2026-11-02"]);
}

/// An erasure request for `C4` left a profile's `"C4 "` in every audience: the requests' keys
/// were trimmed, the data's were not.
#[test]
fn an_erasure_request_matches_a_key_written_with_spaces_around_it() {
    let p = Project::segs();
    p.write(
        "pipelines/padded.yaml",
        "pipeline: padded\nkey: customer_id\nsources:\n  people: { uri: data/people.csv, format: csv, columns: { customer_id: string } }\n  erasure_requests: { uri: data/erasure_requests.csv, format: csv, columns: { customer_id: string } }\nmodels:\n  profile: { sql: sql/padded.sql }\nsegments:\n  from: profile\n  list:\n    everyone:\n      description: Everyone\n      conditions: { any: customer_id IS NOT NULL }\nerasure: { source: erasure_requests }\noutput: { uri: out/ }\n",
    );
    p.write("sql/padded.sql", "select customer_id from people\n");
    p.write("data/people.csv", "customer_id\nC1\n\"C4 \"\n");
    p.write("data/erasure_requests.csv", "customer_id\nC4\n");
    p.ok(&["run", "pipelines/padded.yaml", "--date", "2026-11-20"]);
    let members = p.duckdb(
        "padded",
        "select customer_id from read_parquet('{out}/runs/run_date=2026-11-20/audiences/**/*.parquet')",
    );
    assert_eq!(members, [r#"["C1"]"#]);
}

/// CSV dates in a column declared `timestamp` were refused ("the data has Date32"), though
/// the same text further down a file read as midnight.
#[test]
fn csv_dates_declared_timestamp_read_as_midnight() {
    let p = Project::mini();
    p.edit(MINI, "signup_date: date", "signup_date: timestamp");
    p.edit(
        "sql/mini/active.sql",
        "select customer_id, email, signup_date",
        "select customer_id, email, signup_date, signup_date = timestamp '2026-01-05 00:00:00' as midnight",
    );
    p.edit(
        "sql/mini/profile.sql",
        "    a.email,",
        "    a.email,\n    a.midnight,",
    );
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
    let read = p.duckdb(
        "mini",
        "select bool_and(midnight) from read_parquet('{out}/runs/run_date=2026-11-20/models/profile/*.parquet') where customer_id = 1",
    );
    assert_eq!(read, [r#"["True"]"#]);
}

/// A month's file whose declared text column holds NULLs alone (pyarrow writes it as type
/// `null`) was refused as "Null in one file but Utf8View in another".
#[test]
fn a_declared_column_of_nulls_alone_in_one_file_reads_as_declared() {
    let p = two_monthly_files("t.append_column('outcome', pa.nulls(2))");
    p.edit(
        MINI,
        "columns: { customer_id: int, amount: double }",
        "columns: { customer_id: int, amount: double, outcome: string }",
    );
    let first = p.path("data/events/month=1/a.parquet");
    crate::support::python(&format!(
        "import pyarrow as pa, pyarrow.parquet as pq\n\
         t = pq.read_table({first:?})\n\
         pq.write_table(t.append_column('outcome', pa.array(['ok', None])), {first:?})\n"
    ));
    p.ok(&["validate", MINI]);
    p.ok(&["run", MINI, "--date", "2026-11-20"]);
}

/// A SQL suppression or segment failing on the data (a cast of a value) failed the run as
/// `suppressions: Arrow error: …` or `segment membership: …`, naming no rule.
#[test]
fn a_sql_rule_failing_on_the_data_is_named() {
    let p = Project::sample();
    p.edit(
        "sql/daily_segments/suppress_not_serviceable.sql",
        "WHERE satellite_not_serviceable_here",
        "WHERE satellite_not_serviceable_here OR CAST(first_name AS INT) > 0",
    );
    let err = p.fails(&["run", SAMPLE, "--date", "2026-11-19"], 1);
    assert!(
        err.contains("pipelines/daily_segments.yaml:149:3: suppression not_serviceable_here: Arrow error: Cast error: Cannot cast string '…' to value of Int32 type"),
        "{err}"
    );
    // A SQL segment, the same.
    p.edit(
        "sql/daily_segments/suppress_not_serviceable.sql",
        "WHERE satellite_not_serviceable_here OR CAST(first_name AS INT) > 0",
        "WHERE satellite_not_serviceable_here",
    );
    p.edit(
        "sql/daily_segments/seg_at_risk.sql",
        "   OR unresolved_calls_30d > 0",
        "   OR unresolved_calls_30d > 0 OR CAST(first_name AS INT) > 0",
    );
    let err = p.fails(&["run", SAMPLE, "--date", "2026-11-19"], 1);
    assert!(
        err.contains(
            "pipelines/daily_segments.yaml:143:5: segment at_risk: Arrow error: Cast error"
        ),
        "{err}"
    );
}

/// A profile column named `segment` listed in `output.columns` replaced the segment's name in
/// every audience file; one named `channels` gave files two columns of one name.
#[test]
fn output_columns_named_like_an_audience_column_are_refused() {
    let p = Project::segs();
    p.edit(
        SEGS,
        "columns: [first_name, preferred_channel]",
        "columns: [first_name, Segment, channels]",
    );
    let err = p.fails(&["validate", SEGS], 2);
    assert!(
        err.contains("output.columns: Segment is the name of an audience's own column (segment); give the profile's column another name (customer_segment) and list that"),
        "{err}"
    );
    assert!(
        err.contains("output.columns: channels is the name of an audience's own column (channels)"),
        "{err}"
    );
}
