#!/usr/bin/env bash
# Attack: an agent streams a chat completion and hangs up after the last text chunk, before the
# usage chunk arrives. The upstream bills the whole stream; tokfence saw no usage and logged the
# request at no cost, so 10 such streams passed a $2 budget. Expected: a request that reached the
# upstream and ended without usage is charged its estimate (input estimate + max_tokens, here the
# provider default of 4096 output tokens: about $4), the row says cost_source "estimate", and the
# budget stops the rest.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

hang_up_before_usage() {
  BODY="$WORK/out/stream.b"
  # The fake holds the usage chunk back for 5 s; the client leaves after 1.5 s with all the text.
  CODE=$(curl -sS --max-time 1.5 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 50' -H 'x-fake-usage-wait-ms: 5000' \
    --data '{"model":"tf-test","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
    "$PROXY_URL/openai/v1/chat/completions" || true)
  [[ $CODE != 200 ]] || grep -q '"finish_reason":"stop"' "$BODY" || die "the client left before the last text chunk"
}
attack_loop "disconnect before usage" hang_up_before_usage
# curl reports the 200 it got before timing out: every admitted stream counts as passed.
wait_until "$TOKFENCE_BIN log --json -n 1000 | jq -e '[.[] | select(.path | endswith(\"/chat/completions\"))] | length >= $ATTACK_TRIES'"
rows=$(log_rows /chat/completions)
expect_budget_held "$rows"
expect_eq "$(jq -r '[.[] | select(.status == 200)][0].cost_source' <<<"$rows")" estimate "the row says the cost is an estimate"
# input estimate (body bytes / 4) + 4096 output tokens, at $0.001 a token.
cost=$(jq '[.[] | select(.status == 200)][0].cost_pico' <<<"$rows")
((cost >= 4096 * 1000000000)) || die "charged $cost pico-dollars, less than 4096 output tokens"
