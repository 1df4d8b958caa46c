# Helpers shared by the bench scripts. Source it after setting BENCH_NAME (used in messages).
# Nothing here starts anything: each script owns its processes and its cleanup.

log() { printf '[%s] %s\n' "${BENCH_NAME:-bench}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# Runs a command until it succeeds, for at most $2 seconds (default 10); dies when it never does.
wait_until() {
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    eval "$1" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "timed out waiting for: $1"
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

random_token() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }

# User + system CPU time so far of the given processes (all their threads), in clock ticks
# (/proc/<pid>/stat fields 14 and 15); processes already gone count 0.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")))
  done
  echo "$total"
}

# Stops the given processes: TERM to all first, then waits for each (children of this shell).
stop_pids() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null; done
  for pid in "$@"; do wait "$pid" 2>/dev/null; done
}
