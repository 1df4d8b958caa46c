#!/usr/bin/env bash
# Streaming and upstream faults: the first SSE chunk reaches the client while the upstream is still
# streaming; a client that leaves cancels the upstream request (streaming and not); an upstream
# reset mid-stream ends the client's stream and is logged as an error; an unreachable upstream is a
# 502. After each, the daemon keeps serving.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
# groq points at a port nobody listens on: bind one, note it, close it.
dead_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
write_test_config
sed -i "/^\[providers.groq\]/,/^$/ s|^upstream = .*|upstream = \"http://127.0.0.1:$dead_port\"|" "$TOKFENCE_HOME/config.toml"
for p in openai anthropic groq; do
  add_canary_key "$p"
done
start_daemon

stats() { curl -fsS "$FAKE_URL/__fake/stats"; }
serving() {
  local out
  out=$(curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}')
  expect_eq "$(jq -r .object <<<"$out")" chat.completion "daemon still serving after $1"
}
flush() { tf_ok status --json; }
row_by_error() { sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT status || '|' || error FROM requests WHERE error LIKE '%$1%' ORDER BY ts_ms DESC LIMIT 1"; }
stream_body='{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'

# --- First chunk before the end: the fake sends one event, then waits (up to 60 s) before the
# rest. We see the first event arrive while the fake reports the stream as not completed, then
# leave: that also proves a client disconnect cancels the streaming upstream request.
curl -fsS -X DELETE "$FAKE_URL/__fake/stats" >/dev/null
curl -sS -N "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-chunks: 3' \
  -H 'x-fake-first-chunk-then-wait-ms: 60000' -d "$stream_body" >"$WORK/out/first_chunk" 2>/dev/null &
stream_pid=$!
_pids_to_kill+=("$stream_pid")
wait_until "grep -q 'chat.completion.chunk' '$WORK/out/first_chunk'" 30
expect_eq "$(stats | jq .streams_completed)" 0 "upstream finished before the first chunk was seen"
expect_not_contains "$(cat "$WORK/out/first_chunk")" "[DONE]" "whole stream arrived at once"
kill "$stream_pid"
wait "$stream_pid" 2>/dev/null || true
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.client_gone >= 1'" 30
expect_eq "$(stats | jq .streams_completed)" 0 "upstream stream completed although the client left"
flush
expect_contains "$(row_by_error 'client disconnected')" "client disconnected" "disconnect logged"
serving "a client disconnect mid-stream"

# --- A client leaving while the upstream has not answered yet (non-streaming) cancels it too.
curl -fsS -X DELETE "$FAKE_URL/__fake/stats" >/dev/null
curl -sS "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-hang: 1' -d '{"model":"gpt-4o","messages":[]}' \
  >/dev/null 2>&1 &
hang_pid=$!
_pids_to_kill+=("$hang_pid")
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.hangs >= 1'" 30
kill "$hang_pid"
wait "$hang_pid" 2>/dev/null || true
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.client_gone >= 1'" 30
serving "a client disconnect before the answer"

# --- Upstream reset mid-stream: the client sees a truncated stream (curl 18), the row an error.
set +e
curl -sS -N "$PROXY_URL/anthropic/v1/messages" -H 'x-fake-chunks: 5' -H 'x-fake-reset-after: 3' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' >"$WORK/out/reset" 2>"$WORK/out/reset.err"
rc=$?
set -e
[[ $rc -ne 0 ]] || die "a stream cut by the upstream looked complete to the client"
expect_contains "$(cat "$WORK/out/reset")" "message_start" "events before the reset"
expect_not_contains "$(cat "$WORK/out/reset")" "message_stop" "events after the reset"
flush
row=$(row_by_error 'upstream reset mid-stream')
expect_contains "$row" "200|upstream reset mid-stream" "reset logged"
serving "an upstream reset"

# --- Upstream reset before any answer (JSON): 502 from tokfence.
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-reset-after: 0' \
  -d '{"model":"gpt-4o","messages":[]}')
expect_eq "$(tail -1 <<<"$out")" 502 "reset before the answer"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_upstream_error "reset before the answer type"
serving "an upstream reset before the answer"

# --- Unreachable upstream: 502 naming the upstream.
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/groq/openai/v1/chat/completions" -d '{"model":"llama-3.3-70b-versatile","messages":[]}')
expect_eq "$(tail -1 <<<"$out")" 502 "unreachable upstream status"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_upstream_unreachable "unreachable type"
expect_contains "$out" "127.0.0.1:$dead_port"
serving "an unreachable upstream"

# --- Streams with usage land in the log (usage injected for OpenAI chat streams).
curl -fsS -N "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-chunks: 4' -D "$WORK/out/sh" -d "$stream_body" >/dev/null
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/sh" | tr -d '\r' | awk '{print $2}')
flush
expect_eq "$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT streaming || '|' || output_tokens || '|' || (ttfb_ms > 0) FROM requests WHERE id='$id'")" "1|4|1" "streamed row"
