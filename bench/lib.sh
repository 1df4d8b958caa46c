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

# The median of the numbers given as arguments (the mean of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Sends one control op (a JSON line) to the daemon of $TOKFENCE_HOME; dies unless it answers ok.
# A daemon that has just started may still refuse (its control ops are registered last): tried for
# at most 5 s.
control_op() {
  local i reply
  for ((i = 0; i < 20; i++)); do
    reply=$(python3 - "$TOKFENCE_HOME/control.sock" "$1" 2>/dev/null <<'PY' || true
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(20); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n"); print(s.makefile().readline())
PY
)
    [[ $reply =~ \"ok\":\ *true ]] && return 0
    sleep 0.25
  done
  die "control op failed: $1: ${reply:-no answer}"
}
