#!/usr/bin/env bash
# Attack (review 13a M2): the endpoint kind was read from the raw path, while upstream servers
# route on the decoded one. POST /openai/v1/%63hat/completions (= /chat/completions) with
# "stream": true was metered as legacy completions: include_usage was not forced, the stream ended
# without usage and was charged its estimate, under a global budget too; Gemini's
# %3AstreamGenerateContent likewise. Expected: escapes of letters, digits, - . _ ~ and ':' in the
# path are decoded before anything reads it, so the request is metered, logged and forwarded as
# the one the upstream serves: the upstream gets /v1/chat/completions with include_usage, the row
# is charged by usage.
source "$(dirname "$0")/../integration/lib.sh"

TOKFENCE_TEST_REQUIRE_TOKEN=false
start_fake_upstream
write_test_config '[pricing."tf-test"]' 'input = 1000' 'output = 1000'
add_canary_key openai
start_daemon
tf_ok budget set global 1000 daily

body='{"model":"tf-test","stream":true,"messages":[{"role":"user","content":"write a lot"}]}'
code=$(curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/%63hat/completions" \
  -H 'Authorization: Bearer x' -H 'Content-Type: application/json' -H 'x-fake-reasoning: 20000' -d "$body")
expect_eq "$code" 200 "the encoded path"
seen=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -c '.[-1] | {path, body}')
expect_eq "$(jq -r .path <<<"$seen")" /v1/chat/completions "the path the upstream got"
expect_eq "$(jq -r '.body | fromjson | .stream_options.include_usage' <<<"$seen")" true "include_usage forced"
tf_ok log --json -n 1
row=$(jq -c '.[-1]' <<<"$TF_OUT")
expect_eq "$(jq -r .cost_source <<<"$row")" usage "cost source of the encoded request: $row"
[[ $(jq -r .output_tokens <<<"$row") -ge 20000 ]] || die "output tokens not metered: $row"
expect_eq "$(jq -r .path <<<"$row")" /openai/v1/chat/completions "the logged path"

# An escape made by decoding one (review 13d): "%%36%33hat" is "%63hat" after one pass.
code=$(curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/%%36%33hat/completions" \
  -H 'Authorization: Bearer x' -H 'Content-Type: application/json' -H 'x-fake-reasoning: 20000' -d "$body")
expect_eq "$code" 200 "the twice-encoded path"
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '.[-1].path')" /v1/chat/completions "the path the upstream got"
tf_ok log --json -n 1
expect_eq "$(jq -r '.[-1].cost_source' <<<"$TF_OUT")" usage "cost source of the twice-encoded request"

# Other escapes are not decoded: an encoded '/' is still refused before anything goes out.
code=$(curl -sS -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/chat%2Fcompletions" \
  -H 'Authorization: Bearer x' -H 'Content-Type: application/json' -d "$body")
expect_eq "$code" 400 "an encoded '/'"
log "ok"
