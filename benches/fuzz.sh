#!/usr/bin/env bash
# Long fuzzing run: damaged copies of the example project (structure-aware edits of the
# pipeline's YAML, byte-level damage to the YAML and the SQL) compiled, validated and run for a
# time budget. Checks that nothing panics or hangs, that every error of a broken pipeline names a
# file and a line, that runs end with exit 0-3, and that a failed run never changes what was
# published. Prints the number of cases at the end.
#
#   benches/fuzz.sh [SECONDS] [FIRST_SEED]        default: 3600 seconds, seed 0
#
# A failing case prints its seed; replay it with SEGFLOW_FUZZ_SEED=<seed> cargo test --lib fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
SEGFLOW_FUZZ_SECONDS="${1:-3600}" SEGFLOW_FUZZ_FIRST_SEED="${2:-0}" \
  cargo test --lib fuzz::cases -- --nocapture
