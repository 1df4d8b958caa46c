#!/usr/bin/env bash
# `tokfence watch --once` against the fake usage API (OpenAI, Anthropic and the simple shape):
# no alert while the providers report exactly what tokfence's log holds; an alert, stored in
# watch_alerts and shown by --history, once a provider reports more. The admin key is used first
# (the fake accepts only it), and no key appears anywhere ($CANARY is the admin key).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

export WATCH_EXPECT_KEY="$CANARY"
start_fake_usage_api USAGE --expect-key-env WATCH_EXPECT_KEY
watch_config
vault_add openai "tfproxykey-$(random_token 40)"       # the proxy key: refused by the fake
vault_add openai-admin "$CANARY"                      # the admin key: accepted
vault_add anthropic-admin "$CANARY"
vault_add mistral "$CANARY"

ENDPOINTS=(--usage-endpoint "openai=$USAGE" --usage-endpoint "anthropic=$USAGE"
  --usage-endpoint "mistral=$USAGE/simple/usage")

# The same traffic on both sides: 1 h and 3 h ago.
for ago in 3600 10800; do
  ts=$(ago_s $ago)
  local_row openai $((ts * 1000)) 200 1200 300 1500000000
  local_row anthropic $((ts * 1000)) 200 900 100 2000000000
  local_row mistral $((ts * 1000)) 200 400 40 100000000
  fake_post "$USAGE" /__fake/usage "[{\"api\":\"openai\",\"ts\":$ts,\"input_tokens\":1200,\"output_tokens\":300,\"cost_usd\":0.0015},
    {\"api\":\"anthropic\",\"ts\":$ts,\"input_tokens\":900,\"output_tokens\":100,\"cost_usd\":0.002},
    {\"api\":\"simple\",\"ts\":$ts,\"input_tokens\":400,\"output_tokens\":40,\"cost_usd\":0.0001}]"
done
# A request tokfence refused itself (revoked) is not provider usage; neither is one outside the window.
local_row openai $(($(ago_s 1800) * 1000)) 403 0 0 NULL
local_row openai $(($(ago_s $((3 * 86400))) * 1000)) 200 99999 99999 NULL

tf watch --once "${ENDPOINTS[@]}"
[[ $TF_RC -eq 0 ]] || die "remote == local must not alert (exit $TF_RC): $TF_OUT $TF_ERR"
expect_not_contains "$TF_OUT" "ALERT"
for p in openai anthropic mistral; do
  line=$(grep -E "^  $p " <<<"$TF_OUT") || die "no line for $p in: $TF_OUT"
  expect_contains "$line" " ok "
done
expect_contains "$(grep -E '^  openai ' <<<"$TF_OUT")" "provider: 3000 tokens, 2 requests"
expect_contains "$(grep -E '^  openai ' <<<"$TF_OUT")" "tokfence: 3000 tokens, 2 requests"
# Anthropic's report has no request counts: shown as unknown, never compared.
expect_contains "$(grep -E '^  anthropic ' <<<"$TF_OUT")" "provider: 2000 tokens, ? requests"

# Every call to the fake carried the admin key (never the proxy key), and Anthropic's version header.
reqs=$(fake_requests "$USAGE")
expect_eq "$(jq '[.requests[] | select(.auth != "ok")] | length' <<<"$reqs")" 0 "a request without the admin key"
expect_eq "$(jq '[.requests[] | select(.path | startswith("/v1/organizations/")) | select(.anthropic_version != "2023-06-01")] | length' <<<"$reqs")" 0 "anthropic-version"
expect_eq "$(jq -r '.requests[].path' <<<"$reqs" | LC_ALL=C sort -u | tr '\n' ' ')" "/simple/usage /v1/organization/costs /v1/organization/usage/completions /v1/organizations/cost_report /v1/organizations/usage_report/messages "
q=$(jq -r '[.requests[] | select(.path == "/v1/organization/usage/completions")][0].query' <<<"$reqs")
expect_contains "$q" "bucket_width=1m"
expect_contains "$q" "start_time="

# No alerts stored yet.
tf_ok watch --history
expect_contains "$TF_OUT" "no watch alerts recorded"

# Someone else uses the OpenAI key: 50,000 tokens and 20 requests tokfence never saw, 2 h ago.
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$(ago_s 7200),\"requests\":20,\"input_tokens\":45000,\"output_tokens\":5000,\"cost_usd\":1.25}"
tf watch --once "${ENDPOINTS[@]}"
expect_eq "$TF_RC" 2 "an alert exits 2"
expect_contains "$(grep -E '^  openai ' <<<"$TF_OUT")" "alert"
expect_contains "$TF_OUT" "ALERT openai: the provider reports 53000 tokens"
expect_contains "$TF_OUT" "50000 tokens unaccounted for"
expect_contains "$TF_OUT" "ALERT openai: the provider reports 22 requests"
expect_contains "$TF_OUT" "ALERT openai: the provider reports \$1.253 for"
for p in anthropic mistral; do expect_contains "$(grep -E "^  $p " <<<"$TF_OUT")" " ok "; done

# Stored in watch_alerts (the request-log database) and shown by --history.
expect_eq "$(sqlite3 "$WATCH_DB" 'SELECT count(*) FROM watch_alerts WHERE provider = "openai" AND kind = "gap"')" 3 "stored alerts"
expect_eq "$(sqlite3 "$WATCH_DB" 'PRAGMA journal_mode')" wal "watch_alerts database in WAL mode"
tf_ok watch --history
expect_contains "$TF_OUT" "openai"
expect_contains "$TF_OUT" "tokens"
expect_contains "$TF_OUT" "50000 tokens unaccounted for"
tf_ok watch --history --json
expect_eq "$(jq length <<<"$TF_OUT")" 3 "history as JSON"
expect_eq "$(jq -r '[.[].metric] | sort | join(",")' <<<"$TF_OUT")" "requests,tokens,usd"
expect_eq "$(jq -r '.[] | select(.metric == "tokens") | .remote - .local' <<<"$TF_OUT")" 50000
expect_eq "$(jq -r '.[0].revoked' <<<"$TF_OUT")" false

# Higher thresholds: the same gap is below them, no alert.
tf watch --once "${ENDPOINTS[@]}" --provider openai --threshold-tokens 60000 --threshold-requests 50 --threshold-usd 5
expect_eq "$TF_RC" 0 "below raised thresholds"
expect_not_contains "$TF_OUT" "ALERT"
expect_not_contains "$TF_OUT" "anthropic" "--provider limits the check"

# The local log catches up (those were tokfence's own requests after all): no alert.
local_row openai $(($(ago_s 7200) * 1000)) 200 45000 5000 1250000000000
for i in $(seq 1 19); do local_row openai $(($(ago_s 7200) * 1000)) 200 0 0 0; done
tf watch --once "${ENDPOINTS[@]}" --provider openai
expect_eq "$TF_RC" 0 "local caught up"
expect_contains "$(grep -E '^  openai ' <<<"$TF_OUT")" "provider: 53000 tokens, 22 requests"
expect_contains "$(grep -E '^  openai ' <<<"$TF_OUT")" "tokfence: 53000 tokens, 22 requests"
