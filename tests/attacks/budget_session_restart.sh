#!/usr/bin/env bash
# Attack: a session's own daily budget (`session new --budget 1`) was counted in memory only. A
# request that used it up ($1.5 of a $1 budget), then a daemon restart (an update, a reboot, a
# crash the agent provoked): the session's day started again with $0 spent and the next request
# passed. Expected: at start the daemon restores each budgeted session's day from the request log
# (its requests of the last day, none before it was created); the used-up budget still refuses
# (402 tokfence_session_budget) and `session show` reports the spend.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

session_budget_setup capped 1
post() {  # reasoning tokens -> status
  curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -H "x-fake-reasoning: $1" \
    -d '{"model":"tf-test","max_tokens":10,"messages":[{"role":"user","content":"go"}]}'
}
expect_eq "$(post 1500)" 200 "the request that uses the budget up"
expect_eq "$(post 10)" 402 "the next one, before the restart"
tf_ok session show capped --json
before=$(jq '.spent_today_pico // .session.spent_today_pico' <<<"$TF_OUT")
[[ $before -gt 1000000000000 ]] || die "spend before the restart: $before"

stop_daemon
start_daemon
tf_ok session show capped --json
after=$(jq '.spent_today_pico // .session.spent_today_pico' <<<"$TF_OUT")
expect_eq "$after" "$before" "the session's spend after a restart"
expect_eq "$(post 10)" 402 "a request after the restart"
expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_session_budget "its refusal"

# A new session of the same name starts its own day: rows of the ended one do not count.
tf_ok session revoke capped
tf_ok session new --name capped --budget 1 --json
TOKEN=$(jq -r .token <<<"$TF_OUT")
stop_daemon
start_daemon
expect_eq "$(post 10)" 200 "a new session of the same name after a restart"
scan_for_canary || die "canary found in an artifact"
log "ok"
