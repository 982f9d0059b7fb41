#!/usr/bin/env bash
# Side-by-side benchmark: sluice against nginx (caching and plain keep-alive proxy) and Varnish,
# all in front of the same simulated upstream, driven by sluice-loadgen and wrk.
#
#   bench/run-peers.sh [--build DIR] [--reps N] [--duration S] [--scenarios 1,2,3,4,5,6]
#                      [--s5-requests N] [--out FILE] [--no-build] [--sluice BIN] [--loadgen BIN]
#
#   --build DIR        build tree holding tools/sluice/sluice and bench/loadgen/sluice-loadgen
#                      (default $SLUICE_BUILD or build/release); built there unless --no-build
#   --reps N           repetitions of every timed scenario; the median is reported (default 3)
#   --duration S       seconds of each wrk / rate run (default 10)
#   --scenarios LIST   which scenarios to run (default all: 1..6, see bench/README.md)
#   --s5-requests N    requests of the memory scenario (default 1000000)
#   --out FILE         JSON result (default bench/results/<UTC date-time>.json)
#   --sluice BIN, --loadgen BIN   binaries to use instead of the ones in the build tree
#
# Runs without `sluice serve` (then only the peer columns and the direct upstream are
# measured, and the ratios are null) and without `sluice sim-upstream` (then the stand-in
# upstream of sluice-loadgen is used). Needs nginx, varnishd, wrk, curl, python3:
# `scripts/install-deps.sh --bench` installs them. Every process it starts is stopped on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${SLUICE_BUILD:-build/release}
reps=3
duration=10
scenarios=1,2,3,4,5,6
s5_requests=1000000
out=""
do_build=1
sluice=""
loadgen=""
workers=2
ttl=60

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --s5-requests) s5_requests=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --sluice) sluice=$2; shift 2 ;;
    --loadgen) loadgen=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "run-peers: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$build" = /* ]] || build="$root/$build"
[[ -n "$out" ]] || out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ).json"

for tool in nginx varnishd wrk curl python3; do
  command -v "$tool" >/dev/null || {
    echo "run-peers: $tool not found; run scripts/install-deps.sh --bench" >&2; exit 2; }
done

if [[ $do_build -eq 1 && -f "$build/build.ninja" ]]; then
  echo "run-peers: building sluice_loadgen and sluice_cli in $build"
  cmake --build "$build" --target sluice_loadgen sluice_cli -j "${JOBS:-2}" >/dev/null
fi
[[ -n "$loadgen" ]] || loadgen="$build/bench/loadgen/sluice-loadgen"
[[ -n "$sluice" ]] || sluice="$build/tools/sluice/sluice"
[[ -x "$loadgen" ]] || { echo "run-peers: $loadgen missing (build target sluice_loadgen)" >&2; exit 2; }

has_cmd() { [[ -x "$sluice" ]] && "$sluice" "$1" --help >/dev/null 2>&1; }
want() { [[ ",$scenarios," == *",$1,"* ]]; }

tmp=$(mktemp -d /tmp/sluice-peers.XXXXXX)
chmod 755 "$tmp"
raw="$tmp/raw.jsonl"
: >"$raw"
pids=()
trap 'stop_pids; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
wait_ready_file() {  # FILE PID
  for _ in $(seq 200); do
    [[ -s "$1" ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
# Sum of RSS and PSS (KiB) of a process and its children.
mem_of() {
  local pid=$1 rss=0 pss=0 p
  for p in $pid $(pgrep -P "$pid" || true); do
    [[ -r /proc/$p/smaps_rollup ]] || continue
    rss=$((rss + $(awk '/^Rss:/{print $2}' /proc/$p/smaps_rollup)))
    pss=$((pss + $(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup)))
  done
  echo "$rss $pss"
}
record() {  # SCENARIO SYSTEM REP JSON-OBJECT
  printf '{"scenario":"%s","system":"%s","rep":%s,"m":%s}\n' "$1" "$2" "$3" "$4" >>"$raw"
}

echo "run-peers: $(uptime)"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the upstream ---------------------------------------------------------------------------
if has_cmd sim-upstream; then
  upstream_kind="sluice sim-upstream"
  "$sluice" sim-upstream --listen 127.0.0.1:0 --workers "$workers" --latency 0ms \
    --ready-file "$tmp/upstream.ready" >"$tmp/upstream.log" 2>&1 &
else
  upstream_kind="sluice-loadgen stand-in-upstream (sluice sim-upstream not built)"
  "$loadgen" stand-in-upstream --listen 127.0.0.1:0 --workers "$workers" \
    --ready-file "$tmp/upstream.ready" >"$tmp/upstream.log" 2>&1 &
fi
pids+=($!)
wait_ready_file "$tmp/upstream.ready" $! || { echo "run-peers: upstream did not start" >&2; cat "$tmp/upstream.log" >&2; exit 1; }
up_port=$(json_field "$tmp/upstream.ready" listen | cut -d: -f2)
upstream_calls() { curl -s "http://127.0.0.1:$up_port/__sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])'; }
echo "run-peers: upstream ($upstream_kind) on port $up_port"

declare -A port pidof_sys
systems=()
port[direct]=$up_port

# ---- sluice ---------------------------------------------------------------------------------
if has_cmd serve; then
  mkdir -p "$tmp/sluice"
  "$sluice" serve --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$up_port" --no-admin \
    --cache-ttl "${ttl}s" --workers "$workers" --access-log off --data-dir "$tmp/sluice" \
    --ready-file "$tmp/sluice.ready" --log-level warn >"$tmp/sluice.log" 2>&1 &
  pids+=($!); pidof_sys[sluice]=$!
  if wait_ready_file "$tmp/sluice.ready" $!; then
    port[sluice]=$(json_field "$tmp/sluice.ready" listen | cut -d: -f2)
    systems+=(sluice)
  else
    echo "run-peers: sluice serve did not start; its column is skipped" >&2
    tail -5 "$tmp/sluice.log" >&2 || true
  fi
else
  echo "run-peers: '$sluice serve' not available; measuring the peers only"
fi

# ---- nginx (cache + lock, and plain keep-alive proxy) -----------------------------------------
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"  # else nginx ignores `user` with a warning
for flavour in cache proxy; do
  sys="nginx-$flavour"
  prefix="$tmp/$sys"
  mkdir -p "$prefix"
  port[$sys]=$(free_port)
  sed -e "s|@PREFIX@|$prefix|g" -e "s|@WORKERS@|$workers|g" -e "s|@TTL@|$ttl|g" \
    -e "s|@UPSTREAM_PORT@|$up_port|g" -e "s|@PORT@|${port[$sys]}|g" \
    -e "s|@USER_LINE@|$user_line|" "$here/peers/nginx-$flavour.conf.in" >"$prefix/nginx.conf"
  nginx -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" >"$prefix/stdout.log" 2>&1 &
  pids+=($!); pidof_sys[$sys]=$!
  wait_port "${port[$sys]}" || { echo "run-peers: $sys did not start" >&2; cat "$prefix/error.log" >&2; exit 1; }
  systems+=("$sys")
done

# ---- Varnish --------------------------------------------------------------------------------
port[varnish]=$(free_port)
sed -e "s|@UPSTREAM_PORT@|$up_port|g" -e "s|@WORKERS@|$workers|g" -e "s|@TTL@|$ttl|g" \
  "$here/peers/varnish.vcl.in" >"$tmp/varnish.vcl"
chmod 644 "$tmp/varnish.vcl"
jail=()
[[ $(id -u) -eq 0 ]] && jail=(-j none)  # as root the default jail drops to the varnish user
varnishd -F "${jail[@]}" -n "$tmp/varnish-work" -a "127.0.0.1:${port[varnish]}" \
  -f "$tmp/varnish.vcl" -s malloc,256m -t "$ttl" -p thread_pools="$workers" \
  -p thread_pool_min=50 >"$tmp/varnish.log" 2>&1 &
pids+=($!); pidof_sys[varnish]=$!
wait_port "${port[varnish]}" || { echo "run-peers: varnish did not start" >&2; cat "$tmp/varnish.log" >&2; exit 1; }
systems+=(varnish)
echo "run-peers: systems: ${systems[*]} (ports: $(for s in "${systems[@]}"; do printf '%s=%s ' "$s" "${port[$s]}"; done))"

has_sys() { [[ " ${systems[*]} direct " == *" $1 "* ]]; }
url() { echo "http://127.0.0.1:${port[$1]}$2"; }

# Memory of every system at rest, before any traffic.
if want 5; then
  for sys in "${systems[@]}"; do
    read -r rss pss < <(mem_of "${pidof_sys[$sys]}")
    record s5_idle "$sys" 1 "{\"rss_kib\":$rss,\"pss_kib\":$pss}"
  done
fi

wrk_run() {  # SCENARIO SYSTEM REP URL
  local outf="$tmp/wrk.out"
  wrk -t1 -c64 -d"${duration}s" --latency "$4" >"$outf" 2>&1 || true
  python3 - "$outf" "$1" "$2" "$3" >>"$raw" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
def num(pattern, default=0.0):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else default
def ms(pattern):
    m = re.search(pattern + r"\s+([\d.]+)(us|ms|s)\b", text)
    if not m: return None
    v = float(m.group(1)); return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
m = {"rps": num(r"Requests/sec:\s+([\d.]+)"), "non2xx": num(r"Non-2xx or 3xx responses:\s+(\d+)"),
     "socket_errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text)),
     "p50_ms": ms(r"\n\s+50%"), "p99_ms": ms(r"\n\s+99%")}
print(json.dumps({"scenario": sys.argv[2], "system": sys.argv[3], "rep": int(sys.argv[4]), "m": m}))
EOF
}
lg_json() {  # FILE -> compact metrics of a loadgen report
  python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
m = {"completed": r["completed"], "errors": r["errors_total"],
     "non2xx": sum(n for s, n in r["statuses"].items() if not s.startswith("2")),
     "p50_ms": r["latency"]["p50_ms"], "p99_ms": r["latency"]["p99_ms"],
     "max_ms": r["latency"]["max_ms"]}
if "achieved_rate" in r: m["achieved_rate"] = r["achieved_rate"]
print(json.dumps(m))
EOF
}

# ---- 1: storm -------------------------------------------------------------------------------
if want 1; then
  echo "== 1 storm: 500 identical GETs at once, 100 ms upstream"
  for rep in $(seq "$reps"); do
    for sys in "${systems[@]}" direct; do
      before=$(upstream_calls)
      "$loadgen" storm --url "$(url "$sys" "/s1/r$rep?delay_ms=100&cc=max-age%3D$ttl")" \
        -n 500 --threads 1 --timeout 30 --label "$sys" --json "$tmp/lg.json" >/dev/null
      calls=$(( $(upstream_calls) - before ))
      m=$(lg_json "$tmp/lg.json")
      record s1 "$sys" "$rep" "${m%\}},\"upstream_calls\":$calls}"
      echo "  rep $rep $sys: upstream calls $calls, $(echo "$m" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("p99 %.1f ms, completed %d, errors %d" % (d["p99_ms"], d["completed"], d["errors"]))')"
    done
  done
fi

# ---- 2: cache hits on one URL ---------------------------------------------------------------
if want 2; then
  echo "== 2 cache hits: wrk -t1 -c64 -d${duration}s on one cached URL"
  for rep in $(seq "$reps"); do
    for sys in "${systems[@]}"; do
      [[ $sys == nginx-proxy ]] && continue
      u=$(url "$sys" "/s2/hit?cc=max-age%3D3600")
      curl -s -o /dev/null "$u"; curl -s -o /dev/null "$u"
      wrk_run s2 "$sys" "$rep" "$u"
      echo "  rep $rep $sys: $(tail -1 "$raw")"
    done
  done
fi

# ---- 3: pass-through of no-store ------------------------------------------------------------
if want 3; then
  echo "== 3 pass-through of Cache-Control: no-store, fast upstream: wrk -t1 -c64 -d${duration}s"
  for rep in $(seq "$reps"); do
    for sys in "${systems[@]}" direct; do
      wrk_run s3 "$sys" "$rep" "$(url "$sys" "/s3/pass?cc=no-store")"
      echo "  rep $rep $sys: $(tail -1 "$raw")"
    done
  done
fi

# ---- 4: added latency at 2,000 req/s --------------------------------------------------------
if want 4; then
  echo "== 4 added latency: 2,000 req/s open loop, 32 connections, ${duration}s, no-store"
  for rep in $(seq "$reps"); do
    for sys in direct "${systems[@]}"; do
      "$loadgen" rate --url "$(url "$sys" "/s4/lat?cc=no-store")" --rate 2000 \
        --duration "$duration" -c 32 --label "$sys" --json "$tmp/lg.json" >/dev/null
      record s4 "$sys" "$rep" "$(lg_json "$tmp/lg.json")"
      echo "  rep $rep $sys: $(tail -1 "$raw")"
    done
  done
fi

# ---- 5: memory after 1M cached requests over 10,000 keys ------------------------------------
if want 5; then
  echo "== 5 memory: $s5_requests closed-loop requests over 10,000 keys (1 KiB bodies), once"
  for sys in "${systems[@]}"; do
    [[ $sys == nginx-proxy ]] && continue
    "$loadgen" rate --url "$(url "$sys" "/s5/k{key}?cc=max-age%3D3600&size=1024")" --rate 0 \
      --requests "$s5_requests" --duration 3600 -c 64 --keys 10000 --label "$sys" \
      --json "$tmp/lg.json" >/dev/null
    read -r rss pss < <(mem_of "${pidof_sys[$sys]}")
    m=$(lg_json "$tmp/lg.json")
    record s5 "$sys" 1 "${m%\}},\"rss_kib\":$rss,\"pss_kib\":$pss}"
    echo "  $sys: $(tail -1 "$raw")"
  done
fi

# ---- 6: mixed LLM-like load: Zipf keys, tenants, slow upstream ------------------------------
if want 6; then
  echo "== 6 mixed: 200 req/s open loop, Zipf 0.9 over 2,000 keys, 4 tenants, 200 ms upstream"
  for rep in $(seq "$reps"); do
    for sys in "${systems[@]}" direct; do
      [[ $sys == nginx-proxy ]] && continue
      before=$(upstream_calls)
      "$loadgen" rate --url "$(url "$sys" "/s6/r$rep/q{key}?delay_ms=200&cc=max-age%3D$ttl")" \
        --rate 200 --duration "$duration" -c 128 --zipf 0.9 --keys 2000 --tenants 4 \
        --seed "$rep" --label "$sys" --json "$tmp/lg.json" >/dev/null
      calls=$(( $(upstream_calls) - before ))
      m=$(lg_json "$tmp/lg.json")
      record s6 "$sys" "$rep" "${m%\}},\"upstream_calls\":$calls}"
      echo "  rep $rep $sys: $(tail -1 "$raw")"
    done
  done
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$out")"
python3 "$here/peers/summarize.py" "$raw" "$out" \
  --meta "upstream=$upstream_kind" "load_start=$load_start" "load_end=$load_end" \
  "reps=$reps" "duration_s=$duration" "workers=$workers" "ttl_s=$ttl" "s5_requests=$s5_requests" \
  "nginx=$(nginx -v 2>&1 | cut -d/ -f2)" "varnish=$(varnishd -V 2>&1 | head -1 | sed 's/.*(varnish-\([^ ]*\).*/\1/')" \
  "wrk=$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)" "nproc=$(nproc)"
echo "run-peers: wrote $out"
