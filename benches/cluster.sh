#!/usr/bin/env bash
# What a Ballista cluster costs on one machine: the example pipeline on N customers with a year
# of interactions, run in process and then on a loopback cluster of one scheduler and two
# executors (`segflow scheduler`, `segflow executor`, each a process of the same release
# build), side by side in one go. Each engine runs two days in its own project on the same
# files: the first day computes the features from all events, the second continues from them
# (a daily run). Prints both engines' times, their ratio (the cluster's overhead), peak memory
# of every process, and checks that both published the same rows (DuckDB, table by table).
#
#   benches/cluster.sh [CUSTOMERS]   default: 1000000 customers
#
# BENCH_DIR keeps the data between runs (default: a new folder under /tmp).
# Needs GNU time (/usr/bin/time) and `pip install duckdb`.
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-1000000}
work=${BENCH_DIR:-$(mktemp -d /tmp/segflow-cluster.XXXXXX)}
days=(2026-11-19 2026-11-20)

. benches/common.sh
release_build
mkdir -p "$work"
generate_data "$work/data/sample" "$customers"

for project in local cluster; do
  rm -rf "${work:?}/$project"
  mkdir -p "$work/$project"
  cp -r pipelines sql "$work/$project/"
  ln -s "$work/data" "$work/$project/data"
done

# A scheduler and two executors on free loopback ports; each executor runs one task at a time,
# so the cluster uses the machine's two cores as a run in process does.
# Each may hold 3 GiB before it spills.
read -r scheduler_port e1 e2 e3 e4 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
cluster_dir=$work/cluster-processes
rm -rf "$cluster_dir" && mkdir -p "$cluster_dir"
pids=()
stop_cluster() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true; }
trap stop_cluster EXIT
"$bin" scheduler --bind-host 127.0.0.1 --external-host 127.0.0.1 --port "$scheduler_port" \
  > "$cluster_dir/scheduler.log" 2>&1 &
pids+=($!)
sleep 2
for i in 0 1; do
  flight=$([ $i = 0 ] && echo "$e1" || echo "$e3")
  grpc=$([ $i = 0 ] && echo "$e2" || echo "$e4")
  "$bin" executor --scheduler "127.0.0.1:$scheduler_port" --bind-host 127.0.0.1 \
    --external-host 127.0.0.1 --port "$flight" --grpc-port "$grpc" \
    --work-dir "$cluster_dir/executor-$i" --concurrent-tasks 1 --memory-limit 3GiB > "$cluster_dir/executor-$i.log" 2>&1 &
  pids+=($!)
done
sleep 3

run() { # PROJECT LABEL DATE [ARGS]
  local project=$1 label=$2 run_date=$3
  shift 3
  echo "segflow run --date $run_date $*  ($project)" >&2
  (cd "$work/$project" && /usr/bin/time -f "%e %M" -o "../$label.time" \
    "$bin" -q run daily_segments --date "$run_date" "$@" --json > "../$label.json")
}
run local local-first "${days[0]}"
run local local-daily "${days[1]}"
run cluster cluster-first "${days[0]}" --engine "ballista://127.0.0.1:$scheduler_port"
run cluster cluster-daily "${days[1]}" --engine "ballista://127.0.0.1:$scheduler_port"
# Peak memory of the cluster's processes over both runs, before they stop.
for pid in "${pids[@]}"; do
  awk '/VmHWM/ {print $2}' "/proc/$pid/status"
done > "$work/cluster.kib"
stop_cluster
pids=()

cd "$work"
python3 - "${days[@]}" <<'PY'
import glob, json, os, sys
import duckdb

def measured(label):
    seconds, kib = open(f"{label}.time").read().split()
    m = json.load(open(f"{label}.json"))
    return float(seconds), int(kib) / 1024, {s["step"]: s["elapsed_ms"] / 1000 for s in m["steps"]}

print(f"{'':34} {'local':>9} {'cluster':>9} {'ratio':>7}")
for kind in ("first", "daily"):
    local, cluster = measured(f"local-{kind}"), measured(f"cluster-{kind}")
    label = "first run (features from all events)" if kind == "first" else "daily run (the next day)"
    print(f"{label + ', s':34} {local[0]:9.1f} {cluster[0]:9.1f} {cluster[0] / local[0]:6.2f}x")
    print(f"{'  client peak memory (RSS), MiB':34} {local[1]:9.0f} {cluster[1]:9.0f}")
    for step in local[2]:
        print(f"    step {step:<26} {local[2][step]:8.1f} s {cluster[2].get(step, 0):8.1f} s")
kib = [int(line) for line in open("cluster.kib").read().split()]
print("cluster processes' peak memory (RSS), MiB: scheduler {:.0f}, executors {}".format(
    kib[0] / 1024, ", ".join(f"{k / 1024:.0f}" for k in kib[1:])))

# The same rows, table by table, on both days.
con = duckdb.connect()
differ = 0
for day in sys.argv[1:]:
    roots = [f"{p}/out/daily_segments/runs/run_date={day}" for p in ("local", "cluster")]
    tables = sorted({os.path.relpath(os.path.dirname(f), roots[0])
                     for f in glob.glob(f"{roots[0]}/**/*.parquet", recursive=True)})
    for table in tables:
        a, b = (f"read_parquet('{r}/{table}/*.parquet', hive_partitioning = false)" for r in roots)
        only = con.execute(f"SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})),"
                           f" (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}))").fetchone()
        if only != (0, 0):
            differ += 1
            print(f"{day} {table}: {only[0]} rows only in process, {only[1]} only on the cluster")
    print(f"{day}: {len(tables)} tables compared")
print("both engines published the same rows" if differ == 0 else f"{differ} tables differ")
PY
