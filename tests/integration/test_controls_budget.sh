#!/usr/bin/env bash
# Budgets on the real daemon: spending up to a daily budget, the warning at
# [notifications] budget_warning_percent (logged once per window, shown by status, sent through
# notify-send), the 429 once the budget is used up, `budget status` (text bar and --json, requests of
# unknown price flagged), the window rolling over at midnight of [budget] timezone (the clock moved
# with the test-only TOKFENCE_TEST_NOW_OFFSET_FILE), spent recomputed from the log after a restart,
# and [budget] refuse_unknown_cost.
source "$(dirname "$0")/lib.sh"

export TOKFENCE_TEST_NOW_OFFSET_FILE="$WORK/clock-offset"
echo 0 >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
# notify-send where the daemon looks for it: records its arguments.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/notify-send" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"$WORK/notify.log"
EOF
chmod +x "$WORK/bin/notify-send"
export PATH="$WORK/bin:$PATH"

start_fake_upstream
CONFIG_LINES=('[budget]' 'timezone = "UTC"' '[notifications]' 'budget_warning_percent = 50' 'desktop = true'
  '[pricing."tf-test"]' 'input = 10000' 'output = 10000')
write_test_config "${CONFIG_LINES[@]}"
add_canary_key openai
start_daemon

n=0
# req [MODEL]: 5 output tokens, 10 input tokens: $0.15 at $0.01 per token for tf-test.
req() {
  local model=${1:-tf-test}
  n=$((n + 1))
  HDRS="$WORK/out/req$n.h"
  BODY="$WORK/out/req$n.b"
  CODE=$(curl -sS --max-time 30 -D "$HDRS" -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 5' --data "{\"model\":\"$model\",\"max_tokens\":5,\"messages\":[]}" \
    "$PROXY_URL/openai/v1/chat/completions")
}
budget_json() { tf_ok budget status --json; BJ=$(jq -c '.budgets[] | select(.scope == "openai")' <<<"$TF_OUT"); }
warnings_logged() { grep -c "warning: budget for 'openai'" "$TOKFENCE_HOME/daemon.log" || true; }

COST=150000000000  # $0.15 in pico-dollars
tf_ok budget set openai 1 daily
expect_contains "$TF_OUT" "budget openai: \$1.00 daily"
for i in 1 2 3; do
  req
  expect_eq "$CODE" 200 "request $i"
done
budget_json
expect_eq "$(jq .spent_pico <<<"$BJ")" $((3 * COST)) "spent after three requests"
expect_eq "$(jq .warned <<<"$BJ")" false "45% is below the 50% warning"
expect_eq "$(warnings_logged)" 0

req
expect_eq "$CODE" 200
wait_until "grep -q \"warning: budget for 'openai' (daily) at 60.0%\" '$TOKFENCE_HOME/daemon.log'"
wait_until "test -s '$WORK/notify.log'"
expect_contains "$(cat "$WORK/notify.log")" "tokfence: budget warning"
tf_ok status --json
expect_eq "$(jq '.controls.warnings | length' <<<"$TF_OUT")" 1 "status shows the warning"
expect_contains "$(jq -r '.controls.warnings[0].message' <<<"$TF_OUT")" "spent \$0.60 of \$1.00"

# Unknown price: refused while a budget applies (never free: docs/CONTROLS.md, "Every request is
# paid for"), also with refuse_unknown_cost off.
req unpriced-model
expect_eq "$CODE" 403 "unknown-price model within the budget"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unknown_cost
budget_json
expect_eq "$(jq .unknown_cost_requests <<<"$BJ")" 0
expect_eq "$(jq .spent_pico <<<"$BJ")" $((4 * COST))

# Spend the rest: the last request may start alone with $0.90 spent; then the budget refuses.
refused=0
for i in $(seq 1 10); do
  req
  if [[ $CODE == 429 ]]; then refused=1; break; fi
  expect_eq "$CODE" 200
done
expect_eq "$refused" 1 "the budget refused within 10 requests"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_exceeded
budget_json
spent=$(jq .spent_pico <<<"$BJ")
((spent >= 1000000000000 && spent <= 1000000000000 + COST)) || die "spent $spent: more than one request over \$1"
expect_eq "$(jq .reserved_pico <<<"$BJ")" 0
expect_eq "$(warnings_logged)" 1 "the warning fired once"
expect_eq "$(wc -l <"$WORK/notify.log")" 1 "one desktop notification"

# A used-up budget refuses every request in its scope, whatever its price.
req unpriced-model
expect_eq "$CODE" 429 "unknown-price model once the budget is used up"
tf_ok budget status
expect_contains "$TF_OUT" "openai      daily    \$1.05 / \$1.00"
expect_contains "$TF_OUT" "[####################]"
expect_contains "$TF_OUT" "EXHAUSTED"
expect_contains "$TF_OUT" "live from the running daemon"

# Midnight UTC: move the clock just past it. The next request is admitted, in a new window.
sleep 1.2  # every request so far is > 1 s before the instant the offset is computed from
now_ms=$(date -u +%s%3N)
midnight_ms=$(($(date -u -d 'tomorrow 00:00' +%s) * 1000))
offset=$(((midnight_ms - now_ms + 999) / 1000))
echo $offset >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
next_midnight=$(date -u -d "@$((midnight_ms / 1000 + 86400))" +%Y-%m-%dT00:00:00+00:00)
req
expect_eq "$CODE" 200 "a new day, a new budget window"
budget_json
expect_eq "$(jq .spent_pico <<<"$BJ")" $COST "only the new day's request counts"
expect_eq "$(jq -r .resets_at <<<"$BJ")" "$next_midnight"
expect_eq "$(jq .warned <<<"$BJ")" false
expect_eq "$(warnings_logged)" 1

# A restart in the new window computes the same spent from the log.
stop_daemon
start_daemon
budget_json
expect_eq "$(jq .spent_pico <<<"$BJ")" $COST "spent recomputed from the log after a restart"
expect_eq "$(warnings_logged)" 1 "no new warning after the restart"
# Back in the first day (offset 0): that day's spending is recomputed as well.
echo 0 >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
stop_daemon
start_daemon
budget_json
# (The "new day" request was really made today, and the log stamps rows with the real clock.)
expect_eq "$(jq .spent_pico <<<"$BJ")" $((spent + COST)) "the first day's spent after a restart"
expect_eq "$(jq .warned <<<"$BJ")" true "the first day's warning is remembered"
expect_eq "$(warnings_logged)" 1
req
expect_eq "$CODE" 429 "the first day's budget is still used up"

# refuse_unknown_cost: once a budget applies, unknown-price requests are refused.
stop_daemon
write_test_config '[budget]' 'timezone = "UTC"' 'refuse_unknown_cost = true' '[pricing."tf-test"]' 'input = 10000' 'output = 10000'
tf_ok budget set openai 100 daily
start_daemon
req unpriced-model
expect_eq "$CODE" 403
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unknown_cost
req
expect_eq "$CODE" 200 "priced models still pass"
