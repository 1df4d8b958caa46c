#!/usr/bin/env bash
# Attack: an upstream (hostile, or one the agent steers) reports an absurd usage, 10^9 reasoning
# tokens: the request is priced at the largest amount pico-dollars hold (metering saturates it).
# Any other cost added to that wrapped around to a large negative spend: a session budget opened
# at once (a concurrent request settled after it), the global budgets after the next daemon start
# (the ledger is rebuilt from the request log), for the rest of the day (review 12b F2, F2b).
# Expected: every sum of amounts saturates, so a used-up budget stays used up.
source "$(dirname "$0")/../integration/lib.sh"

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
# $1 a token: 10^9 tokens are far past what 64-bit pico-dollars hold.
write_test_config '[budget]' 'timezone = "UTC"' '[pricing."tf-test"]' 'input = 1000000' 'output = 1000000'
add_canary_key openai
start_daemon
tf_ok session new --name wrap --json
TOKEN=$(jq -r .token <<<"$TF_OUT")
body='{"model":"tf-test","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
send() {  # send NAME [curl args]: status in $WORK/out/code-NAME
  local name=$1
  shift
  curl -sS --max-time 60 -o "$WORK/out/body-$name" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@" -d "$body" >"$WORK/out/code-$name"
}
code() { cat "$WORK/out/code-$1"; }

log "global budget: one absurd answer, then a normal row, then a daemon restart"
send huge -H 'x-fake-reasoning: 1000000000'
expect_eq "$(code huge)" 200 "the absurd answer"
send normal
expect_eq "$(code normal)" 200 "a normal request (no budget yet)"
tf_ok budget set openai 2 daily
send refused
expect_eq "$(code refused)" 429 "a request over the used-up budget"
stop_daemon
start_daemon
tf_ok budget status --json
# Compared in jq: bash arithmetic wraps at 2^63 itself.
spent=$(jq '.budgets[] | select(.scope == "openai") | .spent_pico' <<<"$TF_OUT")
log "spent after the restart: $spent"
expect_eq "$(jq '.budgets[] | select(.scope == "openai") | .spent_pico > 0' <<<"$TF_OUT")" true "spend after the restart is positive ($spent)"
send after-restart
expect_eq "$(code after-restart)" 429 "a request after the restart"
tf_ok budget clear openai

log "session budget: an absurd answer and a slow request settling after it"
tf_ok session new --name capped --budget 1 --json
TOKEN=$(jq -r .token <<<"$TF_OUT")
send slow -H 'x-fake-delay-ms: 1500' &
slow=$!
sleep 0.3
send huge2 -H 'x-fake-reasoning: 1000000000'
wait "$slow" || true
log "slow: $(code slow), absurd: $(code huge2)"
passed=0
for i in 1 2 3; do
  send "later-$i"
  [[ $(code "later-$i") == 200 ]] && passed=$((passed + 1))
done
expect_eq "$passed" 0 "requests served after the session's \$1 budget was spent many times over"
tf_ok session show capped --json
expect_eq "$(jq '.spent_today_pico > 0' <<<"$TF_OUT")" true "the session's spend is positive ($(jq .spent_today_pico <<<"$TF_OUT"))"
scan_for_canary || die "canary found in an artifact"
log "ok: an absurd cost keeps a budget used up"
