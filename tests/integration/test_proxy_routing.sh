#!/usr/bin/env bash
# Routing and keys: the upstream gets the vault key and never the client's credentials; default
# headers only when the client sent none; caller names from peer credentials, the X-Tokfence-Caller
# header and labeled proxy sockets (opened over the control socket, also persisted across a
# restart); unknown provider 404; missing key 401; upstream errors passed through untouched.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config
for p in openai anthropic google; do
  add_canary_key "$p"
done
start_daemon

last_request() { curl -fsS "$FAKE_URL/__fake/requests" | jq -c '.[-1]'; }
row() { sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT $2 FROM requests WHERE id='$1'"; }
flush() { tf_ok status --json; }  # status flushes the log

body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'

# --- OpenAI: every client credential stripped, the vault key injected as Bearer.
curl -fsS -D "$WORK/out/h1" "$PROXY_URL/openai/v1/chat/completions?key=client-query-secret&api_key=client-q2&keep=1" \
  -H 'Authorization: Bearer client-secret-1' -H 'x-api-key: client-secret-2' -H 'api-key: client-secret-3' \
  -H 'x-goog-api-key: client-secret-4' -H 'Proxy-Authorization: Basic client-secret-5' -H 'Cookie: s=client-secret-6' \
  -H 'X-Tokfence-Caller: my-agent' -H 'Connection: keep-alive, x-hop' -H 'x-hop: client-hop' \
  -H 'content-type: application/json' -d "$body" >"$WORK/out/r1.json"
req=$(last_request)
expect_eq "$(jq -r .headers.authorization <<<"$req")" "Bearer $CANARY" "injected key"
expect_not_contains "$req" "client-secret" "client credential forwarded"
expect_not_contains "$req" "client-q" "credential query parameter forwarded"
expect_not_contains "$req" "x-tokfence-caller" "caller header forwarded"
expect_not_contains "$req" "client-hop" "Connection-named header forwarded"
expect_eq "$(jq -r .query <<<"$req")" "keep=1" "other query parameters kept"
expect_eq "$(jq -r .path <<<"$req")" "/v1/chat/completions" "upstream path"
expect_eq "$(jq -r .body <<<"$req")" "$body" "body forwarded byte for byte"
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/h1" | tr -d '\r' | awk '{print $2}')
[[ "$id" =~ ^req_[0-9a-f]{16}$ ]] || die "no request id header: $(cat "$WORK/out/h1")"
flush
expect_eq "$(row "$id" caller_name)" "my-agent" "caller from X-Tokfence-Caller"
expect_eq "$(row "$id" path)" "/openai/v1/chat/completions" "logged path has no query"
expect_eq "$(row "$id" "input_tokens || '/' || output_tokens || '/' || status")" "$((10 + ${#body} / 100))/1/200" "logged usage"

# --- Anthropic: x-api-key; anthropic-version added only when the client sent none.
abody='{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
curl -fsS "$PROXY_URL/anthropic/v1/messages" -H 'x-api-key: client-secret-7' -H 'Authorization: Bearer client-secret-8' \
  -d "$abody" >/dev/null
req=$(last_request)
expect_eq "$(jq -r '.headers["x-api-key"]' <<<"$req")" "$CANARY" "anthropic key"
expect_eq "$(jq -r '.headers.authorization' <<<"$req")" "null" "anthropic got an authorization header"
expect_eq "$(jq -r '.headers["anthropic-version"]' <<<"$req")" "2023-06-01" "default anthropic-version"
curl -fsS "$PROXY_URL/anthropic/v1/messages" -H 'anthropic-version: 2099-01-01' -d "$abody" >/dev/null
expect_eq "$(last_request | jq -r '.headers["anthropic-version"]')" "2099-01-01" "client anthropic-version overwritten"

# --- Gemini: x-goog-api-key; ?key= stripped, alt=sse kept.
curl -fsS "$PROXY_URL/google/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key=client-secret-9" \
  -d '{"contents":[{"parts":[{"text":"hi"}]}]}' >/dev/null
req=$(last_request)
expect_eq "$(jq -r '.headers["x-goog-api-key"]' <<<"$req")" "$CANARY" "gemini key"
expect_eq "$(jq -r .query <<<"$req")" "alt=sse" "gemini query"

# --- Unix socket: caller from SO_PEERCRED (curl's pid and name).
curl -fsS -D "$WORK/out/h2" --unix-socket "$PROXY_SOCKET" http://localhost/openai/v1/chat/completions -d "$body" >/dev/null
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/h2" | tr -d '\r' | awk '{print $2}')
flush
expect_eq "$(row "$id" caller_name)" "curl" "caller name over the Unix socket"
[[ $(row "$id" caller_pid) -gt 0 ]] || die "no caller pid over the Unix socket"

# --- Loopback TCP: the caller is the process that owns the client socket, found while the
# connection is open; one-shot clients (a new curl per request) exit right after their answer,
# so a connection's first response waits for the look-up (up to 100 ms). All must be named; one
# miss is tolerated for a machine so loaded that a look-up takes longer.
ids=()
for i in $(seq 20); do
  curl -fsS -D "$WORK/out/h-tcp" "$PROXY_URL/openai/v1/chat/completions" -d "$body" >/dev/null
  ids+=("'$(grep -i '^x-tokfence-request-id:' "$WORK/out/h-tcp" | tr -d '\r' | awk '{print $2}')'")
done
flush
named=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" \
  "SELECT count(*) FROM requests WHERE caller_name = 'curl' AND caller_pid > 0 AND id IN ($(IFS=,; echo "${ids[*]}"))")
log "one-shot TCP clients named: $named of 20"
[[ $named -ge 19 ]] || die "only $named of 20 one-shot curl requests over TCP were logged with their caller"

# --- Labeled proxy socket: the label wins over the header; list; close; a path beyond 108 bytes.
deep="$WORK/sockets/$(printf 'd%.0s' {1..60})/$(printf 'e%.0s' {1..60})"
mkdir -p "$deep"
sock="$deep/agent.sock"
[[ ${#sock} -gt 108 ]] || die "test path not long enough: ${#sock}"
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$sock\",\"caller\":\"launch-demo\",\"mode\":384}")
expect_eq "$(jq -r .ok <<<"$reply")" true "open_proxy_socket: $reply"
expect_eq "$(stat -c %a "$sock")" 600 "labeled socket mode"
expect_eq "$(ctl '{"op":"list_proxy_sockets"}' | jq -r '.sockets[0].caller')" "launch-demo" "list_proxy_sockets"
cd "$deep"
curl -fsS -D "$WORK/out/h3" --unix-socket agent.sock http://localhost/openai/v1/chat/completions -H 'X-Tokfence-Caller: liar' \
  -d "$body" >/dev/null
cd - >/dev/null
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/h3" | tr -d '\r' | awk '{print $2}')
flush
expect_eq "$(row "$id" caller_name)" "launch-demo" "label over header"
expect_eq "$(ctl "{\"op\":\"close_proxy_socket\",\"path\":\"$sock\"}" | jq -r .ok)" true "close_proxy_socket"
[[ ! -e "$sock" ]] || die "closed proxy socket file left behind"
expect_eq "$(ctl '{"op":"no_such_op"}' | jq -r .error)" "control: unknown op: no_such_op" "unknown op"
expect_contains "$(ctl 'not json')" "malformed request"
expect_contains "$(ctl '{"op":"open_proxy_socket","path":"relative.sock","caller":"x"}')" "must be absolute"
# A mode beyond int: refused, not wrapped to 0660 (4294967728 = 2^32 + 0660).
expect_contains "$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/wrap.sock\",\"caller\":\"x\",\"mode\":4294967728}")" "must be an integer permission"

# --- Persisted socket survives a restart.
psock="$WORK/sockets/persist.sock"
expect_eq "$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$psock\",\"caller\":\"detached\",\"persist\":true}" | jq -r .ok)" true "persist"
tf_ok stop
[[ ! -e "$psock" ]] || die "persisted socket file left while stopped"
start_daemon
wait_until "test -S '$psock'"
curl -fsS --unix-socket "$psock" http://localhost/openai/v1/chat/completions -d "$body" -D "$WORK/out/h4" >/dev/null
id=$(grep -i '^x-tokfence-request-id:' "$WORK/out/h4" | tr -d '\r' | awk '{print $2}')
flush
expect_eq "$(row "$id" caller_name)" "detached" "persisted label"
ctl "{\"op\":\"close_proxy_socket\",\"path\":\"$psock\"}" >/dev/null
expect_eq "$(sqlite3 "$TOKFENCE_HOME/tokfence.db" 'SELECT count(*) FROM proxy_sockets')" 0 "persisted row removed"

# --- Unknown provider, missing key: tokfence's own JSON errors.
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/nosuch/v1/x")
expect_eq "$(tail -1 <<<"$out")" 404 "unknown provider status"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_unknown_provider "unknown provider type"
expect_contains "$out" "openai, openrouter"
out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/mistral/v1/chat/completions" -d "$body")
expect_eq "$(tail -1 <<<"$out")" 401 "missing key status"
expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_no_key "missing key type"
expect_contains "$out" "tokfence vault add mistral -"

# --- Upstream errors pass through untouched (status, body, Retry-After).
curl -sS -D "$WORK/out/h5" -o "$WORK/out/e5" "$PROXY_URL/openai/v1/chat/completions" -H 'x-fake-status: 429' -d "$body"
curl -sS -o "$WORK/out/e5direct" "$FAKE_URL/v1/chat/completions" -H 'x-fake-status: 429' -d "$body"
head -1 "$WORK/out/h5" | grep -q ' 429' || die "upstream status not passed: $(head -1 "$WORK/out/h5")"
grep -qi '^retry-after: 1' "$WORK/out/h5" || die "Retry-After not passed"
cmp -s "$WORK/out/e5" "$WORK/out/e5direct" || die "upstream error body changed"

# --- Keep-alive to the client: several requests on one connection.
curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d "$body" -o /dev/null --next -fsS \
  "$PROXY_URL/openai/v1/chat/completions" -d "$body" -o /dev/null -w '%{num_connects}\n' >"$WORK/out/conns"
expect_eq "$(tail -1 "$WORK/out/conns")" 0 "second request reused the connection"
