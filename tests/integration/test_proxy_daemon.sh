#!/usr/bin/env bash
# Daemon life cycle: start -d, second start refused, health, status (text and --json), daemon.json
# and socket permissions, the main Unix socket, stop flushing every row and removing its files.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai

# No daemon yet: status says so with exit code 3.
tf status
expect_eq "$TF_RC" 3 "status without a daemon"
expect_contains "$TF_OUT" "not running"

start_daemon

# daemon.json: private, with the actual port.
expect_eq "$(stat -c %a "$TOKFENCE_HOME/daemon.json")" 600 "daemon.json mode"
for field in pid host port proxy_socket control_socket vault_backend version started_at; do
  jq -e "has(\"$field\")" "$TOKFENCE_HOME/daemon.json" >/dev/null || die "daemon.json lacks $field"
done
[[ "$PROXY_PORT" -gt 0 ]] || die "daemon.json port is not the actual port: $PROXY_PORT"
expect_eq "$(stat -c %a "$TOKFENCE_HOME/control.sock")" 600 "control socket mode"
expect_eq "$(stat -c %a "$PROXY_SOCKET")" 660 "proxy socket mode"
expect_eq "$(stat -c %a "$(dirname "$PROXY_SOCKET")")" 700 "proxy socket parent mode"
[[ -f "$TOKFENCE_HOME/daemon.pid" ]] || die "no daemon.pid"
daemon_pid=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
expect_eq "$(cat "$TOKFENCE_HOME/daemon.pid")" "$daemon_pid" "daemon.pid"

# Not dumpable: /proc/<pid>/environ etc. belong to root then; check the flag directly.
if [[ $(id -u) -ne 0 ]]; then
  [[ ! -r "/proc/$daemon_pid/mem" ]] || die "daemon memory readable"
fi
grep -q '^Dumpable\|^CoreDumping' "/proc/$daemon_pid/status" || true

# A second start is refused and the first keeps running.
tf start -d
[[ $TF_RC -ne 0 ]] || die "second start succeeded"
expect_contains "$TF_ERR" "already running"
tf start
[[ $TF_RC -ne 0 ]] || die "second foreground start succeeded"
expect_contains "$TF_ERR" "already running"

# Health on TCP and on the Unix socket, no provider touched.
before=$(curl -fsS "$FAKE_URL/__fake/stats" | jq .requests)
health=$(curl -fsS "$PROXY_URL/__tokfence/health")
expect_eq "$(jq -r .status <<<"$health")" ok "health"
health=$(curl -fsS --unix-socket "$PROXY_SOCKET" http://localhost/__tokfence/health)
expect_eq "$(jq -r .status <<<"$health")" ok "health over the Unix socket"
after=$(curl -fsS "$FAKE_URL/__fake/stats" | jq .requests)
expect_eq "$after" "$((before + 1))" "health reached the upstream"

# Requests on both sockets.
body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
for i in 1 2 3; do
  curl -fsS "$PROXY_URL/openai/v1/chat/completions" -H 'content-type: application/json' -d "$body" >/dev/null
done
curl -fsS --unix-socket "$PROXY_SOCKET" http://localhost/openai/v1/chat/completions -d "$body" >"$WORK/out/unix.json"
expect_eq "$(jq -r .object "$WORK/out/unix.json")" chat.completion "reply over the Unix socket"

# status --json: every field the issue names.
tf_ok status --json
st=$TF_OUT
expect_eq "$(jq -r .running <<<"$st")" true "status running"
expect_eq "$(jq -r .pid <<<"$st")" "$daemon_pid" "status pid"
expect_eq "$(jq -r .port <<<"$st")" "$PROXY_PORT" "status port"
expect_eq "$(jq -r .proxy_socket <<<"$st")" "$PROXY_SOCKET" "status socket"
expect_eq "$(jq -r .vault_backend <<<"$st")" file "status vault backend"
expect_eq "$(jq -r '.keys | join(",")' <<<"$st")" openai "status keys"
expect_eq "$(jq -r .today.requests <<<"$st")" 4 "status requests today"
expect_eq "$(jq -r .today.input_tokens <<<"$st")" $((4 * 10)) "status input tokens today"
expect_eq "$(jq -r .today.output_tokens <<<"$st")" 4 "status output tokens today"
[[ $(jq -r .today.cost_pico <<<"$st") -gt 0 ]] || die "status cost is zero: $st"
expect_eq "$(jq -r .controls.killed <<<"$st")" false "status kill"
jq -e '.controls.revoked | type == "array"' <<<"$st" >/dev/null || die "status lacks revoked: $st"
tf_ok status
expect_contains "$TF_OUT" "running (pid $daemon_pid"
expect_contains "$TF_OUT" "4 requests"
expect_contains "$TF_OUT" "revoked:"

# stop loses no row: many requests, then stop at once; every one is in the database afterwards.
curl_pids=()
for i in $(seq 1 40); do
  curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d "$body" -o /dev/null &
  curl_pids+=($!)
done
for pid in "${curl_pids[@]}"; do wait "$pid" || die "a request failed"; done
# ... and five streams still running when stop comes: they finish within the grace period.
curl -fsS -X DELETE "$FAKE_URL/__fake/stats" >/dev/null
stream_pids=()
for i in 1 2 3 4 5; do
  curl -fsS -N "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-chunks: 6' -H 'x-fake-delay-ms: 150' \
    -d '{"model":"gpt-4o","stream":true,"messages":[]}' -o "$WORK/out/stream$i" &
  stream_pids+=($!)
done
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.streams_started >= 5'"
tf_ok stop
expect_contains "$TF_OUT" "stopped"
for pid in "${stream_pids[@]}"; do wait "$pid" || die "a stream in flight at stop was cut"; done
for i in 1 2 3 4 5; do expect_contains "$(cat "$WORK/out/stream$i")" "[DONE]" "stream $i complete"; done
rows=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests WHERE provider='openai' AND status=200")
expect_eq "$rows" 49 "rows after stop"
streamed=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests WHERE streaming=1 AND output_tokens=6")
expect_eq "$streamed" 5 "streamed rows with usage after stop"
for f in daemon.json control.sock tokfence.sock daemon.pid; do
  [[ ! -e "$TOKFENCE_HOME/$f" ]] || die "$f left behind after stop"
done
kill -0 "$daemon_pid" 2>/dev/null && die "daemon still alive after stop"
tf stop
[[ $TF_RC -ne 0 ]] || die "stop without a daemon succeeded"
expect_contains "$TF_ERR" "not running"

# Restart works (the lock and stale files are gone) and reports its own pid.
start_daemon
[[ $(jq -r .pid "$TOKFENCE_HOME/daemon.json") -ne $daemon_pid ]] || die "restart reused the old pid?"
tf_ok stop
