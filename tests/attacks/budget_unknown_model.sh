#!/usr/bin/env bash
# Attack: an agent names a model that is missing from the price table (a new or invented name the
# upstream still serves); its requests were logged at an unknown cost, never counted in spent, and
# 10 of them passed a $2 budget. Expected: while a budget applies such a request is refused with an
# error naming [pricing."<model>"] as the fix; with a [pricing] fallback it is charged that price
# and the budget stops the rest. Either way nothing is free.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

unpriced_model() {
  BODY="$WORK/out/unpriced.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 3000' --data '{"model":"tf-unpriced-model","messages":[{"role":"user","content":"hi"}]}' \
    "$PROXY_URL/openai/v1/chat/completions")
}
attack_loop "unknown model" unpriced_model
expect_eq "$PASSED" 0 "requests for a model without a price passed the budget"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unknown_cost
expect_contains "$(jq -r .error.message "$BODY")" '[pricing."tf-unpriced-model"]'
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq '[.[] | select(.body | contains("tf-unpriced-model"))] | length')" 0 \
  "an unpriced request reached the upstream"
tf_ok pricing list --unknown
expect_contains "$TF_OUT" "tf-unpriced-model"

# With a fallback price the same requests are charged it: 3000 output tokens at $0.001 = $3 each.
stop_daemon
budget_setup '[pricing.fallback]' 'input = 1000' 'output = 1000'
attack_loop "unknown model, fallback price" unpriced_model
rows=$(log_rows /chat/completions)
expect_budget_held "$rows"
expect_eq "$(jq '[.[] | select(.status == 200)][0].cost_pico' <<<"$rows")" $(((10 + 3000) * 1000000000)) \
  "charged the fallback price for the real usage (10 input + 3000 output tokens at \$0.001)"
