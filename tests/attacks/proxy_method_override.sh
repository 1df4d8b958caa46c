#!/usr/bin/env bash
# A provider's `methods` allow-list (here GET and POST: no DELETE of files, cached contents or
# tuned models) judges the request line. Upstreams that honour a method or path override read
# another one: Google's APIs take X-HTTP-Method-Override on a POST as the method, gateways in
# front of self-hosted models take X-Original-URL / X-Rewrite-URL as the path (past a session's
# --endpoint globs). The model proxy forwarded those fields, so `POST` + `X-HTTP-Method-Override:
# DELETE` was a DELETE upstream. Now they are dropped (core/providers.hpp: is_override_header_name,
# the list the inspected egress path refuses under method/path rules), in any spelling, on every
# provider.
# Fails on the previous binary (the fake upstream receives the overrides).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
sed -i '/^\[providers.google\]$/a methods = ["GET", "POST"]' "$TOKFENCE_HOME/config.toml"
add_canary_key google
add_canary_key openai
start_daemon

upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests"; }
u="$PROXY_URL/google/v1beta/cachedContents/abc"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$u" -H 'x-goog-api-key: dummy')
expect_eq "$code" 405 "DELETE to a provider that forwards GET and POST only"
expect_eq "$(upstream_requests | jq length)" 0 "the refused DELETE reached the upstream"

overrides=(-H 'X-HTTP-Method-Override: DELETE' -H 'X-HTTP-Method: DELETE' -H 'X-Method-Override: DELETE'
  -H 'X-Original-Method: DELETE' -H 'X-Original-URL: /v1beta/tunedModels/victim' -H 'X-Rewrite-URL: /v1beta/files/x'
  -H 'x_http_method_override: DELETE' -H 'X-HTTP-METHOD-OVERRIDE: DELETE')
log "POST with every override field, on google (methods listed) and openai (none listed)"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$PROXY_URL/google/v1beta/models/gemini-2.5-flash:generateContent" \
  -H 'x-goog-api-key: dummy' "${overrides[@]}" -H 'content-type: application/json' \
  -d '{"contents":[{"parts":[{"text":"hi"}]}]}')
expect_eq "$code" 200 "the POST itself is forwarded"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" "${overrides[@]}" \
  -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}')
expect_eq "$code" 200 "the chat request is forwarded"

received=$(upstream_requests)
expect_eq "$(jq length <<<"$received")" 2 "requests at the upstream"
expect_eq "$(jq -r '[.[].method] | join(" ")' <<<"$received")" "POST POST" "methods at the upstream"
leaked=$(jq -c '[.[] | .headers | keys[] | select(test("override|original|rewrite|^x[-_]http[-_]method"; "i"))]' <<<"$received")
log "override fields the upstream received: $leaked"
expect_eq "$leaked" "[]" "method/path override fields forwarded to the upstream"
stop_daemon
log "ok"
