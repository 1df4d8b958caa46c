#!/usr/bin/env bash
# Attack (review 13a M1): a token holder whose session has its own daily budget (`session new
# --budget 1`, no global or provider budget) asks for a model with no price, in background mode,
# or at an endpoint billed outside any usage field. The session budget held and settled $0 for
# each: five requests of ten million output tokens passed a $1 budget with nothing spent.
# Expected: a session's budget refuses what cannot be paid for exactly as a global budget does
# (403 tokfence_budget_unknown_cost / _background / _unmetered_endpoint), nothing reaches the
# upstream, and a session without a budget is served as before.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

session_budget_setup capped 1
CAPPED=$TOKEN
tf_ok session new --name open --json
OPEN=$(jq -r .token <<<"$TF_OUT")
post() {  # token path body -> status; the answer in $WORK/out/reply
  curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai$2" \
    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -H 'x-fake-reasoning: 10000000' -d "$3"
}
upstream_calls() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }

before=$(upstream_calls)
code=$(post "$CAPPED" /v1/chat/completions '{"model":"tf-unpriced","messages":[{"role":"user","content":"hi"}]}')
expect_eq "$code" 403 "unpriced model on a session budget"
expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_budget_unknown_cost "its refusal"
code=$(post "$CAPPED" /v1/responses '{"model":"tf-test","input":"hi","background":true}')
expect_eq "$code" 403 "background request on a session budget"
expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_budget_background "its refusal"
code=$(post "$CAPPED" /v1/images/generations '{"model":"gpt-image-1","prompt":"x"}')
expect_eq "$code" 403 "unmetered endpoint on a session budget"
expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_budget_unmetered_endpoint "its refusal"
expect_eq "$(upstream_calls)" "$before" "requests that reached the upstream"

# A priced model passes the session budget; a session without one is served an unpriced model.
code=$(post "$CAPPED" /v1/chat/completions '{"model":"tf-test","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}')
expect_eq "$code" 200 "priced model on a session budget"
code=$(post "$OPEN" /v1/chat/completions '{"model":"tf-unpriced","messages":[{"role":"user","content":"hi"}]}')
expect_eq "$code" 200 "unpriced model on a session without a budget"
log "ok"
