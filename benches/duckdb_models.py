"""The example pipeline's model chain run by DuckDB on the same files, to compare with segflow.

    segflow plan daily_segments --format sql > MODELS.sql
    python3 benches/duckdb_models.py PROJECT RUN_DATE OUT.parquet MODELS.sql [MEMORY_LIMIT] [--state DIR]

Reads the sources as the pipeline declares them (CSV with the same typed columns, the
interactions as Hive-partitioned Parquet), runs every model and feature of the pipeline in run
order as `segflow plan --format sql` prints them (a feature as the query computing it from all
its events, as a full refresh does) with the parameters bound, and writes the last one, the
profile, to one zstd Parquet file, as segflow does. segflow's identifier functions become DuckDB's
`sha256`, `lower` and `regexp_replace`: cheaper than segflow's (which validate and normalize by
country) but close enough to compare the engines. Prints the seconds it took.

With `--state DIR` it then also does what a first run of segflow does beside: every feature's
per-day partials over its longest window (the `-- feature state:` queries of the plan), each
written as zstd Parquet into one folder per day under DIR/<feature>/, and prints the seconds
that took on a second line. (segflow also leaves erased customers out of them.)
"""

import os
import re
import sys
import time

import duckdb

args = sys.argv[1:]
state_dir = None
if "--state" in args:
    at = args.index("--state")
    state_dir = args[at + 1]
    del args[at : at + 2]
project, run_date, out, models_sql = args[:4]
memory_limit = args[4] if len(args) > 4 else None

params = {"run_date": f"DATE '{run_date}'", "lookback_days": "365"}
functions = {
    r"sha256_email\(([^)]*)\)": r"sha256(lower(trim(\1)))",
    r"normalize_phone\(([^,]*),[^)]*\)": r"regexp_replace(\1, '[^0-9+]', '', 'g')",
    r"sha256_phone_e164\(([^,]*),[^)]*\)": r"sha256(regexp_replace(\1, '[^0-9+]', '', 'g'))",
}


def blocks():
    """(kind, name, SQL) of every block of the plan, in run order."""
    parts = re.split(r"^-- (model|feature|feature state): (\w+)$", open(models_sql).read(), flags=re.M)
    return [
        (kind, name, bind(sql.strip().rstrip(";")))
        for kind, name, sql in zip(parts[1::3], parts[2::3], parts[3::3])
    ]


def models():
    """(name, SQL) of every model and feature, in run order."""
    return [(name, sql) for kind, name, sql in blocks() if kind != "feature state"]


def bind(sql):
    for param, value in params.items():
        sql = sql.replace(f"${param}", value)
    for pattern, replacement in functions.items():
        sql = re.sub(pattern, replacement, sql)
    return sql


con = duckdb.connect()
if memory_limit:
    con.execute(f"SET memory_limit = '{memory_limit}'")
con.execute("SET preserve_insertion_order = false")
data = f"{project}/data/sample"
started = time.monotonic()
con.execute(
    "CREATE VIEW customers AS SELECT * FROM read_csv("
    f"'{data}/crm/customers.csv', header = true, "
    "types = {'customer_id': 'BIGINT', 'email': 'VARCHAR', 'phone': 'VARCHAR', "
    "'signup_date': 'DATE', 'consent_email': 'BOOLEAN', 'consent_sms': 'BOOLEAN', "
    "'consent_push': 'BOOLEAN', 'consent_mail': 'BOOLEAN'})"
)
con.execute(
    "CREATE VIEW address_changes AS SELECT * FROM read_csv("
    f"'{data}/crm/address_changes.csv', header = true, "
    "types = {'customer_id': 'BIGINT', 'address_id': 'BIGINT', 'moved_in_on': 'DATE', "
    "'fiber_available': 'BOOLEAN', 'satellite_line_of_sight': 'BOOLEAN'})"
)
con.execute(
    "CREATE VIEW holdings AS SELECT * FROM read_csv("
    f"'{data}/crm/holdings.csv', header = true, "
    "types = {'customer_id': 'BIGINT', 'product': 'VARCHAR', 'started_on': 'DATE', "
    "'ended_on': 'DATE'})"
)
con.execute(
    "CREATE VIEW interactions AS SELECT * FROM read_parquet("
    f"'{data}/events/*/*/*.parquet', hive_partitioning = true, "
    "hive_types = {'year': INTEGER, 'month': INTEGER})"
)
*chain, (_, profile) = models()
for name, sql in chain:
    con.execute(f"CREATE VIEW {name} AS {sql}")
con.execute(f"COPY ({profile}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
print(f"{time.monotonic() - started:.2f}")
if state_dir:
    os.makedirs(state_dir, exist_ok=True)
    started = time.monotonic()
    for kind, name, sql in blocks():
        if kind == "feature state":
            con.execute(
                f"COPY ({sql}) TO '{state_dir}/{name}' "
                "(FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day), OVERWRITE_OR_IGNORE)"
            )
    print(f"{time.monotonic() - started:.2f}")
