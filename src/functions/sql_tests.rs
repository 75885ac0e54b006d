//! The functions as analysts call them: registered in a session and used from SQL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::assert_batches_eq;
use datafusion::prelude::SessionContext;

use super::{IdentifierStats, register};

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// A session with segflow's functions and a `customers` table holding good, bad and NULL
/// identifiers.
fn session() -> (SessionContext, IdentifierStats) {
    let ctx = SessionContext::new();
    let stats = register(&ctx);
    let customers = RecordBatch::try_from_iter([
        (
            "customer_id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])) as ArrayRef,
        ),
        (
            "email",
            strings(&[
                Some(" Test@Example.com "),
                Some("John.Smith+news@Gmail.com"),
                None,
                Some("not an email"),
                Some("a@localhost"),
                Some("élodie@exemple.fr"),
            ]),
        ),
        (
            "phone",
            strings(&[
                Some("07700 900123"),
                Some("+44 (0)7700 900123"),
                Some("06 12 34 56 78"),
                None,
                Some("call me"),
                Some("(415) 555-2671"),
            ]),
        ),
        (
            "country",
            strings(&[
                Some("GB"),
                Some("FR"),
                Some("FR"),
                Some("GB"),
                None,
                Some("US"),
            ]),
        ),
    ])
    .expect("the test table is well formed");
    ctx.register_batch("customers", customers)
        .expect("registering an in-memory table");
    (ctx, stats)
}

async fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("planning {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("running {sql}: {e}"))
}

async fn plan_error(ctx: &SessionContext, sql: &str) -> String {
    match ctx.sql(sql).await {
        Ok(df) => match df.collect().await {
            Ok(batches) => panic!(
                "expected {sql} to fail, got\n{}",
                pretty_format_batches(&batches).expect("printable")
            ),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn emails_are_normalized_and_hashed_and_bad_ones_counted() {
    let (ctx, stats) = session();
    let batches = query(
        &ctx,
        "SELECT customer_id, normalize_email(email) AS email, sha256_email(email) AS email_sha256 \
         FROM customers ORDER BY customer_id",
    )
    .await;
    assert_batches_eq!(
        [
            "+-------------+---------------------+------------------------------------------------------------------+",
            "| customer_id | email               | email_sha256                                                     |",
            "+-------------+---------------------+------------------------------------------------------------------+",
            "| 1           | test@example.com    | 973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b |",
            "| 2           | johnsmith@gmail.com | 3586de92bb3636d0885a12eff961429a32e4ebd764b96f50d85d016f9338d586 |",
            "| 3           |                     |                                                                  |",
            "| 4           |                     |                                                                  |",
            "| 5           |                     |                                                                  |",
            "| 6           | élodie@exemple.fr   | f34116fa1fa2ab3840367c97ac2fc11e9e811bc3c424a1361abfc3d719c18e8c |",
            "+-------------+---------------------+------------------------------------------------------------------+",
        ],
        &batches
    );
    // Rows 4 and 5 are invalid, once for each of the two functions; the NULL in row 3 is not.
    assert_eq!(stats.invalid_emails(), 4);
    assert_eq!(stats.invalid_phones(), 0);
}

#[tokio::test]
async fn phones_read_the_country_from_a_column_or_a_literal() {
    let (ctx, stats) = session();
    let batches = query(
        &ctx,
        "SELECT customer_id, \
                normalize_phone(phone, country) AS by_column, \
                normalize_phone(phone, 'GB') AS in_gb \
         FROM customers ORDER BY customer_id",
    )
    .await;
    assert_batches_eq!(
        [
            "+-------------+---------------+---------------+",
            "| customer_id | by_column     | in_gb         |",
            "+-------------+---------------+---------------+",
            "| 1           | +447700900123 | +447700900123 |",
            "| 2           | +447700900123 | +447700900123 |",
            "| 3           | +33612345678  | +44612345678  |",
            "| 4           |               |               |",
            "| 5           |               |               |",
            "| 6           | +14155552671  | +444155552671 |",
            "+-------------+---------------+---------------+",
        ],
        &batches
    );
    // Row 5 ("call me") is invalid only where its country is not NULL: a NULL argument gives
    // NULL without being counted. Row 6 shows why the country matters: read as British, a US
    // number is still a well-formed (wrong) number.
    assert_eq!(stats.invalid_phones(), 1);
    assert_eq!(stats.invalid_emails(), 0);
}

#[tokio::test]
async fn phone_hashes_come_in_each_platform_form() {
    let (ctx, stats) = session();
    let batches = query(
        &ctx,
        "SELECT customer_id, \
                sha256_phone_e164(phone, country) AS google, \
                sha256_phone_digits(phone, country) AS meta \
         FROM customers WHERE customer_id IN (1, 4, 5, 6) ORDER BY customer_id",
    )
    .await;
    assert_batches_eq!(
        [
            "+-------------+------------------------------------------------------------------+------------------------------------------------------------------+",
            "| customer_id | google                                                           | meta                                                             |",
            "+-------------+------------------------------------------------------------------+------------------------------------------------------------------+",
            "| 1           | a8acc3a90a7b4e4dc65e93db9240ed26523050ef754d63b75b5161de76781436 | 033134b911b137918338415ee3d20a064b24773d36a3b02e8b99fdd3fcd6b4cd |",
            "| 4           |                                                                  |                                                                  |",
            "| 5           |                                                                  |                                                                  |",
            "| 6           | cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928 | 758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0 |",
            "+-------------+------------------------------------------------------------------+------------------------------------------------------------------+",
        ],
        &batches
    );
    // NULL phone (row 4) and NULL country (row 5) are not invalid values.
    assert_eq!(stats.invalid_phones(), 0);
}

#[tokio::test]
async fn buckets_match_the_python_formula_for_integer_and_string_keys() {
    let (ctx, _) = session();
    let batches = query(
        &ctx,
        "SELECT customer_id, \
                segflow_bucket('2026', customer_id) AS by_int, \
                segflow_bucket('2026', CAST(customer_id AS VARCHAR)) AS by_string, \
                segflow_bucket('2026', arrow_cast(customer_id, 'UInt8')) AS by_uint8, \
                segflow_bucket(country, customer_id) AS salted_by_column \
         FROM customers WHERE customer_id IN (1, 2, 5) ORDER BY customer_id",
    )
    .await;
    assert_batches_eq!(
        [
            "+-------------+--------+-----------+----------+------------------+",
            "| customer_id | by_int | by_string | by_uint8 | salted_by_column |",
            "+-------------+--------+-----------+----------+------------------+",
            "| 1           | 9058   | 9058      | 9058     | 3629             |",
            "| 2           | 8759   | 8759      | 8759     | 5339             |",
            "| 5           | 7576   | 7576      | 7576     |                  |",
            "+-------------+--------+-----------+----------+------------------+",
        ],
        &batches
    );
}

#[tokio::test]
async fn literal_calls_are_folded_and_null_literals_give_null() {
    let (ctx, stats) = session();
    let batches = query(
        &ctx,
        "SELECT normalize_email('A@B.CO') AS email, \
                sha256_email(NULL) AS no_email, \
                normalize_phone('0033 6 12 34 56 78', NULL) AS no_country, \
                normalize_phone('07700 900123', 'XX') AS unknown_country, \
                segflow_bucket('2026', 42) AS int_key, \
                segflow_bucket('2026', 'C000123') AS string_key, \
                segflow_bucket(NULL, 42) AS no_salt",
    )
    .await;
    assert_batches_eq!(
        [
            "+--------+----------+------------+-----------------+---------+------------+---------+",
            "| email  | no_email | no_country | unknown_country | int_key | string_key | no_salt |",
            "+--------+----------+------------+-----------------+---------+------------+---------+",
            "| a@b.co |          |            |                 | 9851    | 8641       |         |",
            "+--------+----------+------------+-----------------+---------+------------+---------+",
        ],
        &batches
    );
    assert_eq!(stats.invalid_emails(), 0);
    assert_eq!(stats.invalid_phones(), 1);
}

#[tokio::test]
async fn every_string_encoding_is_accepted() {
    let (ctx, _) = session();
    let batches = query(
        &ctx,
        "SELECT normalize_email(arrow_cast(email, 'Utf8View')) AS view, \
                normalize_email(arrow_cast(email, 'LargeUtf8')) AS large, \
                normalize_email(arrow_cast(email, 'Dictionary(Int32, Utf8)')) AS dictionary, \
                normalize_phone(arrow_cast(phone, 'Utf8View'), arrow_cast(country, 'LargeUtf8')) AS phone, \
                segflow_bucket(arrow_cast('2026', 'Utf8View'), arrow_cast(CAST(customer_id AS VARCHAR), 'Dictionary(Int8, Utf8)')) AS bucket \
         FROM customers WHERE customer_id = 1",
    )
    .await;
    assert_batches_eq!(
        [
            "+------------------+------------------+------------------+---------------+--------+",
            "| view             | large            | dictionary       | phone         | bucket |",
            "+------------------+------------------+------------------+---------------+--------+",
            "| test@example.com | test@example.com | test@example.com | +447700900123 | 9058   |",
            "+------------------+------------------+------------------+---------------+--------+",
        ],
        &batches
    );
}

#[tokio::test]
async fn wrong_argument_types_are_planning_errors_that_say_what_to_do() {
    let (ctx, _) = session();
    let error = plan_error(
        &ctx,
        "SELECT normalize_phone(customer_id, 'GB') FROM customers",
    )
    .await;
    assert!(error.contains("read the column as a string"), "{error}");
    let error = plan_error(&ctx, "SELECT segflow_bucket('2026', 1.5)").await;
    assert!(error.contains("CAST it to BIGINT or VARCHAR"), "{error}");
    let error = plan_error(&ctx, "SELECT segflow_bucket('2026', DATE '2026-01-01')").await;
    assert!(
        error.contains("argument `key` must be an integer or a string, got Date32"),
        "{error}"
    );
    let error = plan_error(&ctx, "SELECT normalize_phone('07700 900123')").await;
    assert!(
        error.contains("takes 2 argument(s) (phone, default_country), got 1"),
        "{error}"
    );
}

#[tokio::test]
async fn each_registration_counts_separately() {
    let (first, first_stats) = session();
    let (second, second_stats) = session();
    query(&first, "SELECT sha256_email(email) FROM customers").await;
    query(
        &second,
        "SELECT normalize_phone(phone, 'GB') FROM customers",
    )
    .await;
    assert_eq!(
        (first_stats.invalid_emails(), first_stats.invalid_phones()),
        (2, 0)
    );
    assert_eq!(
        (second_stats.invalid_emails(), second_stats.invalid_phones()),
        (0, 1)
    );
}
