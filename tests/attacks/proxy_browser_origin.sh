#!/usr/bin/env bash
# A web page in a browser of this machine calls the proxy across origins. A "simple" request
# (POST text/plain, no preflight) needs no permission: before issue 15 the proxy injected the key
# and billed it, forwarded OPTIONS preflights (with the key) and relayed the upstream's
# Access-Control-* answer, so with a provider that allows browsers the page could even read the
# reply. Now: Origin (or Sec-Fetch-Site other than none) is refused unless allow-listed
# ([daemon] allowed_origins), preflights are answered locally with 403 and never forwarded, and
# Access-Control-* never reaches a client, even when the upstream sends it (fake_upstream --cors).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY" --cors
write_test_config
add_canary_key openai
start_daemon

body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
url="$PROXY_URL/openai/v1/chat/completions"
upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }
logged() {
  local id
  id=$(grep -i '^x-tokfence-request-id:' "$1" | tr -d '\r' | awk '{print $2}')
  [[ -n "$id" ]] || die "no request id in the response: $(cat "$1")"
  tf_ok status --json  # flushes the request log
  sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT status || '|' || coalesce(error, '') FROM requests WHERE id = '$id'"
}
n=0
# call [curl args...]: sets CODE, OUT (body), HDR (headers file).
call() {
  n=$((n + 1))
  HDR="$WORK/out/h$n"
  OUT=$(curl -sS -D "$HDR" -w '\n%{http_code}' "$@")
  CODE=$(tail -1 <<<"$OUT")
  OUT=$(sed '$d' <<<"$OUT")
}

log "the upstream answers browsers (what a page could read through an open proxy)"
direct=$(curl -sS -D - -o /dev/null "$FAKE_URL/v1/chat/completions" -H "Authorization: Bearer $CANARY" -d "$body")
grep -qi '^access-control-allow-origin: \*' <<<"$direct" || die "fake_upstream --cors sent no CORS headers"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

log "an agent's request (no Origin) is served, without the upstream's CORS headers"
call "$url" -d "$body"
expect_eq "$CODE" 200 "agent request"
grep -qi '^access-control-' "$HDR" && die "Access-Control-* relayed to the client: $(cat "$HDR")"
expect_eq "$(upstream_requests)" 1 "agent request upstream"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

log "cross-site simple request: refused, logged, nothing upstream"
call "$url" -H 'Origin: https://evil.example' -H 'Sec-Fetch-Site: cross-site' -H 'Content-Type: text/plain' -d "$body"
expect_eq "$CODE" 403 "cross-site POST"
expect_eq "$(jq -r .error.type <<<"$OUT")" tokfence_forbidden_origin "error type"
expect_contains "$(jq -r .error.message <<<"$OUT")" "allowed_origins"
expect_contains "$(logged "$HDR")" "403|request: sent by a web page (Origin 'https://evil.example')" "log row"

log "same-origin (rebound) and no-cors requests: Sec-Fetch-Site without Origin"
for site in same-origin same-site cross-site; do
  call "$PROXY_URL/openai/v1/models" -H "Sec-Fetch-Site: $site"
  expect_eq "$CODE" 403 "Sec-Fetch-Site: $site"
done
call "$url" -H 'Sec-Fetch-Site: none' -d "$body"  # typed into the address bar by the user
expect_eq "$CODE" 200 "Sec-Fetch-Site: none"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

log "preflight: answered here with 403, never forwarded (it would carry the key)"
call -X OPTIONS "$url" -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: POST' \
  -H 'Access-Control-Request-Headers: content-type'
expect_eq "$CODE" 403 "preflight"
expect_eq "$(jq -r .error.type <<<"$OUT")" tokfence_cors_preflight "preflight error type"
grep -qi '^access-control-' "$HDR" && die "preflight answered with CORS headers: $(cat "$HDR")"
expect_contains "$(logged "$HDR")" "403|request: CORS preflight" "preflight log row"
expect_eq "$(upstream_requests)" 0 "a refused request reached the upstream"

log "an allow-listed origin is served, still without CORS headers or preflights"
tf_ok stop
sed -i '/^port = 0$/a allowed_origins = ["https://app.example.com"]' "$TOKFENCE_HOME/config.toml"
start_daemon
url="$PROXY_URL/openai/v1/chat/completions"
call "$url" -H 'Origin: https://app.example.com' -H 'Sec-Fetch-Site: cross-site' -d "$body"
expect_eq "$CODE" 200 "allowed origin"
grep -qi '^access-control-' "$HDR" && die "Access-Control-* relayed to an allowed origin"
call "$url" -H 'Origin: https://app.example.com.evil.example' -d "$body"
expect_eq "$CODE" 403 "look-alike origin"
call -X OPTIONS "$url" -H 'Origin: https://app.example.com' -H 'Access-Control-Request-Method: POST'
expect_eq "$CODE" 403 "preflight of an allowed origin"
expect_eq "$(upstream_requests)" 1 "only the allowed request reached the upstream"

log "a bad allowed_origins entry is a positioned config error"
tf_ok stop
cat >"$TOKFENCE_HOME/config.toml" <<TOML
[daemon]
port = 0
allowed_origins = ["https://app.example.com/path"]
TOML
tf provider list
[[ $TF_RC -ne 0 ]] || die "a path in allowed_origins was accepted"
expect_contains "$TF_ERR" "config.toml:3:"
expect_contains "$TF_ERR" "daemon.allowed_origins: \"https://app.example.com/path\" is not a web origin"
printf '[daemon]\nallowed_origins = ["null"]\n' >"$TOKFENCE_HOME/config.toml"
tf provider list
[[ $TF_RC -ne 0 ]] || die "\"null\" in allowed_origins was accepted"
