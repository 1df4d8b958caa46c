#!/usr/bin/env bash
# Attack: a token holder whose session has its own daily budget (`session new --budget 2`) sends
# ten slow requests at once. The session budget was checked against what its settled requests had
# spent, so all ten were admitted before the first one settled: each cost $1.5 here, $15 on a $2
# budget. Expected: a session budget holds each request's estimate from admission, as the global
# budgets do; concurrent requests cannot pass it by more than the one request that may start
# alone, the rest are refused (402 tokfence_session_budget) before anything reaches the upstream,
# and a refused request holds nothing (a later one passes once the budget has room).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

session_budget_setup burst 2
# max_tokens 1000: an estimate of about $1.01; 1500 reasoning tokens: a real cost of about $1.5.
body='{"model":"tf-test","max_tokens":1000,"messages":[{"role":"user","content":"go"}]}'
send() {  # send N: one request, its status in $WORK/out/code-N, its body in $WORK/out/body-N
  curl -sS --max-time 60 -o "$WORK/out/body-$1" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -H 'x-fake-delay-ms: 2000' -H 'x-fake-reasoning: 1500' -d "$body" >"$WORK/out/code-$1"
}
pids=()
for i in $(seq 1 10); do
  send "$i" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

passed=0 refused=0
for i in $(seq 1 10); do
  code=$(cat "$WORK/out/code-$i")
  if [[ $code == 200 ]]; then
    passed=$((passed + 1))
  elif [[ $code == 402 ]]; then
    expect_eq "$(jq -r .error.type "$WORK/out/body-$i")" tokfence_session_budget "refusal type"
    refused=$((refused + 1))
  else
    die "request $i: status $code: $(head -c 300 "$WORK/out/body-$i")"
  fi
done
log "concurrent: $passed of 10 passed, $refused refused"
((passed <= 2)) || die "$passed concurrent requests worth \$1.5 each passed a \$2 session budget"
expect_eq "$(curl -s "$FAKE_URL/__fake/requests" | jq length)" "$passed" "requests at the upstream"
tf_ok session show burst --json
spent=$(jq '.spent_today_pico // .session.spent_today_pico' <<<"$TF_OUT")
log "session spent: $spent picodollars"
((spent <= 2 * 1500000000000 + 100000000000)) || die "session spent $spent picodollars on a \$2 budget"

# One at a time now: the refused requests held nothing, so a request passes while the day's spend
# is under the limit (the one that may start alone), and once it is past, the next is refused.
for i in 1 2 3; do
  tf_ok session show burst --json
  spent=$(jq '.spent_today_pico // .session.spent_today_pico' <<<"$TF_OUT")
  send "seq-$i"
  if ((spent < 2000000000000)); then
    expect_eq "$(cat "$WORK/out/code-seq-$i")" 200 "a lone request with $spent pico spent of \$2"
  else
    expect_eq "$(cat "$WORK/out/code-seq-$i")" 402 "a request after the budget is spent"
    break
  fi
done
scan_for_canary || die "canary found in an artifact"
log "ok: a session budget holds in-flight estimates; concurrent requests are refused"
