#!/usr/bin/env bash
# Attack (review 12b F6, 13a): "stream": 1 or "stream": "true" streams on lax servers (pydantic:
# vLLM, LiteLLM), but was metered as a single answer: include_usage was not forced, so the stream
# ended without usage and was charged its estimate. Expected: any "stream" value a lax server takes
# as true counts as a stream here, and include_usage is forced into what goes upstream; "stream":
# false / 0 / "false" stay single answers with the body untouched.
source "$(dirname "$0")/../integration/lib.sh"

TOKFENCE_TEST_REQUIRE_TOKEN=false
start_fake_upstream
write_test_config '[pricing."tf-test"]' 'input = 1' 'output = 1'
add_canary_key openai
start_daemon

forwarded() {  # the "stream" value -> include_usage as the upstream got it ("null" when not sent)
  local body="{\"model\":\"tf-test\",\"stream\":$1,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
  curl -sS --max-time 30 -o /dev/null "$PROXY_URL/openai/v1/chat/completions" \
    -H 'Authorization: Bearer x' -H 'Content-Type: application/json' -d "$body"
  curl -fsS "$FAKE_URL/__fake/requests" | jq -r '.[-1].body | fromjson | .stream_options.include_usage'
}
for yes in 1 '"true"' '"1"' '"yes"'; do expect_eq "$(forwarded "$yes")" true "include_usage for \"stream\": $yes"; done
for no in false 0 '"false"'; do expect_eq "$(forwarded "$no")" null "include_usage for \"stream\": $no"; done
log "ok"
