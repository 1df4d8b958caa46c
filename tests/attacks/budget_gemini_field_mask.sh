#!/usr/bin/env bash
# Attack (review 15a G1): Google's front end applies a response field mask (`?fields=candidates`,
# `$fields`, the X-Goog-FieldMask header) to every googleapis.com API, so the answer comes without
# usageMetadata; `alt=proto` answers in protobuf. A complete 2xx answer without usage was charged
# the estimate: with maxOutputTokens 10 and 200,000 thinking tokens billed, 10 such requests passed
# a $2 budget at a few cents each. Expected: each such request is refused (400
# tokfence_usage_hidden) before it is sent (the query may hold only alt=json|sse, prettyPrint,
# $.xgafv and credentials: review 15c G2 wrapped the answer as JSONP with `callback`), and a plain
# one is charged by its usage.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

BUDGET_PROVIDER=google
budget_setup

GEMINI="$PROXY_URL/google/v1beta/models/tf-test:generateContent"
REQUEST='{"contents":[{"parts":[{"text":"think hard"}]}],"generationConfig":{"maxOutputTokens":10}}'
masked() {  # $1 = query suffix, rest = extra curl args
  BODY="$WORK/out/masked.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-reasoning: 200000' "${@:2}" --data "$REQUEST" "$GEMINI$1")
}
attack_loop "field mask in the query" masked "?fields=candidates"
expect_eq "$PASSED" 0 "requests with ?fields= that passed"
expect_contains "$REFUSAL_TYPES" tokfence_usage_hidden
attack_loop "field mask, percent-encoded name" masked "?%24fiel%64s=candidates"
expect_eq "$PASSED" 0 "requests with ?\$fields= (encoded) that passed"
attack_loop "field mask header" masked "" -H 'X-Goog-FieldMask: candidates'
expect_eq "$PASSED" 0 "requests with X-Goog-FieldMask that passed"
attack_loop "field mask header, CGI spelling" masked "" -H 'x_goog_fieldmask: candidates'
expect_eq "$PASSED" 0 "requests with x_goog_fieldmask that passed"
attack_loop "JSONP answer (review 15c G2)" masked "?callback=cb"
expect_eq "$PASSED" 0 "requests with ?callback= that passed"
attack_loop "JSONP answer, \$ spelling" masked "?alt=json;%24callback=cb"
expect_eq "$PASSED" 0 "requests with ;\$callback= that passed"
attack_loop "protobuf answer" masked "?alt=proto"
expect_eq "$PASSED" 0 "requests with ?alt=proto that passed"
expect_contains "$(jq -r .error.message "$BODY")" "'alt' other than json or sse"
# A credential in the query is stripped as ever, not refused; prettyPrint passes.
CODE=$(curl -sS --max-time 30 -o "$WORK/out/ok.b" -w '%{http_code}' -H 'content-type: application/json' \
  --data "$REQUEST" "$GEMINI?prettyPrint=false&key=not-a-key")
expect_eq "$CODE" 200 "generateContent?prettyPrint=false&key=..."

# The usual spellings still work: a streamed answer (alt=sse) and a plain one, charged by usage.
CODE=$(curl -sS --max-time 30 -o "$WORK/out/sse.b" -w '%{http_code}' -H 'content-type: application/json' \
  --data "$REQUEST" "$PROXY_URL/google/v1beta/models/tf-test:streamGenerateContent?alt=sse")
expect_eq "$CODE" 200 "streamGenerateContent?alt=sse"
attack_loop "no mask" masked ""
expect_budget_held "$(log_rows :generateContent)"
expect_eq "$(jq -r '[.[] | select(.status == 200)][0].cost_source' <<<"$(log_rows :generateContent)")" usage
