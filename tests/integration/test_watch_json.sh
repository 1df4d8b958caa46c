#!/usr/bin/env bash
# `tokfence watch --json`: one object per check, in the schema documented in docs/WATCH.md
# (tokfence.watch.v1); every field checked with jq for its type and value.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

start_fake_usage_api USAGE
watch_config
vault_add openai-admin "$CANARY"
vault_add anthropic-admin "$CANARY"
vault_add xai "$CANARY"   # no built-in usage api: skipped
ts=$(ago_s 5400)
fake_post "$USAGE" /__fake/usage "[{\"api\":\"openai\",\"ts\":$ts,\"requests\":3,\"input_tokens\":30000,\"output_tokens\":900,\"cost_usd\":0.9},
  {\"api\":\"anthropic\",\"ts\":$ts,\"input_tokens\":100,\"output_tokens\":10,\"cost_usd\":0.001}]"
local_row openai $((ts * 1000)) 200 100 10 1000000
local_row anthropic $((ts * 1000)) 200 100 10 1000000000

before=$(($(date +%s) * 1000))
tf watch --once --json --period 6h --settle 5m --idle-window 20m --threshold-usd 0.25 \
  --usage-endpoint "openai=$USAGE" --usage-endpoint "anthropic=$USAGE"
expect_eq "$TF_RC" 2
expect_eq "$(wc -l <<<"$TF_OUT")" 1 "one line per check"
j() { jq -r "$1" <<<"$TF_OUT"; }
expect_eq "$(j .schema)" tokfence.watch.v1
expect_eq "$(j .iteration)" 1
expect_eq "$(j '.checked_at_ms | type')" number
(($(j .checked_at_ms) >= before)) || die "checked_at_ms is not now"
expect_eq "$(j .period_s)" 21600
expect_eq "$(j .settle_s)" 300
expect_eq "$(j .idle_window_s)" 1200
expect_eq "$(j .thresholds.usd)" 0.25
expect_eq "$(j .thresholds.tokens)" 10000
expect_eq "$(j .thresholds.requests)" 10
expect_eq "$(j .alerts)" 2 "tokens and usd alerts for openai"
expect_eq "$(j .errors)" 0
expect_eq "$(j '[.providers[].provider] | join(",")')" "anthropic,openai,xai" "providers from the vault, sorted"

o='.providers[] | select(.provider == "openai")'
expect_eq "$(j "$o | .status")" alert
expect_eq "$(j "$o | .endpoint")" "$USAGE/..."
expect_eq "$(j "$o | .key")" openai-admin
expect_eq "$(j "$o | .usage_window.end_ms - .usage_window.start_ms")" 21600000
expect_eq "$(j "$o | .usage_window.end_ms % 60000")" 0
(($(j "$o | .usage_window.end_ms") <= before - 300000)) || die "usage window does not stop --settle before now"
expect_eq "$(j "$o | .cost_window.start_ms % 86400000")" 0
expect_eq "$(j "$o | .remote | [.requests, .tokens, .cost_usd, .cost_pico] | map(tostring) | join(\",\")")" "3,30900,0.9,900000000000"
expect_eq "$(j "$o | .local | [.requests, .tokens, .cost_usd, .unknown_cost_requests] | map(tostring) | join(\",\")")" "1,110,1e-06,0"
expect_eq "$(j "$o | .findings | length")" 2
expect_eq "$(j "$o | .findings[] | select(.metric == \"tokens\") | [.remote, .local, .excess, .threshold] | map(tostring) | join(\",\")")" "30900,110,30790,10000"
expect_eq "$(j "$o | .findings[] | select(.metric == \"usd\") | .excess")" 0.899999
expect_eq "$(j "$o | .new_alerts")" 2
expect_eq "$(j "$o | .alert_messages | length")" 2
expect_eq "$(j "$o | .revoked")" false
expect_eq "$(j "$o | .idle")" null "local traffic 90 min ago, but nothing remote in the idle window"
expect_eq "$(j "$o | .error")" null

a='.providers[] | select(.provider == "anthropic")'
expect_eq "$(j "$a | .status")" ok
expect_eq "$(j "$a | .remote.requests")" null "anthropic reports no request counts"
expect_eq "$(j "$a | .remote.tokens")" 110
expect_eq "$(j "$a | .findings | length")" 0
expect_eq "$(j "$a | .alert_messages | length")" 0

x='.providers[] | select(.provider == "xai")'
expect_eq "$(j "$x | .status")" skipped
expect_contains "$(j "$x | .error")" "--usage-endpoint xai=URL"

# Every key of the documented schema is present on every provider entry.
for key in provider status endpoint key usage_window cost_window remote local findings idle error new_alerts revoked alert_messages; do
  expect_eq "$(j "[.providers[] | has(\"$key\")] | all")" true "providers[].$key"
done
