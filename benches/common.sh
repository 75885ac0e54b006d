# Sourced by the benchmarks, from the repository root: the release build and the generated data.

# Builds segflow in release mode and sets `bin` to the binary; checks for GNU time.
release_build() {
  cargo build --release --quiet
  bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/segflow
  [ -x /usr/bin/time ] || { echo "install GNU time (apt-get install time) for peak memory" >&2; exit 2; }
}

# Generates CUSTOMERS customers with a year of interactions into DATA (the sample's layout),
# unless DATA already holds that many; then adds the sample's erasure requests.
generate_data() { # DATA CUSTOMERS
  local data=$1 customers=$2
  if [ ! -f "$data/crm/customers.csv" ] || [ "$(wc -l < "$data/crm/customers.csv")" -ne $((customers + 1)) ]; then
    rm -rf "$data"
    echo "generating $customers customers with a year of interactions into $data" >&2
    /usr/bin/time -f "generate: %e s, peak %M KiB" "$bin" -q generate --customers "$customers" --days 365 --seed 42 "$data"
  fi
  cp data/sample/crm/erasure_requests.csv "$data/crm/"
}
