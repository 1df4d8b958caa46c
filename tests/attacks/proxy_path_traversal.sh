#!/usr/bin/env bash
# Escaping a provider's base path: with upstream https://api.fireworks.ai/inference, the agent
# asks for /fireworks/../admin (or %2e%2e, .%2e, ..;, //, ..%2f, ...) and the upstream, which
# normalises the path, serves /admin with the owner's key. Before issue 15 such paths were
# forwarded as they came. Now every one is refused with 400 tokfence_bad_path and a log row,
# before any upstream contact; ordinary paths (Gemini's "model:method" included) pass.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config '[providers.fireworks]' 'upstream = "'"$FAKE_URL"'/inference"'
add_canary_key fireworks
start_daemon
upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }
raw() {
  /usr/bin/python3 - "$PROXY_PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode("latin-1"))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode("latin-1"))
PY
}
get() { raw "GET $1 HTTP/1.1"$'\r\n'"Host: 127.0.0.1:$PROXY_PORT"$'\r\n'"Connection: close"$'\r\n\r\n'; }

log "ordinary paths reach the upstream under its base path"
out=$(get /fireworks/v1/models)
expect_contains "$out" "HTTP/1.1 200" "plain path"
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '.[-1].path')" "/inference/v1/models" "upstream path"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

log "dot segments, empty segments and encoded separators are refused"
for path in /fireworks/../admin /fireworks/v1/../../admin /fireworks/%2e%2e/admin /fireworks/%2E%2E/admin \
  /fireworks/.%2e/admin /fireworks/%2e./admin /fireworks/./v1/models /fireworks//admin /fireworks/v1//models \
  '/fireworks/..;/admin' /fireworks/v1/..%2fadmin /fireworks/v1/%2F..%2Fadmin '/fireworks/v1/..\admin' \
  /fireworks/v1/%5c..%5cadmin /fireworks/v1/%252e%252e/admin /fireworks/v1/%00 /fireworks/..?x=1; do
  out=$(get "$path")
  expect_contains "$out" "HTTP/1.1 400" "path $path"
  expect_contains "$out" '"type":"tokfence_bad_path"'
done
expect_eq "$(upstream_requests)" 0 "a traversal reached the upstream"

log "each refusal is logged with its reason"
curl -sS -D "$WORK/out/h" -o /dev/null --path-as-is "$PROXY_URL/fireworks/../admin"
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/h" | tr -d '\r' | awk '{print $2}')
tf_ok status --json
row=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT provider || '|' || status || '|' || coalesce(error, '') FROM requests WHERE id = '$id'")
expect_contains "$row" "fireworks|400|request: path refused: it has a '.' or '..' segment" "log row"
expect_eq "$(upstream_requests)" 0 "a traversal reached the upstream"
