//! Published Parquet read back by independent readers (pyarrow and DuckDB).

use crate::support::{Project, python};

#[test]
fn pyarrow_and_duckdb_read_the_published_run() {
    let p = Project::mini();
    p.ok(&["run", "pipelines/mini.yaml", "--date", "2026-11-20"]);
    let run = p.path("out/mini/runs/run_date=2026-11-20");
    let script = format!(
        r#"
import json, pyarrow.parquet as pq, duckdb
run = "{run}"
manifest = json.load(open(run + "/manifest.json"))
for output in manifest["outputs"]:
    table = pq.read_table(run + "/" + output["path"])
    assert table.num_rows == output["rows"], (table.num_rows, output["rows"])
    names = [c["name"] for c in output["schema"]]
    assert table.column_names == names, (table.column_names, names)
    meta = pq.ParquetFile(run + "/" + output["files"][0]["path"]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
rows = duckdb.sql(f"select customer_id, email, spend, orders, big_spender from read_parquet('{{run}}/models/profile/*.parquet') order by 1").fetchall()
print(json.dumps(rows))
"#,
        run = run.display()
    );
    let rows = python(&script);
    assert_eq!(
        rows.trim(),
        r#"[[1, "ada@example.com", 30.0, 2, true], [2, "bob@example.com", 5.0, 1, false], [3, "cy@example.com", 0.0, 0, false]]"#
    );
}

/// Every published table read by Spark, DuckDB, pyarrow and Polars, one run and several days:
/// the same columns with the same types in every engine, `run_date` (and `segment` for audiences
/// and changes) found as columns of the files, whatever the engine makes of the folders.
#[test]
fn spark_duckdb_pyarrow_and_polars_see_the_same_columns_and_types() {
    let p = Project::sample();
    p.ok(&[
        "backfill",
        "daily_segments",
        "--from",
        "2026-11-19",
        "--to",
        "2026-11-20",
    ]);
    let runs = p.path("out/daily_segments/runs");
    let checked = python(&format!(
        r#"
import glob, json, duckdb, polars as pl, pyarrow.parquet as pq
from pyspark.sql import SparkSession
runs = {runs:?}
run = runs + "/run_date=2026-11-20"
manifest = json.load(open(run + "/manifest.json"))
tables = sorted({{o["path"].split("/segment=")[0] for o in manifest["outputs"]
                  if not o["path"].startswith("state/") and not o["path"].endswith(".parquet")}})
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
def kind(t):
    t = str(t).lower()
    for name, words in [("int64", ["bigint", "int64"]), ("string", ["string", "varchar", "utf8"]),
                        ("date", ["date"]), ("float64", ["double", "float64"]), ("bool", ["bool"])]:
        if any(t.startswith(w) for w in words):
            return name
    return t
def engines(files, folders):
    """(columns and types, rows) per engine for a table's files, in `folders` for Spark."""
    seen = {{}}
    t = pq.read_table(files, partitioning=None)
    seen["pyarrow"] = ([(f.name, kind(f.type)) for f in t.schema], t.num_rows)
    r = duckdb.read_parquet(files)
    seen["duckdb"] = (list(zip(r.columns, map(kind, r.types))), len(r.fetchall()))
    d = pl.read_parquet(files)
    seen["polars"] = ([(c, kind(t)) for c, t in d.schema.items()], d.height)
    # The files hold every column, so no engine needs to infer any from folder names.
    s = spark.read.option("recursiveFileLookup", "true").parquet(*folders)
    seen["spark"] = ([(f.name, kind(f.dataType.simpleString())) for f in s.schema.fields], s.count())
    return seen
checked = 0
for table in tables:
    for days in [["2026-11-20"], ["2026-11-19", "2026-11-20"]]:
        folders = [f"{{runs}}/run_date={{day}}/{{table}}" for day in days]
        files = sorted(f for folder in folders for f in glob.glob(folder + "/**/*.parquet", recursive=True))
        seen = engines(files, folders)
        first = seen["pyarrow"]
        for engine, got in seen.items():
            assert sorted(got[0]) == sorted(first[0]), (table, engine, got[0], first[0])
            assert got[1] == first[1], (table, engine, got[1], first[1])
        types = dict(first[0])
        assert types["run_date"] == "date", (table, types)
        assert types["customer_id"] == "int64", (table, types)
        if table in ("audiences", "changes"):
            assert types["segment"] == "string", (table, types)
        if "rank" in types:
            assert types["rank"] == "int64", (table, types)
            assert duckdb.sql(f"select min(rank - 3) from read_parquet({{files}})").fetchall()[0][0] < 0
        if len(days) == 2:
            dates = duckdb.sql(f"select count(distinct run_date) from read_parquet({{files}})").fetchall()[0][0]
            assert dates == 2, (table, dates)
        meta = pq.ParquetFile(files[0]).metadata
        sorting = meta.row_group(0).sorting_columns
        assert sorting and sorting[0].column_index == 0, (table, sorting)
        # Keys of segflow's own tables are declared required; a model's columns are what its SQL says.
        key = pq.ParquetFile(files[0]).schema_arrow.field("customer_id")
        assert table.startswith("models/") or not key.nullable, (table, key)
        checked += 1
print(checked)
"#,
        runs = runs.display().to_string()
    ));
    assert_eq!(checked.trim(), "14", "7 tables × 2 spans checked");
}
