#!/usr/bin/env bash
# Limits and malformed input: oversized body (413), oversized header (431), malformed HTTP (400),
# a request target that is not /<provider>/... (404); the daemon keeps serving after each. And the
# control socket: refused to a peer in another network namespace, answered outside it.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config
# Small limits, in the [daemon] table write_test_config opened.
sed -i 's/^port = 0$/port = 0\nmax_body_bytes = 4096\nmax_header_bytes = 2048/' "$TOKFENCE_HOME/config.toml"
add_canary_key openai
start_daemon

serving() {
  local out
  out=$(curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}')
  expect_eq "$(jq -r .object <<<"$out")" chat.completion "daemon still serving after $1"
}
# Sends raw bytes on a fresh TCP connection and prints the status line of the answer.
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
print(data.decode("latin-1").split("\r\n", 1)[0])
print(data.decode("latin-1").split("\r\n\r\n", 1)[-1])
PY
}

# --- Body over max_body_bytes: by Content-Length, and chunked without a length.
big=$(head -c 5000 /dev/zero | tr '\0' a)
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/openai/v1/chat/completions" -d "{\"model\":\"gpt-4o\",\"x\":\"$big\"}")
expect_eq "$(tail -1 <<<"$out")" 413 "oversized body"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_body_too_large "oversized body type"
expect_contains "$out" "max_body_bytes"
out=$(curl -sS -w '\n%{http_code}' -H 'Transfer-Encoding: chunked' "$PROXY_URL/openai/v1/chat/completions" \
  -d "{\"model\":\"gpt-4o\",\"x\":\"$big\"}")
expect_eq "$(tail -1 <<<"$out")" 413 "oversized chunked body"
serving "an oversized body"

# --- Header over max_header_bytes.
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/openai/v1/chat/completions" -H "x-big: $big" -d '{}')
expect_eq "$(tail -1 <<<"$out")" 431 "oversized header"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_header_too_large "oversized header type"
serving "an oversized header"

# --- Malformed HTTP.
out=$(raw 'THIS IS NOT HTTP\r\n\r\n')
expect_contains "$out" "400" "garbage request line"
expect_contains "$out" "tokfence_bad_request"
out=$(raw 'POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n')
expect_contains "$out" "400" "bad Content-Length"
out=$(raw 'GET /openai/v1/models HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n')
expect_contains "$out" "400" "bad header line"
out=$(raw "GET /\xff\xfe/v1 HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nConnection: close\r\n\r\n")
[[ "$out" == *" 400 "* || "$out" == *" 404 "* ]] || die "non-UTF-8 provider name: $out"
serving "malformed HTTP"

# --- Not a proxy route.
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/")
expect_eq "$(tail -1 <<<"$out")" 404 "root path"
expect_contains "$out" "/<provider>/<path>"
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/__tokfence/other")
expect_eq "$(tail -1 <<<"$out")" 404 "unknown internal path"
serving "a non-route"

# --- Every refusal above has its row in the request log, with what its header told.
log_rows() { "$TOKFENCE_BIN" log --json -n 500 2>/dev/null; }
wait_until "log_rows | jq -e '[.[] | select(.status == 404)] | length >= 3'"
tf_ok log --json -n 500
rows=$TF_OUT
count() { jq "[.[] | select($1)] | length" <<<"$rows"; }
expect_eq "$(count '.status == 413 and .provider == "openai" and .path == "/openai/v1/chat/completions" and .method == "POST"')" 2 \
  "413 rows (by Content-Length and chunked), with provider, method and path"
expect_eq "$(count '.status == 431 and (.error | contains("max_header_bytes"))')" 1 "431 row"
expect_eq "$(count '.status == 400 and (.error | startswith("request: malformed HTTP"))')" 3 "400 rows"
expect_eq "$(count '.status == 404')" 3 "404 rows"

# A model name with an escape sequence in it reaches the table as '?', never as raw bytes.
curl -fsS -o /dev/null "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"evil\u001b]0;owned\u0007","messages":[]}'
wait_until "'$TOKFENCE_BIN' log -n 50 | grep -qF 'evil?]0;owned?'"
tf_ok log -n 50
[[ "$TF_OUT" != *$'\e'* && "$TF_OUT" != *$'\a'* ]] || die "a control character from a request reached the log table"

# --- Control socket from another network namespace: refused (the proxy itself stays reachable
# through the socket file, which is the point of per-launch sockets; control is not).
tf_ok status
if unshare --net --map-root-user true 2>/dev/null; then
  ns=(unshare --net --map-root-user)
elif [[ $(id -u) -eq 0 ]] && unshare --net true 2>/dev/null; then
  ns=(unshare --net)
else
  die "cannot create a network namespace here (unshare --net)"
fi
set +e
"${ns[@]}" "$TOKFENCE_BIN" status >"$WORK/out/ns.out" 2>"$WORK/out/ns.err"
rc=$?
set -e
[[ $rc -ne 0 && $rc -ne 3 ]] || die "status from another network namespace: exit $rc: $(cat "$WORK/out/ns.out")"
expect_contains "$(cat "$WORK/out/ns.err")" "control: refused" "refusal message"
expect_contains "$(cat "$WORK/out/ns.err")" "network namespace" "refusal reason"
set +e
"${ns[@]}" "$TOKFENCE_BIN" stop >"$WORK/out/ns-stop.out" 2>"$WORK/out/ns-stop.err"
set -e
expect_contains "$(cat "$WORK/out/ns-stop.err")" "control: refused" "stop from another namespace"
tf_ok status
expect_contains "$TF_OUT" "running" "daemon still running after the refused stop"
serving "refused control peers"

# A different uid cannot open the control socket at all (0600, home 0700).
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  set +e
  setpriv --reuid 65534 --regid 65534 --clear-groups env TOKFENCE_HOME="$TOKFENCE_HOME" "$TOKFENCE_BIN" status \
    >"$WORK/out/uid.out" 2>"$WORK/out/uid.err"
  rc=$?
  set -e
  [[ $rc -ne 0 ]] || die "status as another uid succeeded"
fi
