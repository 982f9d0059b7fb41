#!/usr/bin/env bash
# Runs every Google Benchmark binary of a build, with repetitions, and prints medians.
#   bench/run-microbenchmarks.sh build/release [filter]
# Results also go to build/<preset>/bench/<binary>.json for docs/benchmarks.md.
set -euo pipefail
build=${1:-build/release}
filter=${2:-.}
reps=${SLUICE_BENCH_REPETITIONS:-5}
mkdir -p "$build/bench"
for bin in $(find "$build/sluice" -type f -name '*_benchmark' -perm -u+x | sort); do
  name=$(basename "$bin")
  echo "== $name =="
  "$bin" --benchmark_filter="$filter" --benchmark_repetitions="$reps" \
    --benchmark_report_aggregates_only=true --benchmark_out="$build/bench/$name.json" \
    --benchmark_out_format=json 2>/dev/null | grep -E "median|^-|^Benchmark" || true
done
