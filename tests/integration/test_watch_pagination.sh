#!/usr/bin/env bash
# Pagination: the fake serves one bucket (or one simple entry) per page, chained with
# has_more/next_page tokens holding '/', '+' and '='. `tokfence watch` must follow every page of
# every endpoint and sum them; a next_page that loops back is a malformed response, not a hang.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

start_fake_usage_api USAGE --page-size 1
watch_config
vault_add openai-admin "$CANARY"
vault_add anthropic-admin "$CANARY"
vault_add groq "$CANARY"
ENDPOINTS=(--usage-endpoint "openai=$USAGE" --usage-endpoint "anthropic=$USAGE"
  --usage-endpoint "groq=$USAGE/simple/paged")

# Usage in 5 different minutes per provider over the last 2 hours, nothing in tokfence's log.
events=()
for ago in 1200 2400 3600 4800 6000; do
  ts=$(ago_s $ago)
  events+=("{\"api\":\"openai\",\"ts\":$ts,\"input_tokens\":1000,\"output_tokens\":100,\"cost_usd\":0.01}")
  events+=("{\"api\":\"anthropic\",\"ts\":$ts,\"input_tokens\":700,\"output_tokens\":70,\"cache_read_tokens\":30,\"cache_write_tokens\":200,\"cost_usd\":0.02}")
  events+=("{\"api\":\"simple\",\"ts\":$ts,\"input_tokens\":300,\"output_tokens\":3,\"cost_usd\":0.001}")
done
fake_post "$USAGE" /__fake/usage "[$(IFS=,; echo "${events[*]}")]"

tf watch --once --json --period 2h --no-idle "${ENDPOINTS[@]}" --threshold-tokens 0 --threshold-requests 0 --threshold-usd 0
expect_eq "$TF_RC" 2 "usage with an empty local log alerts"
p() { jq -r --arg p "$1" ".providers[] | select(.provider == \$p) | $2" <<<"$TF_OUT"; }
expect_eq "$(p openai .status)" alert
expect_eq "$(p openai .remote.tokens)" 5500 "openai tokens summed over all pages"
expect_eq "$(p openai .remote.requests)" 5
expect_eq "$(p openai .remote.cost_usd)" 0.05
expect_eq "$(p anthropic .remote.tokens)" $((5 * (700 + 70 + 30 + 200))) "anthropic tokens over all pages"
expect_eq "$(p anthropic .remote.cost_usd)" 0.1
expect_eq "$(p groq .remote.tokens)" 1515 "simple shape over all pages"
expect_eq "$(p groq .remote.requests)" 5

reqs=$(fake_requests "$USAGE")
# 2 h of 1-minute buckets, one bucket per page: 120 usage pages per bucketed API (+ cost pages).
usage_pages=$(jq '[.requests[] | select(.path == "/v1/organization/usage/completions")] | length' <<<"$reqs")
expect_eq "$usage_pages" 120 "every openai usage page fetched once"
expect_eq "$(jq '[.requests[] | select(.path == "/v1/organizations/usage_report/messages")] | length' <<<"$reqs")" 120
expect_eq "$(jq '[.requests[] | select(.path == "/simple/paged")] | length' <<<"$reqs")" 5
# The page token went back escaped and arrived intact (the fake rejects a mangled one with 400).
expect_contains "$(jq -r '[.requests[] | select(.path == "/simple/paged")][1].query' <<<"$reqs")" "page=pg%2F1%2Bx%3D%3D"
