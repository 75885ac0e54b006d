"""The example pipeline's model chain run by DuckDB on the same files, to compare with segflow.

    segflow plan daily_segments --format sql > MODELS.sql
    python3 benches/duckdb_models.py PROJECT RUN_DATE OUT.parquet MODELS.sql [MEMORY_LIMIT]

Reads the sources as the pipeline declares them (CSV with the same typed columns, the
interactions as Hive-partitioned Parquet), runs every model and feature of the pipeline in run
order as `segflow plan --format sql` prints them (a feature as the query computing it from all
its events, as a full refresh does) with the parameters bound, and writes the last one, the
profile, to one zstd Parquet file, as segflow does. segflow's identifier functions become DuckDB's
`sha256`, `lower` and `regexp_replace`: cheaper than segflow's (which validate and normalize by
country) but close enough to compare the engines. Prints the seconds it took.
"""

import re
import sys
import time

import duckdb

project, run_date, out, models_sql = sys.argv[1:5]
memory_limit = sys.argv[5] if len(sys.argv) > 5 else None

params = {"run_date": f"DATE '{run_date}'", "lookback_days": "365"}
functions = {
    r"sha256_email\(([^)]*)\)": r"sha256(lower(trim(\1)))",
    r"normalize_phone\(([^,]*),[^)]*\)": r"regexp_replace(\1, '[^0-9+]', '', 'g')",
    r"sha256_phone_e164\(([^,]*),[^)]*\)": r"sha256(regexp_replace(\1, '[^0-9+]', '', 'g'))",
}


def models():
    """(name, SQL) of every model and feature, in run order."""
    blocks = re.split(r"^-- (?:model|feature): (\w+)$", open(models_sql).read(), flags=re.M)
    return [(name, bind(sql.strip().rstrip(";"))) for name, sql in zip(blocks[1::2], blocks[2::2])]


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
