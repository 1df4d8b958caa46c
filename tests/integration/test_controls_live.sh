#!/usr/bin/env bash
# Kill switch, revoke/restore, rate limits and budgets against the real daemon and the fake
# upstream: each change applies to the very next request without a restart, survives a restart,
# can be made with no daemon running (applied at the next start), and refusals carry the documented
# status, error body and Retry-After. Bad input is refused with the accepted form and changes nothing.
source "$(dirname "$0")/lib.sh"

DB="$TOKFENCE_HOME/tokfence.db"
start_fake_upstream
write_test_config '[budget]' 'timezone = "UTC"'
for p in openai anthropic mistral; do
  add_canary_key $p
done
start_daemon

n=0
# req PROVIDER: one small request; sets CODE, BODY (file) and HDRS (file).
req() {
  local provider=$1 url body
  n=$((n + 1))
  HDRS="$WORK/out/req$n.h"
  BODY="$WORK/out/req$n.b"
  case $provider in
    anthropic) url="$PROXY_URL/anthropic/v1/messages"
      body='{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' ;;
    *) url="$PROXY_URL/$provider/v1/chat/completions"
      body='{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' ;;
  esac
  CODE=$(curl -sS --max-time 30 -D "$HDRS" -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'authorization: Bearer dummy' -H 'x-api-key: dummy' --data "$body" "$url")
}
header() { tr -d '\r' <"$HDRS" | awk -F': ' -v h="$1" 'tolower($1) == h {print $2}'; }
error_type() { jq -r .error.type "$BODY"; }
expect_refusal() {  # CODE TYPE
  expect_eq "$CODE" "$1" "status of request $n ($(cat "$BODY"))"
  expect_eq "$(error_type)" "$2" "error type of request $n"
}
tables() {
  sqlite3 "$DB" "SELECT 'kill', killed FROM controls_kill; SELECT 'revoked', provider FROM controls_revoked;
    SELECT 'budget', scope, period, limit_pico FROM controls_budgets; SELECT 'rpm', provider, rpm FROM controls_ratelimits;"
}

req openai
expect_eq "$CODE" 200 "a request before any control"

# --- kill / unkill -------------------------------------------------------------------------------
tf_ok kill
expect_contains "$TF_OUT" "applied to the running daemon"
req openai
expect_refusal 503 tokfence_killed
expect_contains "$(jq -r .error.message "$BODY")" "tokfence unkill"
req anthropic
expect_refusal 503 tokfence_killed
tf_ok status --json
expect_eq "$(jq -r .controls.killed <<<"$TF_OUT")" true "status shows the kill switch"
tf_ok unkill
req openai
expect_eq "$CODE" 200 "unkill applies to the next request"

# --- revoke / restore ----------------------------------------------------------------------------
tf_ok revoke openai
req openai
expect_refusal 403 tokfence_provider_revoked
expect_contains "$(jq -r .error.message "$BODY")" "tokfence restore openai"
req anthropic
expect_eq "$CODE" 200 "revoking openai leaves anthropic alone"
tf_ok status --json
expect_eq "$(jq -c .controls.revoked <<<"$TF_OUT")" '["openai"]'
tf_ok restore openai
req openai
expect_eq "$CODE" 200 "restore applies to the next request"

# --- rate limit ----------------------------------------------------------------------------------
tf_ok ratelimit set openai 2
req openai; expect_eq "$CODE" 200
req openai; expect_eq "$CODE" 200
req openai
expect_refusal 429 tokfence_rate_limited
retry=$(header retry-after)
[[ $retry =~ ^[0-9]+$ && $retry -ge 1 && $retry -le 60 ]] || die "Retry-After of a rate-limited request: '$retry'"
expect_eq "$(jq -r .error.rpm "$BODY")" 2
req anthropic
expect_eq "$CODE" 200 "the limit is per provider"
tf_ok ratelimit clear openai
req openai
expect_eq "$CODE" 200 "ratelimit clear applies to the next request"

# --- budget (mistral: nothing spent on it yet today) ------------------------------------------------
tf_ok budget set mistral 0.000001 daily
req mistral
expect_eq "$CODE" 200 "a request alone may start while the budget is not used up"
req mistral
expect_refusal 429 tokfence_budget_exceeded
expect_eq "$(jq -r .error.scope "$BODY")" mistral
expect_eq "$(jq -r .error.limit "$BODY")" 1e-06
spent=$(jq -r .error.spent "$BODY")
awk -v s="$spent" 'BEGIN { exit !(s > 0.000001) }' || die "spent in the refusal: $spent"
resets_at=$(jq -r .error.resets_at "$BODY")
expect_eq "$resets_at" "$(date -u -d 'tomorrow 00:00' +%Y-%m-%dT00:00:00+00:00)" "resets_at is the next UTC midnight"
retry=$(header retry-after)
to_midnight=$(($(date -u -d 'tomorrow 00:00' +%s) - $(date -u +%s)))
((retry >= to_midnight - 5 && retry <= to_midnight + 5)) || die "Retry-After $retry, but midnight is $to_midnight s away"
req anthropic
expect_eq "$CODE" 200 "mistral's budget does not limit anthropic"
tf_ok budget clear mistral
req mistral
expect_eq "$CODE" 200 "budget clear applies to the next request"

# --- everything survives a restart -----------------------------------------------------------------
tf_ok revoke anthropic
tf_ok ratelimit set openai 1
tf_ok budget set global 0.000001 monthly
stop_daemon
start_daemon
req anthropic
expect_refusal 403 tokfence_provider_revoked
req openai
expect_refusal 429 tokfence_budget_exceeded  # spent recomputed from the log at start
expect_eq "$(jq -r .error.scope "$BODY")" global
tf_ok budget clear global
req openai
expect_eq "$CODE" 200
req openai
expect_refusal 429 tokfence_rate_limited

# --- changes with no daemon apply at the next start ------------------------------------------------
tf_ok kill
stop_daemon
tf_ok unkill
expect_contains "$TF_OUT" "stored; the daemon applies it when it starts"
tf_ok restore anthropic
tf_ok ratelimit clear openai
tf_ok kill
# A provider added to the configuration after the kill is refused too.
printf '\n[providers.later]\nupstream = "%s"\n' "$FAKE_URL" >>"$TOKFENCE_HOME/config.toml"
add_canary_key later
start_daemon
req later
expect_refusal 503 tokfence_killed
tf_ok unkill
req later
expect_eq "$CODE" 200
req anthropic
expect_eq "$CODE" 200 "restored while the daemon was down"

# --- bad input: a clear error, nothing changed (daemon running, then not) ---------------------------
tf_ok budget set openai 5 daily
tf_ok ratelimit set openai 100
tf_ok revoke later
check_bad() {  # EXPECTED_MESSAGE ARGS...
  local want=$1
  shift
  local before
  before=$(tables)
  tf "$@"
  [[ $TF_RC -ne 0 ]] || die "tokfence $* should fail"
  expect_contains "$TF_ERR" "tokfence: error: $want" "error for: tokfence $*"
  expect_eq "$(tables)" "$before" "tables after: tokfence $*"
}
for round in running stopped; do
  check_bad "budget amount: must be positive: '-5': use a positive amount of US dollars like 5 or 12.50" budget set openai -5 daily
  check_bad "budget amount: not a number: 'lots'" budget set openai lots daily
  check_bad "budget amount: must be more than zero" budget set openai 0 daily
  check_bad "budget amount: too large" budget set global 5000000 monthly
  check_bad "budget period: unknown: 'weekly': use daily or monthly" budget set openai 5 weekly
  check_bad "budget scope 'nosuch': unknown: use global or one of" budget set nosuch 5 daily
  check_bad "budget scope 'Bad!': not 'global' or a provider name" budget set 'Bad!' 5 daily
  check_bad "rate limit: out of range: '0'" ratelimit set openai 0
  check_bad "rate limit: out of range: '100001': use a whole number of requests per minute from 1 to 100000" ratelimit set openai 100001
  check_bad "rate limit: not a whole number: 'fast'" ratelimit set openai fast
  check_bad "provider 'nosuch': unknown: use one of" revoke nosuch
  check_bad "provider 'nosuch': unknown" ratelimit set nosuch 5
  check_bad "provider name 'OpenAI': must match" revoke OpenAI
  check_bad "provider 'nosuch': unknown" restore nosuch
  stop_daemon
done
expect_contains "$(tables)" "budget|openai|daily|5000000000000"
