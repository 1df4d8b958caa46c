#!/usr/bin/env bash
# A requests-per-minute limit on the real daemon admits exactly the configured number of requests in
# a 60-second window, refuses the next with 429 tokfence_rate_limited and a Retry-After pointing at
# the moment a slot frees, and recovers when the window has passed. The daemon's clock is moved with
# the test-only TOKFENCE_TEST_NOW_OFFSET_FILE instead of sleeping for a minute.
source "$(dirname "$0")/lib.sh"

export TOKFENCE_TEST_NOW_OFFSET_FILE="$WORK/clock-offset"
echo 0 >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
start_fake_upstream
write_test_config
for p in openai anthropic; do
  add_canary_key $p
done
start_daemon

n=0
req() {
  local provider=${1:-openai}
  n=$((n + 1))
  HDRS="$WORK/out/req$n.h"
  BODY="$WORK/out/req$n.b"
  CODE=$(curl -sS --max-time 30 -D "$HDRS" -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    --data '{"model":"gpt-4o","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}' \
    "$PROXY_URL/$provider/v1/chat/completions")
}
retry_after() { tr -d '\r' <"$HDRS" | awk -F': ' 'tolower($1) == "retry-after" {print $2}'; }

RPM=5
tf_ok ratelimit set openai $RPM
for ((i = 1; i <= RPM; i++)); do
  req
  expect_eq "$CODE" 200 "request $i of $RPM in the first window"
done
req
expect_eq "$CODE" 429 "request $((RPM + 1)) in the same minute"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_rate_limited
expect_eq "$(jq -r .error.rpm "$BODY")" $RPM
first_retry=$(retry_after)
[[ $first_retry =~ ^[0-9]+$ && $first_retry -ge 1 && $first_retry -le 60 ]] || die "Retry-After: '$first_retry'"
req anthropic
expect_eq "$CODE" 200 "another provider is not limited"

# 30 s later: still inside the window, and Retry-After has counted down by about as much.
echo 30 >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
req
expect_eq "$CODE" 429 "still within 60 s of the first request"
retry=$(retry_after)
((retry <= first_retry - 29 && retry >= 1)) || die "Retry-After after 30 s: $retry (was $first_retry)"
tf_ok status --json
expect_eq "$(jq -r '.controls.ratelimits[] | select(.provider == "openai") | .used' <<<"$TF_OUT")" $RPM

# A full window after the first burst: exactly RPM more are admitted, then refused again.
echo 61 >"$TOKFENCE_TEST_NOW_OFFSET_FILE"
for ((i = 1; i <= RPM; i++)); do
  req
  expect_eq "$CODE" 200 "request $i of $RPM in the second window"
done
req
expect_eq "$CODE" 429 "request $((RPM + 1)) of the second window"

# Raising the limit applies to the next request.
tf_ok ratelimit set openai $((RPM + 1))
req
expect_eq "$CODE" 200 "one more slot after raising the limit"
req
expect_eq "$CODE" 429

# The limit survives a restart (the window itself is in memory only, so it starts empty).
stop_daemon
start_daemon
for ((i = 1; i <= RPM + 1; i++)); do
  req
  expect_eq "$CODE" 200 "request $i after the restart"
done
req
expect_eq "$CODE" 429 "the limit is back after the restart"
tf_ok ratelimit clear openai
req
expect_eq "$CODE" 200 "cleared"
