#!/usr/bin/env bash
# Benchmark: generate N customers with a year of interactions, run the example pipeline on
# them with a release build, and print throughput, peak memory and the time of each step
# (segment evaluation vs offer decisioning).
#
#   benches/daily.sh [CUSTOMERS] [MEMORY_LIMIT]      default: 1000000 customers, 8GiB
#
# Needs GNU time (/usr/bin/time, Debian package "time") for peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-1000000}
memory_limit=${2:-8GiB}
work=${BENCH_DIR:-$(mktemp -d /tmp/segflow-bench.XXXXXX)}
date=2026-11-20

cargo build --release --quiet
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/segflow
[ -x /usr/bin/time ] || { echo "install GNU time (apt-get install time) for peak memory" >&2; exit 2; }

mkdir -p "$work"
cp -r pipelines sql "$work/"
if [ ! -f "$work/data/sample/crm/customers.csv" ] || [ "$(wc -l < "$work/data/sample/crm/customers.csv")" -ne $((customers + 1)) ]; then
  rm -rf "$work/data/sample"
  echo "generating $customers customers with a year of interactions into $work/data/sample" >&2
  /usr/bin/time -f "generate: %e s, peak %M KiB" "$bin" -q generate --customers "$customers" --days 365 --seed 42 "$work/data/sample"
fi
cp data/sample/crm/erasure_requests.csv "$work/data/sample/crm/"

cd "$work"
rm -rf out
/usr/bin/time -f "%e %M" -o time.txt "$bin" -q run daily_segments --date "$date" --memory-limit "$memory_limit" --json > manifest.json
read -r seconds peak_kib < time.txt

python3 - "$seconds" "$peak_kib" <<'PY'
import json, sys
seconds, peak_kib = float(sys.argv[1]), int(sys.argv[2])
m = json.load(open("manifest.json"))
input_bytes = sum(i["bytes"] for i in m["inputs"])
profile = next(o for o in m["outputs"] if o["name"] == "customer_profile")["rows"]
steps = {s["step"]: s for s in m["steps"]}
import pyarrow.parquet as pq, glob
events = sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob("data/sample/events/*/*/*.parquet"))
print(f"customers (profile rows):   {profile:,}")
print(f"interaction rows read:      {events:,}")
print(f"input size:                 {input_bytes / 2**20:,.0f} MiB")
print(f"wall time:                  {seconds:,.1f} s")
print(f"throughput:                 {events / seconds:,.0f} interaction rows/s, {profile / seconds:,.0f} customers/s")
print(f"peak memory (RSS):          {peak_kib / 1024:,.0f} MiB")
for name in ["register sources", "model customer_profile", "checks", "segments", "offers"]:
    if name in steps:
        print(f"  step {name:<24} {steps[name]['elapsed_ms'] / 1000:8.1f} s")
offers = m["offers"]
candidates = sum(o["eligible"] for o in offers)
print(f"offers: {len(offers)} offers, {candidates:,} eligible (customer, offer) pairs, {sum(o['assigned'] for o in offers):,} assigned")
PY
