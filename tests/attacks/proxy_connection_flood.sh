#!/usr/bin/env bash
# Attack: descriptor exhaustion by connection flood. A client inside the fence opens hundreds of
# connections and sends nothing. Once the daemon's descriptors run out it can accept nothing:
# other clients hang, and `tokfence status`/`stop` cannot reach the control socket. The daemon
# runs here under a descriptor limit of 256 (soft and hard, so it cannot raise it), with
# max_connections = 50 and max_connections_per_listener = 30. tokfence must
#   - answer connections over a cap with a clear 503 JSON (tokfence_overloaded) and close them,
#   - keep one listener's flood from taking the others' places (TCP full, the Unix socket serves),
#   - keep descriptors in reserve: the control socket answers `tokfence status` throughout,
#   - serve again once the flood is gone.
# Fails against a build without connection caps (TOKFENCE_BIN=/tmp/orig/build/bin/tokfence).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
sed -i 's/^port = 0$/port = 0\nheader_timeout_seconds = 60\nmax_connections = 50\nmax_connections_per_listener = 30/' \
  "$TOKFENCE_HOME/config.toml"
add_canary_key openai
# start_daemon, with the descriptor limit (soft and hard) at 256 for the daemon only.
(ulimit -n 256 && exec "$TOKFENCE_BIN" start -d) >"$WORK/out/start.stdout" 2>"$WORK/out/start.stderr" </dev/null ||
  die "tokfence start -d failed: $(cat "$WORK/out/start.stderr")"
wait_until "test -s '$TOKFENCE_HOME/daemon.json'"
PROXY_PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
PROXY_URL="http://127.0.0.1:$PROXY_PORT"
PROXY_SOCKET=$(jq -r .proxy_socket "$TOKFENCE_HOME/daemon.json")
wait_until "curl -fsS '$PROXY_URL/__tokfence/health'"
DAEMON_PID=$(tr -dc 0-9 <"$TOKFENCE_HOME/daemon.pid")
grep -q '^Max open files *256 *256' "/proc/$DAEMON_PID/limits" || die "the daemon's descriptor limit is not 256: $(grep 'open files' /proc/$DAEMON_PID/limits)"

# Holds `tcp` silent TCP connections and `unix` silent connections to the main Unix socket until
# $WORK/done exists (at most 60 s); writes $WORK/ready once they are open.
hold_connections() {
  rm -f "$WORK/ready" "$WORK/done"
  /usr/bin/python3 - "$PROXY_PORT" "$PROXY_SOCKET" "$1" "$2" "$WORK/ready" "$WORK/done" <<'PY' &
import os, socket, sys, time
port, path, tcp, unix, ready, done = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
held = []
for _ in range(tcp):
    held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
for _ in range(unix):
    u = socket.socket(socket.AF_UNIX)
    u.settimeout(5)
    try:
        u.connect(path)
    except OSError:
        pass
    held.append(u)
time.sleep(1.5)  # accepted (or answered) by the daemon
open(ready, "w").close()
for _ in range(600):
    if os.path.exists(done):
        break
    time.sleep(0.1)
PY
  HOLDER=$!
  _pids_to_kill+=($HOLDER)
  wait_until "test -e '$WORK/ready'" 30
}
release_connections() {
  touch "$WORK/done"
  wait "$HOLDER" 2>/dev/null || true
}

chat='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
# status and error type of one request; "$@" are extra curl arguments (e.g. --unix-socket).
request() {
  local out
  out=$(curl -sS --max-time 10 -w '\n%{http_code}' "$@" -d "$chat" 2>&1) || true
  printf '%s %s\n' "$(tail -1 <<<"$out")" "$(head -1 <<<"$out" | jq -r '.error.type // "-"' 2>/dev/null || echo -)"
}

# --- One listener full: TCP answers 503, the Unix socket still serves.
hold_connections 35 0
read -r code type <<<"$(request "$PROXY_URL/openai/v1/chat/completions")"
log "TCP with 35 silent TCP connections open: $code $type"
expect_eq "$code" 503 "a TCP request past max_connections_per_listener"
expect_eq "$type" tokfence_overloaded "its error type"
read -r code type <<<"$(request --unix-socket "$PROXY_SOCKET" http://localhost/openai/v1/chat/completions)"
expect_eq "$code" 200 "the Unix socket while the TCP listener is full"
release_connections

# --- A flood of 300 TCP connections plus 20 on the Unix socket: everything past the caps is
# answered or closed, descriptors stay free, the control socket answers.
hold_connections 300 20
tf status
[[ $TF_RC -eq 0 ]] || die "tokfence status failed during the flood ($TF_RC): $TF_ERR"
read -r code type <<<"$(request --unix-socket "$PROXY_SOCKET" http://localhost/openai/v1/chat/completions)"
log "Unix request with 50 connections open: $code $type"
expect_eq "$code" 503 "a request past max_connections"
expect_eq "$type" tokfence_overloaded "its error type"
release_connections

wait_until "curl -fsS '$PROXY_URL/openai/v1/chat/completions' -d '$chat'" 20
tf_ok status
stop_daemon
scan_for_canary
log "ok"
