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
