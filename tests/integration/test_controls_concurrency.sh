#!/usr/bin/env bash
# Budgets under concurrency on the real daemon: 64 parallel streams against a budget with room for a
# few overshoot it by at most one request's cost (requests in flight reserve an estimate), and every
# admitted request is settled — also when the client disconnects mid-stream and when the upstream
# resets the connection mid-stream — so nothing stays reserved and spent matches the request log,
# before and after a restart.
source "$(dirname "$0")/lib.sh"

DB="$TOKFENCE_HOME/tokfence.db"
start_fake_upstream --threads 4
# Caller identification (a /proc scan per connection) is beside the point here and slow under load.
write_test_config '[logging]' 'identify_tcp_callers = false' '[budget]' 'timezone = "UTC"' \
  '[pricing."tf-test"]' 'input = 10000' 'output = 10000'
for p in openai anthropic; do
  add_canary_key $p
done
start_daemon

STREAM='{"model":"tf-test","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
stream() {  # OUTFILE [curl args...]: an OpenAI chat stream of 5 chunks, 150 ms apart
  local out=$1
  shift
  curl -sS --max-time 60 -o "$out.body" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 5' -H 'x-fake-delay-ms: 150' "$@" --data "$STREAM" \
    "$PROXY_URL/openai/v1/chat/completions" >"$out.code" 2>"$out.err" || true
}
global() { tf_ok budget status --json; GB=$(jq -c '.budgets[] | select(.scope == "global")' <<<"$TF_OUT"); }
logged_rows() { sqlite3 "$DB" "SELECT count(*) FROM requests"; }
logged_cost() { sqlite3 "$DB" "SELECT coalesce(sum(cost_pico), 0) FROM requests"; }
usd() { printf '%d.%012d' $(($1 / 1000000000000)) $(($1 % 1000000000000)); }

# One stream first, to learn what such a stream costs.
stream "$WORK/out/first"
expect_eq "$(cat "$WORK/out/first.code")" 200
wait_until "test \$(sqlite3 '$DB' 'SELECT count(*) FROM requests') -eq 1"
COST=$(logged_cost)
((COST > 0)) || die "the first stream has no cost in the log"
log "one stream costs $COST pico-dollars"

# --- 64 parallel streams; the budget has room for three and a half -------------------------------
LIMIT=$((COST + COST * 7 / 2))
tf_ok budget set global "$(usd $LIMIT)" daily
pids=()
for i in $(seq 1 64); do
  stream "$WORK/out/par$i" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
ok=0 refused=0
for i in $(seq 1 64); do
  code=$(cat "$WORK/out/par$i.code")
  case $code in
    200) ok=$((ok + 1)) ;;
    429) refused=$((refused + 1))
      expect_eq "$(jq -r .error.type "$WORK/out/par$i.body")" tokfence_budget_exceeded ;;
    *) die "parallel stream $i: status $code: $(cat "$WORK/out/par$i.body" "$WORK/out/par$i.err")" ;;
  esac
done
log "64 parallel streams: $ok admitted, $refused refused"
((ok >= 2)) || die "only $ok streams admitted with room for 3"
((refused >= 1)) || die "no stream was refused"
wait_until "test \$(sqlite3 '$DB' 'SELECT count(*) FROM requests') -eq 65" 30
global
spent=$(jq .spent_pico <<<"$GB")
expect_eq "$(jq .reserved_pico <<<"$GB")" 0 "nothing stays reserved"
expect_eq "$spent" "$(logged_cost)" "spent equals the request log"
expect_eq "$spent" $(((ok + 1) * COST)) "spent = admitted streams x cost"
((spent <= LIMIT + COST)) || die "overshoot: spent $spent, limit $LIMIT, one stream $COST"
log "spent $spent of $LIMIT (bound $((LIMIT + COST)))"

# --- settlement when the client disconnects mid-stream -------------------------------------------
tf_ok budget set global 100 daily
rows=$(logged_rows)
# OpenAI: usage only comes at the end, so a cut stream has no usage and costs nothing known.
curl -sS --max-time 1 -o /dev/null -H 'content-type: application/json' -H 'x-fake-chunks: 40' \
  -H 'x-fake-delay-ms: 200' --data "$STREAM" "$PROXY_URL/openai/v1/chat/completions" 2>/dev/null || true
# Anthropic: message_start reports the input tokens, so a cut stream has a partial cost.
ABODY='{"model":"tf-test","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
curl -sS --max-time 1 -o /dev/null -H 'content-type: application/json' -H 'x-fake-chunks: 40' \
  -H 'x-fake-delay-ms: 200' --data "$ABODY" "$PROXY_URL/anthropic/v1/messages" 2>/dev/null || true
wait_until "curl -fsS '$FAKE_URL/__fake/stats' | jq -e '.client_gone >= 2'" 30
wait_until "test \$(sqlite3 '$DB' 'SELECT count(*) FROM requests') -eq $((rows + 2))" 30
partial=$(sqlite3 "$DB" "SELECT coalesce(cost_pico, 0) FROM requests WHERE provider = 'anthropic'")
((partial > 0)) || die "the cut anthropic stream has no partial cost"
global
expect_eq "$(jq .reserved_pico <<<"$GB")" 0 "disconnected streams were settled"
expect_eq "$(jq .spent_pico <<<"$GB")" "$(logged_cost)" "spent after disconnects equals the log"
tf_ok status --json
expect_eq "$(jq .controls.in_flight <<<"$TF_OUT")" 0

# --- settlement when the upstream resets mid-stream ----------------------------------------------
rows=$(logged_rows)
curl -sS --max-time 20 -o /dev/null -H 'content-type: application/json' -H 'x-fake-chunks: 5' \
  -H 'x-fake-reset-after: 2' --data "$ABODY" "$PROXY_URL/anthropic/v1/messages" 2>/dev/null || true
curl -sS --max-time 20 -o /dev/null -H 'content-type: application/json' -H 'x-fake-chunks: 5' \
  -H 'x-fake-reset-after: 2' --data "$STREAM" "$PROXY_URL/openai/v1/chat/completions" 2>/dev/null || true
wait_until "test \$(sqlite3 '$DB' 'SELECT count(*) FROM requests') -eq $((rows + 2))" 30
global
expect_eq "$(jq .reserved_pico <<<"$GB")" 0 "streams cut by the upstream were settled"
before_restart=$(jq .spent_pico <<<"$GB")
expect_eq "$before_restart" "$(logged_cost)" "spent after upstream resets equals the log"

# --- a restart recomputes the same spent from the log --------------------------------------------
stop_daemon
start_daemon
global
expect_eq "$(jq .spent_pico <<<"$GB")" "$before_restart" "spent after a restart"
