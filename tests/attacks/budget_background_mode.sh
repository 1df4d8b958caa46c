#!/usr/bin/env bash
# Attack: under a $2 budget, an agent sends OpenAI Responses requests with "background": true and a
# previous_response_id. The provider answers at once ("queued", usage null), then runs the request
# over the whole referenced context and bills it; the real usage appears only in
# GET /v1/responses/<id>, which the proxy does not meter. Each was settled at its small estimate
# (body/4 + max_output_tokens): ten passed for a few cents on the books, each costing the user
# whatever the context cost. Expected: while a budget applies, background mode is refused
# (tokfence_budget_background) and nothing reaches the upstream; without a budget it is served.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

background() {
  BODY="$WORK/out/bg.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-no-usage: 1' \
    --data '{"model":"tf-test","background":true,"previous_response_id":"resp_0123456789","input":"go on","max_output_tokens":16}' \
    "$PROXY_URL/openai/v1/responses")
}
before=$(curl -s "$FAKE_URL/__fake/requests" | jq length)
attack_loop "background mode" background
expect_eq "$PASSED" 0 "background requests admitted under a budget"
expect_eq "$REFUSED" "$ATTACK_TRIES" "refused"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_background
expect_eq "$(curl -s "$FAKE_URL/__fake/requests" | jq length)" "$before" "requests at the upstream"
# "background": false, and the same request without a budget, are served.
CODE=$(curl -sS --max-time 30 -o "$WORK/out/fg.b" -w '%{http_code}' -H 'content-type: application/json' \
  --data '{"model":"tf-test","background":false,"input":"go on","max_output_tokens":16}' "$PROXY_URL/openai/v1/responses")
expect_eq "$CODE" 200 "background false under the budget"
tf_ok budget clear openai
background
expect_eq "$CODE" 200 "background mode without a budget"
scan_for_canary || die "canary found in an artifact"
log "ok: background mode is refused while a budget applies"
