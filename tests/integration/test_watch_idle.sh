#!/usr/bin/env bash
# Idle-time movement in continuous mode: no tokfence traffic for --idle-window while the provider
# still reports usage -> an "idle" alert, raised once (not again on every interval while unchanged),
# and again when the usage grows. Usage that stops before the idle window does not alert.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

start_fake_usage_api USAGE
watch_config
vault_add openai-admin "$CANARY"
WATCH=(watch --interval 1s --settle 0s --idle-window 10m --json --usage-endpoint "openai=$USAGE"
  --threshold-tokens 100000000 --threshold-requests 100000 --threshold-usd 1000)

# Tokfence and the provider agree about usage 2 h ago; nothing since on either side: no alert.
ts=$(ago_s 7200)
local_row openai $((ts * 1000)) 200 500 50 1000000
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$ts,\"input_tokens\":500,\"output_tokens\":50}"
tf "${WATCH[@]}" --max-iterations 2
expect_eq "$TF_RC" 0 "quiet provider, quiet log"
expect_eq "$(jq -s 'map(.alerts) | add' <<<"$TF_OUT")" 0
expect_eq "$(jq -s -r '.[0].providers[0].idle' <<<"$TF_OUT")" null

# The key is used 2 minutes ago, with no tokfence traffic for 2 hours: idle alert on the first
# check, not raised again on the second (unchanged), raised again after the usage grows.
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$(ago_s 120),\"input_tokens\":700,\"output_tokens\":70}"
tf "${WATCH[@]}" --max-iterations 2
expect_eq "$TF_RC" 2 "idle alert"
expect_eq "$(jq -s -r '.[0].providers[0].idle.metric' <<<"$TF_OUT")" tokens
expect_eq "$(jq -s -r '.[0].providers[0].idle.remote' <<<"$TF_OUT")" 770
expect_eq "$(jq -s -r '.[0].providers[0].idle.window.end_ms - .[0].providers[0].idle.window.start_ms <= 600000' <<<"$TF_OUT")" true
expect_eq "$(jq -s -r '.[0].providers[0].findings | length' <<<"$TF_OUT")" 0 "below the gap thresholds"
expect_eq "$(jq -s -r '[.[].alerts] | join(",")' <<<"$TF_OUT")" "1,0" "raised once, not every interval"
expect_contains "$(jq -s -r '.[0].providers[0].alert_messages[0]' <<<"$TF_OUT")" "while tokfence proxied nothing for this provider"
expect_eq "$(sqlite3 "$WATCH_DB" "SELECT count(*) FROM watch_alerts WHERE kind = 'idle' AND metric = 'idle-tokens'")" 1

# Text mode says it loudly too.
tf watch --once --settle 0s --idle-window 10m --usage-endpoint "openai=$USAGE" --threshold-tokens 100000000
expect_eq "$TF_RC" 2
expect_contains "$TF_OUT" "ALERT openai: the provider reports 770 tokens during"

# Tokfence traffic inside the idle window: not idle, so no idle alert.
local_row openai $(($(ago_s 180) * 1000)) 200 700 70 1000000
tf "${WATCH[@]}" --max-iterations 1
expect_eq "$TF_RC" 0 "local traffic in the idle window"
expect_eq "$(jq -r '.providers[0].idle' <<<"$TF_OUT")" null

# --no-idle switches the check off.
fake_post "$USAGE" /__fake/set '{"clear":true}'
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$(ago_s 60),\"input_tokens\":1,\"output_tokens\":1}"
sqlite3 "$WATCH_DB" "DELETE FROM requests"
tf "${WATCH[@]}" --max-iterations 1 --no-idle
expect_eq "$TF_RC" 0 "--no-idle"
