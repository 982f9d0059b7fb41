#!/usr/bin/env bash
# Streaming benchmark: sluice's SSE broadcaster beside nginx + nchan, and sluice's streaming
# pass-through beside nginx with `proxy_buffering off`, on this machine, same workers, same load.
#
#   bench/run-sse.sh [--build DIR] [--reps N] [--subscribers N] [--events N] [--rate R]
#                    [--out FILE] [--no-build]
#
#   --build DIR       build tree with tools/sluice/sluice and bench/loadgen/sluice-loadgen
#                     (default build/release; built there unless --no-build)
#   --reps N          repetitions; medians are reported (default 3)
#   --subscribers N   SSE subscribers of the broadcast scenarios (default 1000)
#   --events N        events published per run (default 2000)
#   --rate R          events/s of the latency scenario (default 100)
#   --out FILE        JSON result (default bench/results/<UTC date-time>-sse.json)
#
# Scenarios (each system started fresh for each):
#   B1 throughput  N subscribers, events published back to back (each POST answered before
#                  the next): deliveries/s, publish-to-receive p50/p99, RSS after.
#   B2 latency     N subscribers, events at a fixed rate: publish-to-receive p50/p99/max.
#   S1 streaming   closed-loop GETs of a 200-event stream from the sim upstream (/events),
#                  direct, through sluice and through nginx (proxy_buffering off): streams/s and
#                  p50 per stream; the per-event overhead is (p50 - direct p50) / 200.
# Needs nginx with libnginx-mod-nchan, curl, python3 (scripts/install-deps.sh --bench).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=build/release
reps=3
subscribers=1000
events=2000
rate=100
out=""
do_build=1
workers=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --subscribers) subscribers=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run-sse: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$build" = /* ]] || build="$root/$build"
[[ -n "$out" ]] || out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)-sse.json"
[[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] || {
  echo "run-sse: nchan missing; run scripts/install-deps.sh --bench" >&2; exit 2; }
if [[ $do_build -eq 1 && -f "$build/build.ninja" ]]; then
  cmake --build "$build" --target sluice_loadgen sluice_cli -j "${JOBS:-2}" >/dev/null
fi
sluice="$build/tools/sluice/sluice"
loadgen="$build/bench/loadgen/sluice-loadgen"
ulimit -n 20000

tmp=$(mktemp -d /tmp/sluice-sse.XXXXXX)
chmod 755 "$tmp"
raw="$tmp/raw.jsonl"
: >"$raw"
pids=()
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
trap 'stop_pids; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"

# Starts SYSTEM; sets PORT, PID, SUB and PUB (URL paths).
start_system() {
  PORT=$(free_port)
  case "$1" in
    sluice)
      mkdir -p "$tmp/sluice"
      "$sluice" serve --listen "127.0.0.1:$PORT" --upstream "http://127.0.0.1:$UP_PORT" \
        --no-admin --workers "$workers" --access-log off --data-dir "$tmp/sluice" \
        --broadcast-prefix /events/ --log-level warn >"$tmp/sluice.log" 2>&1 &
      PID=$!; SUB=/events/bench; PUB=/events/bench ;;
    nchan|nginx-stream)
      local prefix="$tmp/$1"
      mkdir -p "$prefix"
      sed -e "s|@PREFIX@|$prefix|g" -e "s|@WORKERS@|$workers|g" -e "s|@UPSTREAM_PORT@|$UP_PORT|g" \
        -e "s|@PORT@|$PORT|g" -e "s|@USER_LINE@|$user_line|" \
        "$here/peers/nginx-$([[ $1 == nchan ]] && echo nchan || echo stream).conf.in" \
        >"$prefix/nginx.conf"
      nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$prefix/out.log" 2>&1 &
      PID=$!; SUB=/sub/bench; PUB=/pub/bench ;;
  esac
  pids+=("$PID")
  wait_port "$PORT" || { echo "run-sse: $1 did not start" >&2; exit 1; }
}
record() {  # SCENARIO SYSTEM REP REPORT-JSON-FILE RSS-KiB
  python3 - "$@" >>"$raw" <<'PY'
import json, sys
scenario, system, rep, path, rss = sys.argv[1:6]
r = json.load(open(path))
print(json.dumps({"scenario": scenario, "system": system, "rep": int(rep),
                  "rss_kib": int(rss), "report": r}))
PY
}

echo "run-sse: $(uptime)"
UP_PORT=$(free_port)
"$sluice" sim-upstream --listen "127.0.0.1:$UP_PORT" --workers "$workers" --latency 0ms \
  >"$tmp/upstream.log" 2>&1 &
up_pid=$!
wait_port "$UP_PORT" || { echo "run-sse: upstream did not start" >&2; exit 1; }

for rep in $(seq "$reps"); do
  for sys in sluice nchan; do
    for scenario in B1 B2; do
      start_system "$sys"
      args=(sse --url "http://127.0.0.1:$PORT$SUB" --publish-url "http://127.0.0.1:$PORT$PUB"
            -n "$subscribers" --events "$events" --threads 2 --size 100 --label "$sys"
            --json "$tmp/r.json")
      [[ $scenario == B2 ]] && args+=(--rate "$rate")
      "$loadgen" "${args[@]}" >"$tmp/loadgen.log" 2>&1 || { cat "$tmp/loadgen.log" >&2; exit 1; }
      record "$scenario" "$sys" "$rep" "$tmp/r.json" "$(rss_of "$PID")"
      echo "run-sse: rep $rep $scenario $sys: $(grep -E 'deliveries_per_second|p99' "$tmp/loadgen.log" | tr -s ' ' | tr '\n' ' ')"
      stop_pids
    done
  done
  for sys in direct sluice nginx-stream; do
    if [[ $sys == direct ]]; then PORT=$UP_PORT; else start_system "$sys"; fi
    "$loadgen" rate --url "http://127.0.0.1:$PORT/events?n=200&size=100" --rate 0 -d 5 -c 8 \
      --threads 2 --label "$sys" --json "$tmp/r.json" >"$tmp/loadgen.log" 2>&1
    record S1 "$sys" "$rep" "$tmp/r.json" "$([[ $sys == direct ]] && echo 0 || rss_of "$PID")"
    echo "run-sse: rep $rep S1 $sys: $(grep -E 'p50|completed' "$tmp/loadgen.log" | head -2 | tr -s ' ' | tr '\n' ' ')"
    [[ $sys == direct ]] || stop_pids
  done
done
kill -TERM "$up_pid" 2>/dev/null || true

python3 - "$raw" "$out" "$subscribers" "$events" "$rate" <<'PY'
import json, statistics, sys, platform, os
raw, out, subscribers, events, rate = sys.argv[1:6]
rows = [json.loads(l) for l in open(raw)]
def med(xs): return statistics.median(xs) if xs else None
summary = {}
for row in rows:
    key = (row["scenario"], row["system"])
    summary.setdefault(key, []).append(row)
table = {}
for (scenario, system), rs in sorted(summary.items()):
    rep = [r["report"] for r in rs]
    entry = {
        "p50_ms": med([r["latency"]["p50_ms"] for r in rep]),
        "p99_ms": med([r["latency"]["p99_ms"] for r in rep]),
        "rss_kib": med([r["rss_kib"] for r in rs]),
    }
    if scenario.startswith("B"):
        entry["deliveries_per_second"] = med([r["deliveries_per_second"] for r in rep])
        entry["missing"] = max(r["missing_deliveries"] for r in rep)
        entry["out_of_order"] = max(r["out_of_order"] for r in rep)
    else:
        entry["streams_per_second"] = med([r["completed"] / r["elapsed_s"] for r in rep])
    table.setdefault(scenario, {})[system] = entry
if "S1" in table and "direct" in table["S1"]:
    base = table["S1"]["direct"]["p50_ms"]
    for system, e in table["S1"].items():
        e["per_event_overhead_us"] = (e["p50_ms"] - base) * 1e3 / 200 if base is not None else None
result = {"machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
          "settings": {"subscribers": int(subscribers), "events": int(events),
                       "rate": float(rate), "workers": 2},
          "medians": table, "runs": rows}
json.dump(result, open(out, "w"), indent=1)
for scenario, systems in table.items():
    print(scenario)
    for system, e in systems.items():
        print("  %-13s %s" % (system, "  ".join("%s=%s" % (k, ("%.3f" % v) if isinstance(v, float) else v)
                                                for k, v in e.items())))
print("run-sse: wrote", out)
PY
