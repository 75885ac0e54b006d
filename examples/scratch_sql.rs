use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::ParamValues;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::*;
use datafusion::scalar::ScalarValue;

const MODELS: &[&str] = &[
    "current_address",
    "customer_features",
    "customer_profile",
    "seg_lapsing_high_value",
    "seg_new_customers",
    "seg_champions",
    "seg_fiber_upgrade_prospects",
    "seg_at_risk",
    "seg_email_engaged",
];

async fn context(data: &str) -> datafusion::error::Result<SessionContext> {
    let ctx = SessionContext::new();
    for t in ["customers", "address_changes", "holdings"] {
        ctx.register_csv(t, &format!("{data}/crm/{t}.csv"), CsvReadOptions::new())
            .await?;
    }
    let opts = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![
            ("year".into(), DataType::Int32),
            ("month".into(), DataType::Int32),
        ]);
    ctx.register_listing_table("interactions", format!("{data}/events/"), opts, None, None)
        .await?;
    Ok(ctx)
}

fn params(date: &str) -> ParamValues {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let days = (d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    ParamValues::Map(HashMap::from([
        (
            "run_date".to_string(),
            ScalarValue::Date32(Some(days)).into(),
        ),
        (
            "lookback_days".to_string(),
            ScalarValue::Int64(Some(365)).into(),
        ),
        (
            "high_value_threshold".to_string(),
            ScalarValue::Float64(Some(500.0)).into(),
        ),
    ]))
}

fn textual(sql: &str, date: &str) -> String {
    sql.replace("$run_date", &format!("DATE '{date}'"))
        .replace("$lookback_days", "CAST(365 AS BIGINT)")
        .replace("$high_value_threshold", "CAST(500.0 AS DOUBLE)")
}

async fn register_models(
    ctx: &SessionContext,
    date: &str,
    bound: bool,
    upto: Option<&str>,
) -> datafusion::error::Result<()> {
    for m in MODELS {
        let path = format!("sql/daily_segments/{m}.sql");
        let Ok(sql) = std::fs::read_to_string(&path) else {
            continue;
        };
        let t = Instant::now();
        let df = if bound {
            ctx.sql(&sql).await?.with_param_values(params(date))?
        } else {
            ctx.sql(&textual(&sql, date)).await?
        };
        let batches = df.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let schema = batches.first().map(|b| b.schema());
        let mem = datafusion::datasource::MemTable::try_new(
            schema.unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty())),
            vec![batches],
        )?;
        ctx.register_table(*m, Arc::new(mem))?;
        eprintln!("{m}: {rows} rows in {:?}", t.elapsed());
        if upto == Some(*m) {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args[1].as_str() {
        "gen" => {
            let customers: u64 = args[2].parse().unwrap();
            let t = Instant::now();
            let s = segflow::generate::generate(&segflow::generate::GenerateOptions {
                customers,
                days: 365,
                seed: 42,
                start: "2025-12-01".parse().unwrap(),
                out: args[3].clone().into(),
            })
            .unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!("{s:?}");
            println!(
                "{secs:.2}s, {:.0} interactions/s, {:.0} customers/s",
                s.interactions as f64 / secs,
                s.customers as f64 / secs
            );
        }
        // query DATE "SQL" : run ad-hoc SQL after registering models (textual params)
        "query" => {
            let ctx = context("data/sample").await?;
            register_models(&ctx, &args[2], true, None).await?;
            let sql = textual(&args[3], &args[2]);
            let batches = ctx.sql(&sql).await?.collect().await?;
            println!("{}", pretty_format_batches(&batches)?);
        }
        "raw" => {
            let ctx = context("data/sample").await?;
            let batches = ctx.sql(&args[2]).await?.collect().await?;
            println!("{}", pretty_format_batches(&batches)?);
        }
        // models DATE bound|textual
        "models" => {
            let ctx = context("data/sample").await?;
            register_models(
                &ctx,
                &args[2],
                args.get(3).is_none_or(|m| m == "bound"),
                None,
            )
            .await?;
        }
        "explain" => {
            let ctx = context("data/sample").await?;
            register_models(&ctx, &args[2], true, Some("current_address")).await?;
            let sql =
                std::fs::read_to_string(format!("sql/daily_segments/{}.sql", args[3])).unwrap();
            let df = ctx.sql(&sql).await?.with_param_values(params(&args[2]))?;
            let batches = df.explain(false, false)?.collect().await?;
            println!("{}", pretty_format_batches(&batches)?);
        }
        _ => panic!("unknown mode"),
    }
    Ok(())
}
