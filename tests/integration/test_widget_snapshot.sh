#!/usr/bin/env bash
# `tokfence widget render --json` against the original Tokfence's snapshot shape
# (tests/fixtures/widget_snapshot_original.json), field by field, with budgets, a revoked provider,
# a rate limit and the kill switch set through the CLI and requests sent through the proxy to the
# fake provider: every counter equals what `stats` and `log` read from the request log.
source "$(dirname "$0")/lib.sh"

FIXTURE="$SOURCE_DIR/tests/fixtures/widget_snapshot_original.json"
SHAPE="$SOURCE_DIR/tests/integration/widget_shape.py"
command -v python3 >/dev/null || skip "python3 is needed to check the snapshot's shape"

start_fake_upstream
write_test_config '[budget]' 'timezone = "UTC"'
for p in openai anthropic mistral; do
  add_canary_key $p
done

snapshot() {  # render --json into $SNAP (a file) and check the shape
  tf_ok widget render --json
  SNAP="$WORK/out/snapshot.$_out_seq.json"
  printf '%s\n' "$TF_OUT" >"$SNAP"
  python3 "$SHAPE" "$FIXTURE" "$SNAP" || die "snapshot does not have the original's shape: $(cat "$SNAP")"
}
field() { jq -c "$1" "$SNAP"; }

# --- no daemon: built from the database and the vault -------------------------------------------
snapshot
expect_eq "$(field .running)" false "offline: running"
expect_eq "$(field .pid)" null "offline: pid"
expect_eq "$(field .addr)" null "offline: addr"
expect_eq "$(field .today_requests)" 0 "offline: no requests yet"
expect_eq "$(field .top_provider)" null "offline: no top provider"
expect_eq "$(field .last_request_at)" null "offline: no last request"
expect_eq "$(field .vault_providers)" '["anthropic","mistral","openai"]' "offline: the vault's providers (passphrase from the environment)"
expect_eq "$(field .kill_switch_active)" false "offline: kill switch"

# --- controls through the CLI, requests through the proxy -------------------------------------
start_daemon
tf_ok budget set global 5 monthly
tf_ok budget set openai 1 daily
tf_ok revoke mistral
tf_ok ratelimit set anthropic 100

n=0
send() {  # PROVIDER [extra curl args]: one request; sets CODE
  local provider=$1 url body
  shift
  n=$((n + 1))
  case $provider in
    anthropic) url="$PROXY_URL/anthropic/v1/messages"
      body='{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' ;;
    *) url="$PROXY_URL/$provider/v1/chat/completions"
      body='{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}' ;;
  esac
  CODE=$(curl -sS --max-time 30 -o "$WORK/out/req$n.b" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'authorization: Bearer dummy' -H 'x-api-key: dummy' "$@" --data "$body" "$url")
}
# openai: 10,000 reasoning tokens at gpt-4o's $10/M output = $0.10 each, so it is the top provider.
send openai -H 'x-fake-reasoning: 10000'; expect_eq "$CODE" 200
send openai -H 'x-fake-reasoning: 10000'; expect_eq "$CODE" 200
# anthropic: cache read and write tokens.
send anthropic -H 'x-fake-cache: 20000' -H 'x-fake-cache-write: 3000'; expect_eq "$CODE" 200
send mistral; expect_eq "$CODE" 403
tf_ok kill
send openai; expect_eq "$CODE" 503

snapshot
tf_ok stats --period "$(date +%F)" --by provider --json
STATS="$WORK/out/stats.json"
printf '%s\n' "$TF_OUT" >"$STATS"
tf_ok log -n 1000 --since "$(date +%F)" --json
LOG="$WORK/out/log.json"
printf '%s\n' "$TF_OUT" >"$LOG"
total() { jq "$1" "$STATS"; }
cents() { python3 -c "import sys; p=int(sys.argv[1]); print((p + 5*10**9) // 10**10)" "$1"; }
micro() { python3 -c "import sys; p=int(sys.argv[1]); print((p + 5*10**5) // 10**6)" "$1"; }

# The daemon: who and where.
gen=$(jq -r .generated_at "$SNAP")
age=$(( $(date +%s) - $(date -d "$gen" +%s) ))
((age >= 0 && age < 120)) || die "generated_at $gen is not now"
expect_eq "$(field .running)" true "running"
expect_eq "$(field .pid)" "$(jq .pid "$TOKFENCE_HOME/daemon.json")" "pid"
expect_eq "$(field .addr)" "\"127.0.0.1:$PROXY_PORT\"" "addr"
# Today: the same numbers as `stats` (and as the log's rows summed).
expect_eq "$(field .today_requests)" "$(total .total.requests)" "today_requests"
expect_eq "$(field .today_requests)" "$(jq length "$LOG")" "today_requests vs log rows"
expect_eq "$(field .today_requests)" 5 "five requests were sent"
expect_eq "$(field .today_input_tokens)" "$(total .total.input_tokens)" "today_input_tokens"
expect_eq "$(field .today_input_tokens)" "$(jq '[.[].input_tokens] | add' "$LOG")" "today_input_tokens vs log"
expect_eq "$(field .today_output_tokens)" "$(total .total.output_tokens)" "today_output_tokens"
cost_pico=$(total .total.cost_pico)
expect_eq "$cost_pico" "$(jq '[.[].cost_pico // 0] | add' "$LOG")" "stats vs log cost"
expect_eq "$(field .today_cost_cents)" "$(cents "$cost_pico")" "today_cost_cents"
expect_eq "$(field .top_provider)" '"openai"' "top_provider"
openai_pico=$(jq '.groups[] | select(.provider == "openai") | .cost_pico' "$STATS")
expect_eq "$(field .top_provider_cost_cents)" "$(cents "$openai_pico")" "top_provider_cost_cents"
expect_eq "$(field .top_provider_cost_cents)" 20 "two requests at \$0.10"
newest=$(jq -r 'max_by(.ts_ms) | .ts_ms' "$LOG")
expect_eq "$(jq -r .last_request_at "$SNAP")" "$(date -d "@$((newest / 1000))" +%H:%M:%S)" "last_request_at (local time)"
# Controls.
expect_eq "$(field '.budgets | length')" 2 "two budgets"
expect_eq "$(field '.budgets[0] | [.provider, .limit_cents, .period, .enabled]')" '["global",500,"monthly",true]' "global budget"
expect_eq "$(field '.budgets[0].period_start')" "\"$(date -u +%Y-%m-01T00:00:00Z)\"" "monthly period_start (UTC zone)"
expect_eq "$(field '.budgets[1] | [.provider, .limit_cents, .period, .enabled]')" '["openai",100,"daily",true]' "openai budget"
expect_eq "$(field '.budgets[1].period_start')" "\"$(date -u +%Y-%m-%dT00:00:00Z)\"" "daily period_start"
expect_eq "$(field '.budgets[1].current_spend_cents')" 20 "openai's spend in cents"
expect_eq "$(field '.budgets[0].current_spend_cents')" "$(cents "$cost_pico")" "global spend = today's cost"
expect_eq "$(field .revoked_providers)" '["mistral"]' "revoked_providers"
expect_eq "$(field .vault_providers)" '["anthropic","mistral","openai"]' "vault_providers"
tf_ok provider list --json
expect_eq "$(field .providers)" "$(jq -c '[.[].name] | sort' <<<"$TF_OUT")" "providers"
expect_eq "$(field .provider_upstreams.openai)" "\"$FAKE_URL\"" "provider_upstreams"
expect_eq "$(field .rate_limits)" '{"anthropic":100}' "rate_limits"
expect_eq "$(field .kill_switch_active)" true "kill_switch_active"
expect_eq "$(field .warnings)" '[]' "no warnings"
# tokfence's additions.
expect_eq "$(field .kill_switch)" true "kill_switch"
expect_eq "$(field .today_cost_micro_usd)" "$(micro "$cost_pico")" "today_cost_micro_usd"
expect_eq "$(field .today_cache_read_tokens)" "$(total .total.cache_read_tokens)" "today_cache_read_tokens"
expect_eq "$(field .today_cache_read_tokens)" 20000 "cache read tokens sent"
expect_eq "$(field .today_cache_write_tokens)" 3000 "cache write tokens sent"
expect_eq "$(field '.today_by_provider | map(.provider) | sort')" "$(jq -c '[.groups[].provider] | sort' "$STATS")" "today_by_provider"
expect_eq "$(field '.budgets[1].current_spend_micro_usd')" "$(micro "$openai_pico")" "exact budget spend"
expect_eq "$(field '.request_log.dropped')" 0 "request log health"

# The kill switch off again: the original's meaning (all cut off) follows.
tf_ok unkill
snapshot
expect_eq "$(field .kill_switch_active)" false "after unkill"
expect_eq "$(field .kill_switch)" false "after unkill"

# --- no daemon again: the same counters, read from the database -------------------------------
stop_daemon
snapshot
expect_eq "$(field .running)" false "after stop"
expect_eq "$(field .today_requests)" 5 "after stop: counters from the database"
expect_eq "$(field .today_cost_cents)" "$(cents "$cost_pico")" "after stop: cost"
expect_eq "$(field .revoked_providers)" '["mistral"]' "after stop: revoked from the database"
expect_eq "$(field '.budgets | length')" 2 "after stop: budgets from the database"
