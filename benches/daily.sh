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
# ROUNDS (default 1) runs segflow and DuckDB that many times, alternating: each figure printed
# is then the median of the rounds' (a ratio, the median of the rounds' ratios; peak memory,
# the largest), and a line gives every round's ratio of the chains, so that a machine whose
# speed changes from minute to minute shows as a spread instead of moving one figure.
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
rounds=${ROUNDS:-1}
rm -f segflow.*.time manifest.*.json duckdb.*.time duckdb.*.seconds
limit_args=()
[ -n "$memory_limit" ] && limit_args=(--memory-limit "$memory_limit")
"$bin" -q plan daily_segments --format sql > models.sql
for round in $(seq "$rounds"); do
  rm -rf out
  echo "round $round/$rounds: segflow run ${limit_args[*]}" >&2
  /usr/bin/time -f "%e %M" -o "segflow.$round.time" "$bin" -q run daily_segments --date "$date" "${limit_args[@]}" --json > "manifest.$round.json"
  echo "round $round/$rounds: duckdb, same model SQL ${memory_limit:+(memory_limit $memory_limit)}" >&2
  /usr/bin/time -f "%e %M" -o "duckdb.$round.time" python3 "$benches/duckdb_models.py" "$work" "$date" "$work/duckdb_profile.parquet" models.sql ${memory_limit:+"$memory_limit"} --state "$work/duckdb_state" > "duckdb.$round.seconds" \
    || { echo "DuckDB failed (see above)" >&2; echo "nan nan" > "duckdb.$round.seconds"; }
  rm -rf "$work/duckdb_state"
done

python3 - "$rounds" <<'PY'
import glob, json, statistics, sys
import pyarrow.parquet as pq

rounds = int(sys.argv[1])

def timed(name):
    seconds, kib = open(name).read().split()[-2:]  # after GNU time's note of a failure
    return float(seconds), int(kib) / 1024

in_chain = lambda step: step.startswith(("model ", "feature ")) or step == "register sources"

def measured(r):
    """One round's figures: segflow's run and DuckDB's chain, each as printed below."""
    run_s, run_mib = timed(f"segflow.{r}.time")
    _, duck_mib = timed(f"duckdb.{r}.time")
    duck_models, duck_state = map(float, open(f"duckdb.{r}.seconds").read().split())
    m = json.load(open(f"manifest.{r}.json"))
    steps = {s["step"]: s["elapsed_ms"] / 1000 for s in m["steps"]}
    chain = sum(v for k, v in steps.items() if in_chain(k))
    # What the chain spent writing per-day partials for the runs to come: the state, which
    # DuckDB's chain (the features recomputed from all events) does not write.
    state = sum(f.get("days_ms", 0) for f in m.get("features", []) if f["mode"] == "full") / 1000
    return dict(run_s=run_s, run_mib=run_mib, duck_mib=duck_mib, duck_models=duck_models,
                duck_first=duck_models + duck_state, chain=chain, state=state,
                after=sum(v for k, v in steps.items() if not in_chain(k)), steps=steps, manifest=m)

all_rounds = [measured(r) for r in range(1, rounds + 1)]
med = lambda f: statistics.median(f(x) for x in all_rounds)
last = all_rounds[-1]["manifest"]
profile = next(o for o in last["outputs"] if o["name"] == "customer_profile")["rows"]
events = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob("data/sample/events/*/*/*.parquet"))
run_s, chain, state, after = med(lambda x: x["run_s"]), med(lambda x: x["chain"]), med(lambda x: x["state"]), med(lambda x: x["after"])
duck_models, duck_first = med(lambda x: x["duck_models"]), med(lambda x: x["duck_first"])
run_mib, duck_mib = max(x["run_mib"] for x in all_rounds), max(x["duck_mib"] for x in all_rounds)
# For scaling.sh: the median round's figures.
open("interactions.count", "w").write(str(events))
open("segflow_chain.seconds", "w").write(f"{chain} {state}")
open("segflow.time", "w").write(f"{run_s} {int(run_mib * 1024)}")
open("duckdb.seconds", "w").write(f"{duck_models} {duck_first - duck_models}")

print(f"customers {profile:,}, interactions {events:,}"
      + (f"; the median of {rounds} rounds, alternating" if rounds > 1 else ""))
print(f"{'':34} {'segflow':>10} {'duckdb':>10} {'ratio':>7}")
print(f"{'model chain (all models), s':34} {chain:10.1f} {duck_models:10.1f} {med(lambda x: x['chain'] / x['duck_models']):7.2f}")
print(f"{'whole run vs duckdb model chain, s':34} {run_s:10.1f} {duck_models:10.1f} {med(lambda x: x['run_s'] / x['duck_models']):7.2f}")
print(f"{'after the profile / model chain':34} {after:10.1f} {'':>10} {med(lambda x: x['after'] / x['chain']):7.2f}")
print(f"{'model chain without the state, s':34} {chain - state:10.1f} {duck_models:10.1f} {med(lambda x: (x['chain'] - x['state']) / x['duck_models']):7.2f}")
print(f"{'  (the per-day state it wrote, s)':34} {state:10.1f}")
print("the same work: duckdb also writes every feature's per-day partials (segflow's state)")
print(f"{'model chain and state, s':34} {chain:10.1f} {duck_first:10.1f} {med(lambda x: x['chain'] / x['duck_first']):7.2f}")
print(f"{'whole run vs that, s':34} {run_s:10.1f} {duck_first:10.1f} {med(lambda x: x['run_s'] / x['duck_first']):7.2f}")
print(f"{'peak memory (RSS), MiB':34} {run_mib:10.0f} {duck_mib:10.0f} {run_mib / duck_mib:7.2f}")
if rounds > 1:
    print("model chain / duckdb's, each round: "
          + ", ".join(f"{x['chain'] / x['duck_models']:.2f} ({x['chain']:.1f} s / {x['duck_models']:.1f} s)" for x in all_rounds))
print(f"throughput: {events / run_s:,.0f} interaction rows/s, {profile / run_s:,.0f} customers/s")
for name in all_rounds[-1]["steps"]:
    print(f"  step {name:<30} {med(lambda x: x['steps'].get(name, 0)):8.1f} s")
offers = last["offers"]
print(f"offers: {len(offers)}, {sum(o['eligible'] for o in offers):,} eligible (customer, offer) pairs, "
      f"{sum(o['assigned'] for o in offers):,} assigned")
PY
