#!/usr/bin/env bash
# Timeouts, each a clear answer and a log row, never a hang:
#  - an upstream that accepts no connection: 504 tokfence_upstream_timeout after
#    connect_timeout_seconds (a loopback listener whose accept queue is full drops new SYNs);
#  - an upstream that never answers: 504 after idle_timeout_seconds, and the upstream connection is
#    closed (the fake sees its client go);
#  - an upstream that stalls mid-stream: the client has the first event, then the stream is cut
#    (no final chunk, so the client knows it is incomplete) and logged as such;
#  - a client that sends nothing on an open connection: closed after idle_timeout_seconds.
# The daemon keeps serving after each. Timeouts are whole seconds, checked once a second
# (proxy/http/server.cpp), so each wait here is bounded by timeout + 2 s of slack, never timed tighter.
source "$(dirname "$0")/lib.sh"

start_fake_upstream

# A listener that never accepts, with its queue filled: connects to it hang in SYN_SENT.
BLACKHOLE_PORT_FILE="$WORK/blackhole.port"
/usr/bin/python3 - "$BLACKHOLE_PORT_FILE" <<'PY' &
import os, socket, sys, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(0)
fillers = []
for _ in range(4):  # more than the queue holds; the extra ones hang too, which is fine
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(srv.getsockname())
    fillers.append(c)
time.sleep(0.5)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(300)
PY
_pids_to_kill+=($!)
wait_until "test -s '$BLACKHOLE_PORT_FILE'"
BLACKHOLE_PORT=$(cat "$BLACKHOLE_PORT_FILE")

write_test_config "[providers.deepseek]" "upstream = \"http://127.0.0.1:$BLACKHOLE_PORT\""
sed -i 's/^port = 0$/port = 0\nconnect_timeout_seconds = 1\nidle_timeout_seconds = 2/' "$TOKFENCE_HOME/config.toml"
add_canary_key openai
add_canary_key deepseek
start_daemon

chat='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
serving() {
  local out
  out=$(curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d "$chat")
  expect_eq "$(jq -r .object <<<"$out")" chat.completion "daemon still serving after $1"
}

# --- Connect timeout.
out=$(curl -sS --max-time 20 -w '\n%{http_code} %{time_total}' "$PROXY_URL/deepseek/v1/chat/completions" \
  -d '{"model":"deepseek-chat","messages":[]}')
read -r code secs <<<"$(tail -1 <<<"$out")"
expect_eq "$code" 504 "upstream that accepts nothing"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_upstream_timeout "connect timeout type"
expect_contains "$out" "connect_timeout_seconds" "the message names the setting"
awk -v s="$secs" 'BEGIN { exit !(s >= 0.9 && s < 5) }' || die "connect timeout took ${secs}s (configured 1 s)"
serving "a connect timeout"

# --- Upstream accepts the request and never answers.
curl -fsS -X DELETE "$FAKE_URL/__fake/stats" >/dev/null
out=$(curl -sS --max-time 20 -w '\n%{http_code} %{time_total}' "$PROXY_URL/openai/v1/chat/completions" \
  -H 'x-fake-hang: 1' -d "$chat")
read -r code secs <<<"$(tail -1 <<<"$out")"
expect_eq "$code" 504 "upstream that never answers"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_upstream_timeout "idle timeout type"
expect_contains "$out" "idle_timeout_seconds" "the message names the setting"
awk -v s="$secs" 'BEGIN { exit !(s >= 1.9 && s < 6) }' || die "idle timeout took ${secs}s (configured 2 s)"
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.client_gone >= 1'" 10
serving "an upstream that never answered"

# --- Upstream stalls after the first event of a stream.
set +e
curl -sS -N --max-time 20 "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-first-chunk-then-wait-ms: 15000' \
  -H 'x-fake-chunks: 3' -d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
  >"$WORK/out/stalled.sse" 2>"$WORK/out/stalled.err"
rc=$?
set -e
[[ $rc -eq 18 || $rc -eq 56 ]] || die "a cut stream must end as incomplete for the client (curl exit 18/56), got $rc: $(cat "$WORK/out/stalled.err")"
expect_contains "$(cat "$WORK/out/stalled.sse")" '"object":"chat.completion.chunk"' "the first event reached the client before the cut"
expect_not_contains "$(cat "$WORK/out/stalled.sse")" "[DONE]" "the rest of the stream"
serving "a stalled stream"

# --- A client that opens a connection and sends nothing is closed.
out=$(/usr/bin/python3 - "$PROXY_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
start = time.monotonic()
data = s.recv(1)
print("closed" if data == b"" else "got data", round(time.monotonic() - start, 1))
PY
)
read -r what secs <<<"$out"
expect_eq "$what" closed "an idle client connection"
awk -v s="$secs" 'BEGIN { exit !(s >= 1.9 && s < 6) }' || die "idle client closed after ${secs}s (configured 2 s)"
serving "an idle client"

# --- Each timeout has its row.
wait_until "'$TOKFENCE_BIN' log --json -n 50 | jq -e '[.[] | select(.error | test(\"stream cut\"))] | length == 1'"
tf_ok log --json -n 50
rows=$TF_OUT
count() { jq "[.[] | select($1)] | length" <<<"$rows"; }
expect_eq "$(count '.provider == "deepseek" and .status == 504 and (.error | contains("no connection"))')" 1 "connect timeout row"
expect_eq "$(count '.provider == "openai" and .status == 504 and (.error | contains("no response"))')" 1 "no-answer row"
expect_eq "$(count '.provider == "openai" and .status == 200 and .streaming and (.error | contains("idle_timeout_seconds"))')" 1 \
  "stalled stream row: status 200 sent, then cut"

stop_daemon
scan_for_canary
log "ok"
