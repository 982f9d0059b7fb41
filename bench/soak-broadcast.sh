#!/usr/bin/env bash
# Soak of the SSE broadcaster: minutes of publishing to subscribers that come and go, some of
# which never read, with sluice's RSS sampled all along. Memory must not grow after warm-up:
# the script fits a line to the samples of the second half and reports its slope. Warm-up is
# long: a subscriber that never reads first fills the kernel's socket buffers (up to 4 MiB)
# before its queue in sluice fills and the slow-client policy applies, which takes minutes at
# a few hundred events per second; RSS steps up once, to the level of full queues, then stays.
#
#   bench/soak-broadcast.sh [--build DIR] [--minutes M] [--subscribers N] [--slow K]
#                           [--rate R] [--churn C] [--out FILE] [--no-build]
#
#   --minutes M       length of the run (default 5)
#   --subscribers N   steady subscribers (default 500), of which --slow K never read (default 50)
#   --rate R          events/s published (default 200), 100 bytes each
#   --churn C         extra subscribers joining per second, each leaving after 2-6 s, one in
#                     ten never reading (default 20)
#   --out FILE        JSON result (default bench/results/<UTC date-time>-soak.json)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=build/release
minutes=5
subscribers=500
slow=50
rate=200
churn=20
out=""
do_build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --subscribers) subscribers=$2; shift 2 ;;
    --slow) slow=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --churn) churn=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$build" = /* ]] || build="$root/$build"
[[ -n "$out" ]] || out="$root/bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)-soak.json"
if [[ $do_build -eq 1 && -f "$build/build.ninja" ]]; then
  cmake --build "$build" --target sluice_loadgen sluice_cli -j "${JOBS:-2}" >/dev/null
fi
sluice="$build/tools/sluice/sluice"
loadgen="$build/bench/loadgen/sluice-loadgen"
ulimit -n 20000

tmp=$(mktemp -d /tmp/sluice-soak.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$tmp"' EXIT
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
port=$(free_port)
admin=$(free_port)
up=$(free_port)
"$sluice" sim-upstream --listen "127.0.0.1:$up" --workers 1 >"$tmp/up.log" 2>&1 &
pids+=($!)
# Short TTLs so that the sweep has work: events expire after 30 s, idle channels after 10 s.
cat >"$tmp/sluice.toml" <<EOF
[server]
workers = 2
data_dir = "$tmp/data"
[listener]
port = $port
[admin]
port = $admin
[log]
access = "off"
level = "warn"
[[upstream]]
name = "sim"
url = "http://127.0.0.1:$up"
[broadcast]
enabled = true
event_ttl = "30s"
channel_ttl = "10s"
heartbeat_interval = "5s"
cleanup_interval = "5s"
queue_events = 1000
EOF
"$sluice" serve --config "$tmp/sluice.toml" >"$tmp/sluice.log" 2>&1 &
sluice_pid=$!
pids+=($sluice_pid)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/admin/health" && break; sleep 0.1; done

seconds=$((minutes * 60))
events=$((rate * seconds))
echo "soak: $minutes min, $subscribers subscribers ($slow never read), $rate events/s, churn $churn/s"
"$loadgen" sse --url "http://127.0.0.1:$port/events/soak" \
  --publish-url "http://127.0.0.1:$port/events/soak" -n "$subscribers" --slow "$slow" \
  --events "$events" --rate "$rate" --churn "$churn" --threads 2 --drain-ms 2000 \
  --json "$tmp/report.json" >"$tmp/loadgen.log" 2>&1 &
load_pid=$!
pids+=($load_pid)
# A second channel that is published to in bursts and then left idle: channel expiry.
( while kill -0 "$load_pid" 2>/dev/null; do
    for i in $(seq 20); do curl -s -o /dev/null -d "burst $i" "http://127.0.0.1:$port/events/burst-$((RANDOM % 50))"; done
    sleep 2
  done ) &
pids+=($!)

: >"$tmp/samples"
start=$(date +%s)
while kill -0 "$load_pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/{print $2}' "/proc/$sluice_pid/status")
  stats=$(curl -s "http://127.0.0.1:$admin/admin/broadcast?limit=1" || echo '{}')
  echo "$(( $(date +%s) - start )) $rss $stats" >>"$tmp/samples"
  sleep 5
done
wait "$load_pid" || true
tail -20 "$tmp/loadgen.log"

python3 - "$tmp/samples" "$tmp/report.json" "$out" "$minutes" "$subscribers" "$slow" "$rate" "$churn" <<'PY'
import json, sys
samples_path, report_path, out, minutes, subscribers, slow, rate, churn = sys.argv[1:9]
samples = []
for line in open(samples_path):
    t, rss, stats = line.split(" ", 2)
    try:
        s = json.loads(stats)
    except ValueError:
        s = {}
    samples.append({"t": int(t), "rss_kib": int(rss), "subscribers": s.get("subscribers"),
                    "channels": s.get("channels"), "memory_estimate_bytes": s.get("memory_estimate_bytes"),
                    "cleanup": s.get("cleanup")})
warm = [x for x in samples if x["t"] >= samples[-1]["t"] / 2]
n = len(warm)
mt = sum(x["t"] for x in warm) / n
mr = sum(x["rss_kib"] for x in warm) / n
var = sum((x["t"] - mt) ** 2 for x in warm)
slope = sum((x["t"] - mt) * (x["rss_kib"] - mr) for x in warm) / var if var else 0.0
report = json.load(open(report_path)) if report_path else {}
result = {"settings": {"minutes": int(minutes), "subscribers": int(subscribers), "slow": int(slow),
                       "rate": float(rate), "churn": float(churn)},
          "rss_slope_kib_per_hour_after_warmup": slope * 3600,
          "rss_kib_first": samples[0]["rss_kib"], "rss_kib_max": max(x["rss_kib"] for x in samples),
          "rss_kib_last": samples[-1]["rss_kib"], "samples": samples, "load": report}
json.dump(result, open(out, "w"), indent=1)
print("soak: RSS first %d KiB, max %d KiB, last %d KiB; slope after warm-up %.1f KiB/hour"
      % (result["rss_kib_first"], result["rss_kib_max"], result["rss_kib_last"], slope * 3600))
print("soak: last broadcaster figures:", json.dumps(samples[-1]["cleanup"]))
print("soak: wrote", out)
PY
