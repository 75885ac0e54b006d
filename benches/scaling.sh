#!/usr/bin/env bash
# The scaling curve: benches/daily.sh at several sizes one after the other, then one line per
# size with segflow's time (a first run), peak memory and throughput beside DuckDB's model chain
# alone and with the features' per-day state written as segflow's first run writes it (the same
# work). Time should grow with the number of interactions, not faster.
#
#   benches/scaling.sh [CUSTOMERS...]        default: 100000 1000000
#
# MEMORY_LIMIT (e.g. 3GiB) applies to every size. BENCH_ROOT keeps each size's generated data in
# BENCH_ROOT/<customers> between runs (default: a new folder under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100000 1000000)
root=${BENCH_ROOT:-$(mktemp -d /tmp/segflow-scaling.XXXXXX)}

for customers in "${sizes[@]}"; do
  echo "== $customers customers" >&2
  BENCH_DIR="$root/$customers" benches/daily.sh "$customers" ${MEMORY_LIMIT:-} >&2
done

python3 - "$root" "${sizes[@]}" <<'PY'
import sys

root, sizes = sys.argv[1], sys.argv[2:]

def timed(path):
    seconds, kib = open(path).read().split()
    return float(seconds), int(kib) / 1024

# ratio: segflow's first run to DuckDB's chain; without state: segflow's model chain without the
# per-day state it writes (the same SQL as DuckDB's chain) to DuckDB's chain; the last ratio:
# segflow's first run to DuckDB's chain and the same state.
print(f"{'customers':>11} {'interactions':>14} {'segflow s':>10} {'RSS MiB':>8} "
      f"{'rows/s':>11} {'duckdb chain s':>15} {'ratio':>6} {'without state':>14} "
      f"{'+ state s':>10} {'ratio':>6}")
for size in sizes:
    work = f"{root}/{size}"
    seconds, mib = timed(f"{work}/segflow.time")
    chain, state = map(float, open(f"{work}/duckdb.seconds").read().split())
    ours, ours_state = map(float, open(f"{work}/segflow_chain.seconds").read().split())
    events = int(open(f"{work}/interactions.count").read())
    print(f"{int(size):>11,} {events:>14,} {seconds:>10.1f} {mib:>8.0f} "
          f"{events / seconds:>11,.0f} {chain:>15.1f} {seconds / chain:>6.2f} "
          f"{(ours - ours_state) / chain:>14.2f} "
          f"{chain + state:>10.1f} {seconds / (chain + state):>6.2f}")
PY
