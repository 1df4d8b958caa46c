#!/usr/bin/env bash
# TRACE/TRACK echo the request back; through a proxy that injects the key, the echo hands the key
# to the agent (cross-site tracing). Proof that the upstream leaks: fake_upstream --echo-trace
# echoes whatever key it gets when hit directly. Before issue 15 the proxy forwarded any method,
# so `curl -X TRACE <proxy>/openai/...` returned the real key. Now only GET, HEAD, POST, PUT,
# PATCH, DELETE (or a provider's `methods`) are forwarded; the rest get 405, a log row, and never
# reach the upstream.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY" --echo-trace
write_test_config '[providers.anthropic]' 'upstream = "'"$FAKE_URL"'"' 'methods = ["POST"]'
# write_test_config already has [providers.anthropic]: keep only the last one.
python3 - "$TOKFENCE_HOME/config.toml" <<'PY'
import sys
p = sys.argv[1]
text = open(p).read()
first = text.index("[providers.anthropic]")
end = text.index("\n\n", first)
open(p, "w").write(text[:first] + text[end + 2:])
PY
for p in openai anthropic; do
  add_canary_key "$p"
done
start_daemon
upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }

log "the upstream echoes TRACE, key included (what an unprotected proxy relays)"
echo_direct=$(curl -sS -X TRACE "$FAKE_URL/v1/models" -H 'Authorization: Bearer probe-key-not-secret')
expect_contains "$echo_direct" "Authorization: Bearer probe-key-not-secret" "fake_upstream --echo-trace"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

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
host="Host: 127.0.0.1:$PROXY_PORT"
for method in TRACE TRACK CONNECT OPTIONS PROPFIND DEBUG get; do
  out=$(raw "$method /openai/v1/models HTTP/1.1\r\n$host\r\nConnection: close\r\n\r\n")
  [[ "$out" != *"$CANARY"* ]] || die "$method through the proxy returned the key"
  expect_contains "$out" "HTTP/1.1 405" "$method"
  expect_contains "$out" '"type":"tokfence_method_not_allowed"'
  expect_contains "$out" "allowed: GET, HEAD, POST, PUT, PATCH, DELETE"
  # RFC 9110 section 15.5.6: a 405 names the methods that are allowed, in an Allow header.
  expect_contains "$out" $'\r\nAllow: GET, HEAD, POST, PUT, PATCH, DELETE\r\n' "$method: Allow header"
done
out=$(curl -sS -D "$WORK/out/trace.h" -X TRACE "$PROXY_URL/openai/v1/models")
[[ "$out" != *"$CANARY"* ]] || die "TRACE through the proxy returned the key"
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/trace.h" | tr -d '\r' | awk '{print $2}')
tf_ok status --json
row=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT method || '|' || status || '|' || coalesce(error, '') FROM requests WHERE id = '$id'")
expect_contains "$row" "TRACE|405|request: method TRACE is not forwarded to 'openai'" "log row"
expect_eq "$(upstream_requests)" 0 "a refused method reached the upstream"

log "a provider's own list: anthropic forwards POST only"
out=$(curl -sS -D "$WORK/out/anthropic.h" -w '\n%{http_code}' "$PROXY_URL/anthropic/v1/models")
expect_eq "$(tail -1 <<<"$out")" 405 "GET to a POST-only provider"
expect_eq "$(grep -i '^allow:' "$WORK/out/anthropic.h" | tr -d '\r')" "Allow: POST" "Allow of a POST-only provider"
expect_eq "$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/anthropic/v1/messages" \
  -d '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}')" 200 "POST to a POST-only provider"
expect_eq "$(upstream_requests)" 1 "only the POST reached the upstream"

log "methods outside the forwardable set are a positioned config error"
tf_ok stop
printf '[providers.openai]\nmethods = ["POST", "TRACE"]\n' >"$TOKFENCE_HOME/config.toml"
tf provider list
[[ $TF_RC -ne 0 ]] || die "TRACE accepted in methods"
expect_contains "$TF_ERR" "config.toml:2:"
expect_contains "$TF_ERR" "providers.openai.methods: \"TRACE\" is never forwarded"
