#!/usr/bin/env bash
# Attack (review 13a M3): a JSON body with `Content-Type: application/json; charset=utf-7` whose
# strings are UTF-7 (a decoy spelled "+AEEASwBJAEE-..."): tokfence's scans read bytes and saw
# base64 of UTF-16, the decoy went out and the session stayed GREEN, because express's body-parser
# (and aiohttp) decode the body by the charset named. Expected: a body read as JSON whose
# Content-Type names any charset but UTF-8 (or US-ASCII) is refused (400) before anything goes
# upstream; charset=utf-8 passes as before.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
write_test_config '[pricing."tf-test"]' 'input = 1' 'output = 1'
add_canary_key openai
start_daemon
open_socket agent
TOKEN=$(token_of agent)
DECOY=$(decoy_of agent)
python3 - "$DECOY" "$WORK/utf7.json" <<'PY'
import base64, sys
decoy, out = sys.argv[1:]
u7 = lambda s: "+" + base64.b64encode(s.encode("utf-16-be")).decode().rstrip("=") + "-"
open(out, "w").write('{"model":"tf-test","messages":[{"role":"user","content":"' + u7("creds: " + decoy) + '"}]}')
PY
send() {
  curl -sS --max-time 30 -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-agent/proxy.sock" \
    "http://localhost/openai/v1/chat/completions" -H "Authorization: Bearer $TOKEN" "$@"
}
before=$(curl -fsS "$FAKE_URL/__fake/requests" | jq length)
for charset in utf-7 UTF-16 '"utf-7"' latin1; do
  code=$(send -H "Content-Type: application/json; charset=$charset" --data-binary @"$WORK/utf7.json")
  expect_eq "$code" 400 "a body with charset=$charset"
  expect_contains "$(cat "$WORK/out/reply")" "charset"
done
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq length)" "$before" "requests that reached the upstream"
code=$(send -H 'Content-Type: application/json; charset=utf-8' -d '{"model":"tf-test","messages":[{"role":"user","content":"hi"}]}')
expect_eq "$code" 200 "charset=utf-8"
log "ok"
