#!/usr/bin/env bash
# Stream coalescing: N clients in a closed loop all asking for the same event stream, through
# sluice without and with `--coalesce-streams`, on the same sim upstream, same machine.
#
#   bench/run-stream-coalescing.sh [--build DIR] [--reps N] [--clients N] [--seconds S]
#                                  [--out FILE]
#
#   --build DIR    build tree with tools/sluice/sluice and bench/loadgen/sluice-loadgen
#                  (default build/release; the targets are built there)
#   --reps N       repetitions; medians are reported (default 3)
#   --clients N    concurrent clients (default 100)
#   --seconds S    length of each run (default 10)
#   --out FILE     JSON result (default bench/results/<UTC date-time>-stream-coalescing.json)
#
# The stream: /events?n=100&size=100&interval_ms=10&cc=no-cache (100 events, 10 ms apart, about
# one second, marked no-cache as LLM APIs mark theirs). Reported per run: client streams
# completed, upstream streams opened (the sim's count), the gateway's CPU seconds (utime +
# stime from /proc) and the p50 / p99 per client stream.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build="$root/build/release"
reps=3
clients=100
seconds=10
out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)-stream-coalescing.json"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run-stream-coalescing: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
cmake --build "$build" --target sluice_loadgen sluice_cli -j "${JOBS:-2}" >/dev/null
sluice="$build/tools/sluice/sluice"
loadgen="$build/bench/loadgen/sluice-loadgen"

tmp=$(mktemp -d /tmp/sluice-coalescing.XXXXXX)
raw="$tmp/raw.jsonl"
: >"$raw"
pids=()
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
trap 'stop_pids; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
ulimit -n 20000 2>/dev/null || true

cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # clock ticks

echo "run-stream-coalescing: $(uptime)"
for rep in $(seq "$reps"); do
  for mode in plain coalesce; do
    up_port=$(free_port)
    "$sluice" sim-upstream --listen "127.0.0.1:$up_port" --workers 2 --latency 0ms \
      >"$tmp/upstream.log" 2>&1 &
    pids+=("$!")
    wait_port "$up_port" || { echo "run-stream-coalescing: upstream did not start" >&2; exit 1; }
    port=$(free_port)
    flag=()
    [[ $mode == coalesce ]] && flag=(--coalesce-streams)
    "$sluice" serve --listen "127.0.0.1:$port" --upstream "http://127.0.0.1:$up_port" \
      --no-admin --workers 2 --access-log off --data-dir "$tmp/sluice" --log-level warn \
      "${flag[@]}" >"$tmp/sluice.log" 2>&1 &
    gw=$!
    pids+=("$gw")
    wait_port "$port" || { echo "run-stream-coalescing: sluice did not start" >&2; exit 1; }
    before=$(cpu_of "$gw")
    "$loadgen" rate --url "http://127.0.0.1:$port/events?n=100&size=100&interval_ms=10&cc=no-cache" \
      --rate 0 -d "$seconds" -c "$clients" --threads 2 --label "$mode" --json "$tmp/r.json" \
      >"$tmp/loadgen.log" 2>&1 || { cat "$tmp/loadgen.log" >&2; exit 1; }
    after=$(cpu_of "$gw")
    streams=$(curl -s "http://127.0.0.1:$up_port/__sim/stats" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["streams"])')
    python3 - "$mode" "$rep" "$tmp/r.json" "$streams" "$((after - before))" \
      "$(getconf CLK_TCK)" >>"$raw" <<'PY'
import json, sys
mode, rep, path, streams, ticks, hz = sys.argv[1:7]
r = json.load(open(path))
print(json.dumps({"mode": mode, "rep": int(rep), "upstream_streams": int(streams),
                  "gateway_cpu_seconds": int(ticks) / int(hz), "report": r}))
PY
    echo "run-stream-coalescing: rep $rep $mode: $(grep -E 'completed' "$tmp/loadgen.log"), upstream streams $streams, gateway CPU $((after - before)) ticks"
    stop_pids
  done
done

mkdir -p "$(dirname "$out")"
python3 - "$raw" "$out" "$clients" "$seconds" <<'PY'
import json, statistics, sys
raw, out, clients, seconds = sys.argv[1:5]
rows = [json.loads(l) for l in open(raw)]
def med(xs): return statistics.median(xs)
result = {"settings": {"clients": int(clients), "seconds": int(seconds),
                       "stream": "/events?n=100&size=100&interval_ms=10&cc=no-cache"},
          "runs": rows, "medians": {}}
for mode in ("plain", "coalesce"):
    rs = [r for r in rows if r["mode"] == mode]
    result["medians"][mode] = {
        "client_streams": med([r["report"]["completed"] for r in rs]),
        "upstream_streams": med([r["upstream_streams"] for r in rs]),
        "gateway_cpu_seconds": med([r["gateway_cpu_seconds"] for r in rs]),
        "p50_ms": med([r["report"]["latency"]["p50_ms"] for r in rs]),
        "p99_ms": med([r["report"]["latency"]["p99_ms"] for r in rs]),
    }
json.dump(result, open(out, "w"), indent=1)
for mode, m in result["medians"].items():
    print(f"  {mode:9} " + "  ".join(f"{k}={v}" for k, v in m.items()))
print(f"run-stream-coalescing: wrote {out}")
PY
