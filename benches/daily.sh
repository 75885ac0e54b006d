#!/usr/bin/env bash
# Benchmark, side by side in one go: generate N customers with a year of interactions (or reuse
# them), run the example pipeline with a release build (its first run: features are computed
# from all events), then DuckDB on the same model SQL — `segflow plan --format sql`, features as
# the queries computing them from all events — and the same files (benches/duckdb_models.py).
# Prints the time and peak memory of each, their ratios, and the time of each segflow step.
# DuckDB then also writes the features' per-day partials, as segflow's first run does beside
# the chain (the plan's `-- feature state:` queries), for a ratio on the same work.
#
#   benches/daily.sh [CUSTOMERS] [MEMORY_LIMIT]      default: 1000000 customers, no limit
#
# BENCH_DIR keeps the generated data between runs (default: a new folder under /tmp).
# Needs GNU time (/usr/bin/time, Debian package "time") and `pip install duckdb pyarrow`.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-1000000}
memory_limit=${2:-}
work=${BENCH_DIR:-$(mktemp -d /tmp/segflow-bench.XXXXXX)}
date=2026-11-20
benches=$(pwd)/benches

. benches/common.sh
release_build
mkdir -p "$work"
rm -rf "$work/pipelines" "$work/sql"
cp -r pipelines sql "$work/"
generate_data "$work/data/sample" "$customers"

cd "$work"
rm -rf out
limit_args=()
[ -n "$memory_limit" ] && limit_args=(--memory-limit "$memory_limit")
echo "segflow run ${limit_args[*]}" >&2
/usr/bin/time -f "%e %M" -o segflow.time "$bin" -q run daily_segments --date "$date" "${limit_args[@]}" --json > manifest.json
echo "duckdb, same model SQL ${memory_limit:+(memory_limit $memory_limit)}" >&2
"$bin" -q plan daily_segments --format sql > models.sql
/usr/bin/time -f "%e %M" -o duckdb.time python3 "$benches/duckdb_models.py" "$work" "$date" "$work/duckdb_profile.parquet" models.sql ${memory_limit:+"$memory_limit"} --state "$work/duckdb_state" > duckdb.seconds \
  || { echo "DuckDB failed (see above)" >&2; echo "nan nan" > duckdb.seconds; }
rm -rf "$work/duckdb_state"

python3 - <<'PY'
import glob, json
import pyarrow.parquet as pq

def timed(name):
    seconds, kib = open(name).read().split()[-2:]  # after GNU time's note of a failure
    return float(seconds), int(kib) / 1024

run_s, run_mib = timed("segflow.time")
duck_wall, duck_mib = timed("duckdb.time")
duck_models, duck_state = map(float, open("duckdb.seconds").read().split())
duck_first = duck_models + duck_state
m = json.load(open("manifest.json"))
steps = {s["step"]: s["elapsed_ms"] / 1000 for s in m["steps"]}
in_chain = lambda step: step.startswith(("model ", "feature ")) or step == "register sources"
chain = sum(v for k, v in steps.items() if in_chain(k))
# What the chain spent writing per-day partials for the runs to come: the state, which DuckDB's
# chain (the features recomputed from all events) does not write.
state = sum(f.get("days_ms", 0) for f in m.get("features", []) if f["mode"] == "full") / 1000
after = sum(v for k, v in steps.items() if not in_chain(k))
profile = next(o for o in m["outputs"] if o["name"] == "customer_profile")["rows"]
events = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob("data/sample/events/*/*/*.parquet"))
open("interactions.count", "w").write(str(events))
open("segflow_chain.seconds", "w").write(f"{chain} {state}")  # for scaling.sh

print(f"customers {profile:,}, interactions {events:,}")
print(f"{'':34} {'segflow':>10} {'duckdb':>10} {'ratio':>7}")
print(f"{'model chain (all models), s':34} {chain:10.1f} {duck_models:10.1f} {chain / duck_models:7.2f}")
print(f"{'whole run vs duckdb model chain, s':34} {run_s:10.1f} {duck_models:10.1f} {run_s / duck_models:7.2f}")
print(f"{'after the profile / model chain':34} {after:10.1f} {'':>10} {after / chain:7.2f}")
print(f"{'model chain without the state, s':34} {chain - state:10.1f} {duck_models:10.1f} {(chain - state) / duck_models:7.2f}")
print(f"{'  (the per-day state it wrote, s)':34} {state:10.1f}")
print("the same work: duckdb also writes every feature's per-day partials (segflow's state)")
print(f"{'model chain and state, s':34} {chain:10.1f} {duck_first:10.1f} {chain / duck_first:7.2f}")
print(f"{'whole run vs that, s':34} {run_s:10.1f} {duck_first:10.1f} {run_s / duck_first:7.2f}")
print(f"{'peak memory (RSS), MiB':34} {run_mib:10.0f} {duck_mib:10.0f} {run_mib / duck_mib:7.2f}")
print(f"throughput: {events / run_s:,.0f} interaction rows/s, {profile / run_s:,.0f} customers/s")
for name, seconds in steps.items():
    print(f"  step {name:<30} {seconds:8.1f} s")
offers = m["offers"]
print(f"offers: {len(offers)}, {sum(o['eligible'] for o in offers):,} eligible (customer, offer) pairs, "
      f"{sum(o['assigned'] for o in offers):,} assigned")
PY
