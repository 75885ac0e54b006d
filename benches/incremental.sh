#!/usr/bin/env bash
# Incremental features, side by side in one go: N customers with a year of interactions
# (generated once, then each month's events put in time order, as an event log lands them), the
# example pipeline run for the day before D from all events, then for D continuing from that
# state — and, in a second project reading the same files, D from all events (--full-refresh).
# Then DuckDB recomputes the model chain (features from all events) on the same files, the
# other way to get the same profile every day. Prints the feature steps' time and the whole
# run's time of the full and the incremental run of D, their ratios, and peak memory.
#
#   benches/incremental.sh [CUSTOMERS] [MEMORY_LIMIT]   default: 1000000 customers, no limit
#
# BENCH_DIR keeps the data between runs (default: a new folder under /tmp).
# Needs GNU time (/usr/bin/time) and `pip install duckdb pyarrow`.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-1000000}
memory_limit=${2:-}
work=${BENCH_DIR:-$(mktemp -d /tmp/segflow-incremental.XXXXXX)}
day_before=2026-11-19
date=2026-11-20

. benches/common.sh
release_build
mkdir -p "$work"
data=$work/data/sample
generate_data "$data" "$customers"
if [ ! -f "$data/events/.time_ordered" ]; then
  echo "putting each month's events in time order" >&2
  python3 - "$data/events" <<'PY'
import glob, os, shutil, sys
import duckdb
events = sys.argv[1]
con = duckdb.connect()
for month in sorted(glob.glob(f"{events}/year=*/month=*")):
    files = sorted(glob.glob(f"{month}/*.parquet"))
    ordered = f"{month}/ordered.parquet.tmp"
    con.execute(
        f"COPY (SELECT * FROM read_parquet({files!r}, hive_partitioning = false) ORDER BY event_time) "
        f"TO '{ordered}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 131072)"
    )
    for f in files:
        os.remove(f)
    shutil.move(ordered, f"{month}/part-00000.parquet")
open(f"{events}/.time_ordered", "w").close()
PY
fi

# Two projects on the same data: one runs day after day, the other recomputes D alone.
for project in daily full; do
  rm -rf "${work:?}/$project"
  mkdir -p "$work/$project"
  cp -r pipelines sql "$work/$project/"
  ln -s "$work/data" "$work/$project/data"
done
limit_args=()
[ -n "$memory_limit" ] && limit_args=(--memory-limit "$memory_limit")
run() { # PROJECT LABEL DATE [ARGS]
  local project=$1 label=$2 run_date=$3
  shift 3
  echo "segflow run --date $run_date $* ${limit_args[*]}  ($project)" >&2
  (cd "$work/$project" && /usr/bin/time -f "%e %M" -o "../$label.time" \
    "$bin" -q run daily_segments --date "$run_date" "${limit_args[@]}" "$@" --json > "../$label.json")
}
run daily history "$day_before"
run daily incremental "$date"
run full full "$date" --full-refresh
echo "duckdb, the model chain from all events ${memory_limit:+(memory_limit $memory_limit)}" >&2
(cd "$work/daily" && "$bin" -q plan daily_segments --format sql > ../models.sql)
/usr/bin/time -f "%e %M" -o "$work/duckdb.time" python3 benches/duckdb_models.py "$work/daily" "$date" \
  "$work/duckdb_profile.parquet" "$work/models.sql" ${memory_limit:+"$memory_limit"} > "$work/duckdb.seconds" \
  || { echo "DuckDB failed (see above)" >&2; echo failed > "$work/duckdb.seconds"; }

cd "$work"
python3 - <<'PY'
import json

def measured(label):
    seconds, kib = open(f"{label}.time").read().split()
    m = json.load(open(f"{label}.json"))
    steps = {s["step"]: s["elapsed_ms"] / 1000 for s in m["steps"]}
    features = sum(v for k, v in steps.items() if k.startswith("feature "))
    modes = {f["feature"]: f["mode"] for f in m["features"]}
    return float(seconds), int(kib) / 1024, features, steps, modes, m

full = measured("full")
inc = measured("incremental")
assert set(full[4].values()) == {"full"}, full[4]
assert set(inc[4].values()) == {"incremental"}, inc[4]
profile = next(o for o in inc[5]["outputs"] if o["name"] == "customer_profile")["rows"]
days = sorted({d for f in inc[5]["features"] for d in f.get("days_read", [])})
print(f"customers {profile:,}; incremental run read the events of {days[0]} to {days[-1]}")
print(f"{'':30} {'full':>9} {'incremental':>12} {'ratio':>7}")
print(f"{'feature steps, s':30} {full[2]:9.1f} {inc[2]:12.1f} {full[2] / inc[2]:7.1f}x")
print(f"{'whole run, s':30} {full[0]:9.1f} {inc[0]:12.1f} {full[0] / inc[0]:7.1f}x")
print(f"{'peak memory (RSS), MiB':30} {full[1]:9.0f} {inc[1]:12.0f}")
for name in full[3]:
    print(f"  step {name:<32} {full[3][name]:8.1f} s {inc[3].get(name, 0):8.1f} s")
in_chain = lambda step: step.startswith(("model ", "feature ")) or step == "register sources"
chain = sum(v for k, v in inc[3].items() if in_chain(k))
after = sum(v for k, v in inc[3].items() if not in_chain(k))
print(f"after the profile, incremental run: {after:.1f} s, {after / chain:.2f} of its model chain")
duck = open("duckdb.seconds").read().strip()
if duck == "failed":
    print(f"model chain of the incremental run {chain:.1f} s; DuckDB recomputing it failed")
else:
    duck_mib = int(open("duckdb.time").read().split()[1]) / 1024
    print(f"model chain of the incremental run {chain:.1f} s vs DuckDB recomputing it "
          f"{float(duck):.1f} s ({duck_mib:,.0f} MiB): {chain / float(duck):.2f}x")
PY
