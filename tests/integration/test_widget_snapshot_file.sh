#!/usr/bin/env bash
# The daemon keeps TOKFENCE_HOME/desktop_snapshot.json current: written at start (mode 0600),
# rewritten at most once a second while requests flow, after control changes, and as the daemon
# exits (running: false). Its counters match `tokfence widget render --json`.
source "$(dirname "$0")/lib.sh"

FIXTURE="$SOURCE_DIR/tests/fixtures/widget_snapshot_original.json"
SHAPE="$SOURCE_DIR/tests/integration/widget_shape.py"
FILE="$TOKFENCE_HOME/desktop_snapshot.json"
command -v python3 >/dev/null || skip "python3 is needed to check the snapshot's shape"

start_fake_upstream
write_test_config
add_canary_key openai
start_daemon

wait_until "test -s '$FILE'" 5
expect_eq "$(stat -c %a "$FILE")" 600 "snapshot file mode"
python3 "$SHAPE" "$FIXTURE" "$FILE" || die "the file does not have the original's shape"
expect_eq "$(jq .running "$FILE")" true "running at start"
expect_eq "$(jq .today_requests "$FILE")" 0 "no requests yet"

send() {
  curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -H 'authorization: Bearer dummy' -H 'x-fake-reasoning: 1000' \
    --data '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' "$PROXY_URL/openai/v1/chat/completions"
}

# Requests for about three seconds; the file's modification time is sampled every 20 ms.
stat -c %y "$FILE" >"$WORK/mtimes"
sent=0
end=$(($(date +%s%N) + 3000000000))
while (($(date +%s%N) < end)); do
  expect_eq "$(send)" 200 "request $sent"
  sent=$((sent + 1))
  stat -c %y "$FILE" >>"$WORK/mtimes"
  sleep 0.02
done
writes=$(sort -u "$WORK/mtimes" | wc -l)
log "$sent requests in ~3 s; the file was rewritten $((writes - 1)) time(s) meanwhile"
((writes - 1 <= 5)) || die "the file was rewritten $((writes - 1)) times in ~3 s: more than once a second"
((writes - 1 >= 1)) || die "the file was not rewritten while requests flowed"

# Within a couple of seconds the file counts every request, like render --json.
wait_until "test \"\$(jq .today_requests '$FILE')\" = $sent" 5
tf_ok widget render --json
for key in today_requests today_input_tokens today_output_tokens today_cost_cents today_cost_micro_usd \
  top_provider top_provider_cost_cents today_cache_read_tokens kill_switch_active revoked_providers vault_providers; do
  expect_eq "$(jq -c ".$key" "$FILE")" "$(jq -c ".$key" <<<"$TF_OUT")" "file vs render --json: $key"
done
expect_eq "$(jq .pid "$FILE")" "$(jq .pid "$TOKFENCE_HOME/daemon.json")" "pid"

# A control change shows without any request.
tf_ok kill
wait_until "test \"\$(jq .kill_switch_active '$FILE')\" = true" 5
tf_ok revoke openai
wait_until "test \"\$(jq -c .revoked_providers '$FILE')\" = '[\"openai\"]'" 5
tf_ok unkill
wait_until "test \"\$(jq .kill_switch_active '$FILE')\" = false" 5

# The last write says the daemon is gone, with every request counted.
stop_daemon
expect_eq "$(jq .running "$FILE")" false "after stop"
expect_eq "$(jq .pid "$FILE")" null "after stop: pid"
expect_eq "$(jq .today_requests "$FILE")" "$sent" "after stop: counters kept"
expect_eq "$(stat -c %a "$FILE")" 600 "mode after rewrites"
ls -a "$TOKFENCE_HOME" | grep -q 'desktop_snapshot.json.*tmp\|^\.desktop_snapshot' && die "a temporary file was left behind" || true
