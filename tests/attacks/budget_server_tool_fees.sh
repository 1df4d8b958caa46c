#!/usr/bin/env bash
# Attack (review 15a T1): tools the provider runs itself are billed per call on top of the tokens
# (Anthropic's web search $10 per 1,000, OpenAI's up to $25, Google's grounding $35), and tokfence
# priced tokens only: under a $1 budget 25 of 25 requests with max_uses 20 passed, 500 searches
# ($5) billed and $0.001 counted. Expected: the calls an answer reports are charged (Anthropic
# server_tool_use, Responses web_search_call items, Gemini's grounding queries), the calls a
# request allows are part of its estimate, and the budget stops the rest.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

PRICE_LINES=('[pricing."tf-cheap"]' 'input = 0.1' 'output = 0.1')
BUDGET_PROVIDER=anthropic
budget_setup
add_canary_key openai  # the running daemon takes them at once (vault add reloads its keys)
add_canary_key google

# 100 searches a request, at the fee of a model priced for every provider ($0.035): $3.50 each,
# more than the $2 budget, for a few hundred tokens at $0.10 per million.
searching() {
  BODY="$WORK/out/search.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'anthropic-version: 2023-06-01' -H 'x-fake-server-tool-calls: 100' "$PROXY_URL/anthropic/v1/messages" \
    --data '{"model":"tf-cheap","max_tokens":50,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":100}],"messages":[{"role":"user","content":"search"}]}')
}
attack_loop "paid searches" searching
expect_budget_held "$(log_rows /v1/messages)"
row=$(jq -c '[.[] | select(.status == 200)][0]' <<<"$(log_rows /v1/messages)")
log "searching row: $row"
(($(jq .cost_pico <<<"$row") >= 100 * 35000000000)) || die "the searches were not charged: $row"

# The other providers' reports of their own calls are charged too (no budget on them).
curl -sS --max-time 30 -o "$WORK/out/other.b" -w "%{http_code}\n" -H 'content-type: application/json' -H 'x-fake-server-tool-calls: 7' \
  --data '{"model":"tf-cheap","input":"search","tools":[{"type":"web_search"}]}' "$PROXY_URL/openai/v1/responses"
curl -sS --max-time 30 -o "$WORK/out/other.b" -w "%{http_code}\n" -H 'content-type: application/json' -H 'x-fake-server-tool-calls: 7' \
  --data '{"model":"tf-cheap","input":"search","stream":true,"tools":[{"type":"web_search"}]}' "$PROXY_URL/openai/v1/responses"
curl -sS --max-time 30 -o "$WORK/out/other.b" -w "%{http_code}\n" -H 'content-type: application/json' -H 'x-fake-server-tool-calls: 7' \
  --data '{"contents":[{"parts":[{"text":"search"}]}],"tools":[{"google_search":{}}]}' \
  "$PROXY_URL/google/v1beta/models/tf-cheap:streamGenerateContent?alt=sse"
# Long instructions, which the answer echoes: its final event passes the 1 MiB an event may take
# (review 15d M1); the searches are counted from the items the stream announced before it.
head -c 1200000 /dev/zero | tr '\0' i >"$WORK/instructions.txt"
jq -n --rawfile ins "$WORK/instructions.txt" '{model:"tf-cheap",input:"search",stream:true,instructions:$ins,tools:[{type:"web_search"}]}' \
  >"$WORK/big.json"
curl -sS --max-time 30 -o "$WORK/out/other.b" -w "%{http_code}\n" -H 'content-type: application/json' -H 'x-fake-server-tool-calls: 7' \
  --data-binary @"$WORK/big.json" "$PROXY_URL/openai/v1/responses"
tf_ok log --json -n 50
for path in /v1/responses :streamGenerateContent; do
  jq -e --arg p "$path" '[.[] | select(.path | endswith($p)) | select(.status == 200)] | length > 0' <<<"$TF_OUT" >/dev/null ||
    die "no row for $path"
  low=$(jq --arg p "$path" '[.[] | select(.path | endswith($p)) | select(.status == 200) | select(.cost_pico < 7 * 35000000000)] | length' <<<"$TF_OUT")
  log "$path: $(jq -c --arg p "$path" '[.[] | select(.path | endswith($p)) | .cost_pico]' <<<"$TF_OUT")"
  expect_eq "$low" 0 "rows of $path charged less than 7 calls"
done
