#!/usr/bin/env bash
# Attack (review 15a O1): a session limited to one model (`session new --model 'tf-cheap*'`) names
# that model and a gateway's fallback list (OpenRouter's `"models": [...]`, LiteLLM-style
# `fallbacks`); the gateway answers with, and bills, the fallback. The scope checked `model` only,
# the row logged the cheap model, and an answering model the price table does not know was priced
# as the cheap one: $0.004 counted for ~$1.05 billed. Expected: a fallback list must be in scope too
# (403 tokfence_scope, nothing sent); when another model answers anyway (a router choosing), the row
# names it, says which was asked for, is never priced below the dearest known model when the table
# does not know it, and the scope sensor sees it.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

PRICE_LINES=('[pricing."tf-cheap"]' 'input = 0.1' 'output = 0.1')
session_budget_setup capped 100
CAPPED=$TOKEN
# Two sessions limited to tf-cheap*: each refusal below is a scope violation, and the third turns
# a session ORANGE, so the later checks use a session of their own.
tf_ok session new --name scoped --model 'tf-cheap*' --json
SCOPED=$(jq -r .token <<<"$TF_OUT")
tf_ok session new --name scoped2 --model 'tf-cheap*' --json
SCOPED2=$(jq -r .token <<<"$TF_OUT")
post() {  # token body [curl args] -> status; the answer in $WORK/out/reply
  curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
    -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -H 'x-fake-reasoning: 100000' "${@:3}" -d "$2"
}
upstream_calls() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }
ask='"messages":[{"role":"user","content":"hi"}]'

before=$(upstream_calls)
for list in '"models":["tf-cheap","tf-dear-unpriced"]' '"fallbacks":[{"model":"tf-dear-unpriced"}]' \
  '"fallbacks":["tf-dear-unpriced"]' '"models":[7]'; do
  code=$(post "$SCOPED" "{\"model\":\"tf-cheap\",$list,$ask}")
  expect_eq "$code" 403 "a fallback list outside the session's models: $list"
  expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_scope "its refusal ($list)"
done
expect_eq "$(upstream_calls)" "$before" "requests that reached the upstream"
code=$(post "$SCOPED2" "{\"model\":\"tf-cheap\",\"models\":[\"tf-cheap-2\"],$ask}")
expect_eq "$code" 200 "a fallback list inside the session's models"

# A gateway answers with a model of the request's fallback list that the table does not know: the
# row says so and prices it at the dearest known price (never the cheap one's).
code=$(post "$CAPPED" "{\"model\":\"tf-cheap\",\"models\":[\"tf-dear-unpriced\"],$ask}" -H 'x-fake-response-model: tf-dear-unpriced')
expect_eq "$code" 200 "an answer from another model"
id=$(jq -r .id "$WORK/out/reply")
code=$(post "$CAPPED" "{\"model\":\"tf-cheap\",$ask}" -H 'x-fake-response-model: tf-cheap-2026-01-01')
expect_eq "$code" 200 "an answer from a snapshot of the model asked for"
tf_ok log --json -n 10
rows=$TF_OUT
other=$(jq -c '[.[] | select(.model == "tf-dear-unpriced")][0]' <<<"$rows")
snapshot=$(jq -c '[.[] | select(.model == "tf-cheap" and .status == 200 and .session == "capped")][0]' <<<"$rows")
log "other model: $other"
log "snapshot:    $snapshot"
[[ $other != null ]] || die "no row names the model that answered: $rows"
expect_contains "$(jq -r .error <<<"$other")" "not 'tf-cheap' as asked"
# 100,000 output tokens: $0.01 at tf-cheap's price; the dearest built-in price is far above.
(($(jq .cost_pico <<<"$other") > 100 * $(jq .cost_pico <<<"$snapshot"))) ||
  die "the other model was charged about the cheap model's price: $other vs $snapshot"

# The scoped session answered by a model outside its scope: the scope sensor fires.
code=$(post "$SCOPED2" "{\"model\":\"tf-cheap\",$ask}" -H 'x-fake-response-model: tf-dear-unpriced')
expect_eq "$code" 200 "the answer itself has been sent"
tf_ok session show scoped2 --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" YELLOW "the scoped session after another model answered"
