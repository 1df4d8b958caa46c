#!/usr/bin/env bash
# Attack (review 12b F3): a hostile (or compromised, or misconfigured custom) upstream echoes the
# key tokfence injected in a gzip-compressed body, "Content-Encoding: gzip", although tokfence asks
# for "Accept-Encoding: identity". Before: the response scan read deflate bytes and found nothing,
# body and Content-Encoding went to the client, whose HTTP library (curl --compressed, httpx,
# Node fetch) inflated it: the agent held the real key. Expected: while responses are scanned, an
# answer with a Content-Encoding other than identity is not relayed: 502 tokfence_upstream_error,
# and the log row says why. Control: the plain echo, which was always cut.
source "$(dirname "$0")/../integration/lib.sh"

python3 "$(dirname "$0")/hostile_upstream.py" "$WORK/hostile.port" >"$WORK/hostile.log" 2>&1 &
_pids_to_kill+=($!)
wait_until "test -s '$WORK/hostile.port'"
FAKE_URL="http://127.0.0.1:$(cat "$WORK/hostile.port")"
TOKFENCE_TEST_REQUIRE_TOKEN=true
write_test_config '[pricing."tf-test"]' 'input = 1' 'output = 1'
add_canary_key openai
start_daemon
tf_ok session new --name probe --json
TOKEN=$(jq -r .token <<<"$TF_OUT")

ask() {  # MODE: the reply as the client's library decodes it (kept in memory: the canary scan)
  curl -sS -i --compressed --max-time 10 "$PROXY_URL/openai/v1/chat/completions/$1" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"model":"tf-test","messages":[]}' 2>/dev/null || true
}
for mode in plain gzip; do
  out=$(ask "$mode")
  [[ $out == *"$CANARY"* ]] && die "mode $mode: the client received the vault key"
  expect_contains "$(head -1 <<<"$out")" " 502" "mode $mode: status"
  expect_contains "$out" tokfence_upstream_error "mode $mode: error type"
  log "held: $mode"
done
expect_contains "$out" "encoded body" "the gzip answer's message says why"
tf_ok log --json -n 5
expect_contains "$(jq -r '.[].error // ""' <<<"$TF_OUT")" "Content-Encoding" "the row says why"
scan_for_canary || die "canary found in an artifact"
log "ok: an upstream cannot hand the key to the client compressed"
