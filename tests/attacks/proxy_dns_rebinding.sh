#!/usr/bin/env bash
# DNS rebinding: a web page makes its own host name resolve to 127.0.0.1, so the browser sends
# its requests to the proxy as "same-origin", with `Host: rebind.attacker.example:<port>`. Before
# issue 15 the proxy served them: the key was injected and the request billed. Now only the
# listener's own names are served (TCP: 127.0.0.1/localhost/[::1] with the exact port; Unix
# sockets: those names with any port, for the relays), every refusal is a 403 with a JSON error
# and a request-log row, and nothing reaches the upstream.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }
# "status|error" of the request-log row of the response whose headers are in file $1.
logged() {
  local id
  id=$(grep -i '^x-tokfence-request-id:' "$1" | tr -d '\r' | awk '{print $2}')
  [[ -n "$id" ]] || die "no request id in the response: $(cat "$1")"
  tf_ok status --json  # flushes the request log
  sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT status || '|' || coalesce(error, '') FROM requests WHERE id = '$id'"
}
n=0
# try HOST [curl args...]: one request with that Host over TCP; sets CODE, OUT, HDR.
try() {
  local host=$1
  shift
  n=$((n + 1))
  HDR="$WORK/out/h$n"
  OUT=$(curl -sS -o - -D "$HDR" -w '\n%{http_code}' -H "Host: $host" "$@" "$PROXY_URL/openai/v1/chat/completions" -d "$body")
  CODE=$(tail -1 <<<"$OUT")
}

log "the agent's own names are served"
for host in "127.0.0.1:$PROXY_PORT" "localhost:$PROXY_PORT" "LocalHost:$PROXY_PORT" "[::1]:$PROXY_PORT"; do
  try "$host"
  expect_eq "$CODE" 200 "Host $host"
done
expect_eq "$(upstream_requests)" 4 "served requests reached the upstream"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

log "a rebound page's Host is refused before any upstream contact"
for host in "rebind.attacker.example:$PROXY_PORT" "rebind.attacker.example" "127.0.0.1" "localhost:1" \
  "127.0.0.2:$PROXY_PORT" "0.0.0.0:$PROXY_PORT" "127.0.0.1.nip.io:$PROXY_PORT"; do
  try "$host" -H 'Origin: http://rebind.attacker.example'
  expect_eq "$CODE" 403 "Host $host"
  expect_eq "$(head -1 <<<"$OUT" | jq -r .error.type)" tokfence_forbidden_host "error type for Host $host"
  expect_contains "$(head -1 <<<"$OUT" | jq -r .error.message)" "DNS rebinding"
  grep -qi '^access-control-' "$HDR" && die "a refusal carries CORS headers"
  row=$(logged "$HDR")
  expect_contains "$row" "403|request: Host '$host' is not a name of this proxy" "log row for Host $host"
done
# Same-origin GETs of a rebound page carry no Origin at all.
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Host: rebind.attacker.example:$PROXY_PORT" "$PROXY_URL/openai/v1/models")
expect_eq "$code" 403 "rebound GET without Origin"
expect_eq "$(upstream_requests)" 0 "a refused request reached the upstream"

log "HTTP/1.1 without Host, or with two, is malformed"
raw() {
  /usr/bin/python3 - "$PROXY_PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode("latin-1"))
PY
}
out=$(raw "GET /openai/v1/models HTTP/1.1\r\nConnection: close\r\n\r\n")
expect_contains "$out" "HTTP/1.1 400" "no Host"
out=$(raw "GET /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nHost: rebind.attacker.example\r\nConnection: close\r\n\r\n")
expect_contains "$out" "HTTP/1.1 400" "two Hosts"
expect_eq "$(upstream_requests)" 0 "a malformed request reached the upstream"

log "the Unix socket (and so every relay): loopback names with any port, nothing else"
code=$(curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$PROXY_SOCKET" -H 'Host: 127.0.0.1:39999' \
  http://localhost/openai/v1/chat/completions -d "$body")
expect_eq "$code" 200 "relay Host over the Unix socket"
code=$(curl -sS -o /dev/null -w '%{http_code}' --unix-socket "$PROXY_SOCKET" -H 'Host: rebind.attacker.example:9471' \
  http://localhost/openai/v1/chat/completions -d "$body")
expect_eq "$code" 403 "foreign Host over the Unix socket"
expect_eq "$(upstream_requests)" 1 "only the served request reached the upstream"
