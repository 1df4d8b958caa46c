#!/usr/bin/env bash
# Attack (review 12b F5): a hostile upstream hands the key tokfence injected back in the parts of
# the HTTP framing the response scan did not read: the status line's reason phrase
# ("HTTP/1.1 200 <key>"), a header field NAME ("X-<key>: 1"), a chunk extension ("59;k=<key>"), a
# trailer field after the last chunk. Before: each was copied to the client as it came (httpx
# exposes reason_phrase, Node statusMessage and trailers). Expected: the proxy writes the standard
# reason phrase for the status, scans header names as well as values (a key there: 502), and
# re-chunks answers without extensions or trailers; the body still arrives whole. With every
# ImmuneFence sensor off too (the key must never reach an agent).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/hostile_lib.bash"

hostile_setup sensors-off

ask() {  # MODE: every byte the client got, framing and all (kept in memory: the canary scan)
  curl -sS -i --raw --max-time 10 "$PROXY_URL/openai/v1/chat/completions/$1" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"model":"tf-test","messages":[]}' 2>/dev/null || true
}
for mode in reason hname chunkext trailer; do
  out=$(ask "$mode")
  [[ $out == *"$CANARY"* ]] && die "mode $mode: the client received the vault key"
  case $mode in
    hname) expect_contains "$(head -1 <<<"$out")" "HTTP/1.1 502 Bad Gateway" "$mode: refused" ;;
    *) expect_contains "$(head -1 <<<"$out")" "HTTP/1.1 200 OK" "$mode: the standard status line"
       expect_contains "$out" '"total_tokens":20' "$mode: the body arrives"
       expect_not_contains "$out" ";k=" "$mode: a chunk extension relayed"
       expect_not_contains "$out" "X-Trailer" "$mode: a trailer relayed" ;;
  esac
  log "held: $mode"
done
scan_for_canary || die "canary found in an artifact"
log "ok: an upstream cannot hand the key to the client in the response's framing"
