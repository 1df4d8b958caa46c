#!/usr/bin/env bash
# Attack (review 12b F3): a hostile (or compromised, or misconfigured custom) upstream echoes the
# key tokfence injected in a gzip-compressed body, "Content-Encoding: gzip", although tokfence asks
# for "Accept-Encoding: identity". Before: the response scan read deflate bytes and found nothing,
# body and Content-Encoding went to the client, whose HTTP library (curl --compressed, httpx,
# Node fetch) inflated it: the agent held the real key. Expected: while responses are scanned, an
# answer with a Content-Encoding other than identity is not relayed: 502 tokfence_upstream_error,
# and the log row says why. Control: the plain echo, which was always cut.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/hostile_lib.bash"

hostile_setup

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
