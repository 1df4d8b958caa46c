#!/usr/bin/env bash
# A hostile (or compromised, or misconfigured custom) upstream hands the key tokfence injected back
# to the client, disguised so that a scan of the raw bytes on the wire does not see it whole: in a
# response header, split by 8-byte chunked framing, as \u00XX JSON escapes, spelled across SSE
# events. The client's HTTP and JSON libraries put each back together. tokfence scans the head,
# the de-chunked body, the unescaped body and the generated text joined across events, and cuts
# the response before the client has the key; with every ImmuneFence sensor off too (the key
# must never reach an agent). Control: the plain echo, which was always caught.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/hostile_lib.bash"

hostile_setup sensors-off

# What a client reads once its libraries decoded the answer: head, body, JSON-decoded body, and
# the SSE content deltas joined.
decoded() {
  python3 -c '
import json, re, sys
raw = sys.stdin.read()
head, _, body = raw.partition("\r\n\r\n")
text = head + body
try:
    text += json.dumps(json.loads(body), ensure_ascii=False)
except Exception:
    pass
text += "".join(re.findall(r"\"content\":\"([^\"]*)\"", body))
print(text)'
}
for mode in plain header chunked uescape sse; do
  out=$(curl -sS -i --max-time 10 "$PROXY_URL/openai/v1/chat/completions/$mode" -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"model":"tf-test","messages":[]}' 2>/dev/null || true)
  if decoded <<<"$out" | grep -qF -- "$CANARY"; then die "mode $mode: the client received the vault key"; fi
  log "held: $mode"
done
tf_ok log --json -n 20
expect_eq "$(jq '[.[] | select(.error // "" | test("vault key"))] | length' <<<"$TF_OUT")" 5 "a row saying why, per mode"
scan_for_canary || die "canary found in an artifact"
log "ok: an upstream cannot hand the key to the client in any of these disguises"
