#!/usr/bin/env bash
# Smuggling a credential of the agent's own past the proxy's stripping: header names that only
# normalise to a credential (X_Api_Key: CGI/WSGI servers read it as x-api-key), query names with
# control or space characters or other spellings (key%00=, %20key=, token=, KEY[]=, a=1;key=),
# and headers the owner pins (OpenAI-Organization: an agent billing another organization). Before
# issue 15 these reached the upstream beside the injected key. Now the client's values never
# arrive, the injected key is the only one, and forced_headers always win.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config '[providers.openai.forced_headers]' '"OpenAI-Organization" = "org-owner"' '"OpenAI-Project" = "proj-owner"'
for p in openai anthropic google; do
  add_canary_key "$p"
done
start_daemon
last_request() { curl -fsS "$FAKE_URL/__fake/requests" | jq -c '.[-1]'; }
# The request without the injected key's fields, for messages (a failure must not print the key).
shown() { jq -c 'del(.headers.authorization, .headers["x-api-key"], .headers["x-goog-api-key"])' <<<"$1"; }

log "OpenAI: underscore and case look-alikes, credential queries, pinned organization"
curl -fsS -o /dev/null "$PROXY_URL/openai/v1/chat/completions?key%00=smuggled-q1&%20key=smuggled-q2&token=smuggled-q3&KEY%5B%5D=smuggled-q4&a=1;key=smuggled-q5&k%09ey=smuggled-q6&keep=1" \
  -H 'X_Api_Key: smuggled-h1' -H 'AUTHORIZATION: Bearer smuggled-h3' \
  -H 'Proxy_Authorization: Basic smuggled-h4' -H 'OpenAI-Organization: org-attacker' -H 'OpenAI_Organization: org-attacker2' \
  -H 'openai-project: proj-attacker' -d '{"model":"gpt-4o","messages":[]}'
req=$(last_request)
expect_not_contains "$(shown "$req")" "smuggled-q" "a credential query parameter reached the upstream"
expect_not_contains "$(shown "$req")" "smuggled-h" "a client credential header reached the upstream"
expect_not_contains "$(shown "$req")" "attacker" "a pinned header kept the client's value"
[[ "$(jq -r .headers.authorization <<<"$req")" == "Bearer $CANARY" ]] || die "the injected key is not the only Authorization"
expect_eq "$(jq -r '.headers["openai-organization"]' <<<"$req")" "org-owner" "forced OpenAI-Organization"
expect_eq "$(jq -r '.headers["openai-project"]' <<<"$req")" "proj-owner" "forced OpenAI-Project"
expect_eq "$(jq -r .query <<<"$req")" "keep=1" "other query parameters kept"
expect_eq "$(jq -r '.headers | keys | map(select(test("^(x.api.key|proxy.authorization|openai.organization)$"))) | join(",")' <<<"$req")" \
  "openai-organization" "look-alike header names forwarded"

log "Anthropic: x_api_key beside the injected x-api-key"
curl -fsS -o /dev/null "$PROXY_URL/anthropic/v1/messages" -H 'x_api_key: smuggled-a1' -H 'X-API_KEY: smuggled-a2' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}'
req=$(last_request)
expect_not_contains "$(shown "$req")" "smuggled-a" "an Anthropic key look-alike reached the upstream"
[[ "$(jq -r '.headers["x-api-key"]' <<<"$req")" == "$CANARY" ]] || die "the injected key is not the only x-api-key"

log "Gemini: ?key= spellings beside the injected x-goog-api-key"
curl -fsS -o /dev/null "$PROXY_URL/google/v1beta/models/gemini-2.5-flash:generateContent?key%00=smuggled-g1&%20KEY=smuggled-g2&Key=smuggled-g3&alt=json" \
  -H 'X_Goog_Api_Key: smuggled-g4' -d '{"contents":[{"parts":[{"text":"hi"}]}]}'
req=$(last_request)
expect_not_contains "$(shown "$req")" "smuggled-g" "a Gemini key look-alike reached the upstream"
[[ "$(jq -r '.headers["x-goog-api-key"]' <<<"$req")" == "$CANARY" ]] || die "the injected key is not the only x-goog-api-key"
expect_eq "$(jq -r .query <<<"$req")" "alt=json" "Gemini query"

log "forced_headers that would carry a credential are a positioned config error"
tf_ok stop
printf '[providers.openai.forced_headers]\nAuthorization = "Bearer x"\n' >"$TOKFENCE_HOME/config.toml"
tf provider list
[[ $TF_RC -ne 0 ]] || die "a credential accepted in forced_headers"
expect_contains "$TF_ERR" "config.toml:2:"
expect_contains "$TF_ERR" "forced_headers: 'Authorization' carries a credential"
