# Helpers the bench/ scripts share; sourced, not run.
#   free_port              prints a free TCP port on 127.0.0.1
#   wait_port PORT         waits (10 s at most) until GET /__ready on PORT answers
#   stop_pids              SIGTERM to every pid in the caller's `pids` array, SIGKILL after 5 s
#   rss_of PID             RSS in KiB of PID and its children

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/__ready" && return 0
    sleep 0.05
  done
  return 1
}

stop_pids() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  pids=()
}

rss_of() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    [[ -r /proc/$p/status ]] && total=$((total + $(awk '/^VmRSS:/{print $2}' /proc/$p/status)))
  done
  echo "$total"
}
