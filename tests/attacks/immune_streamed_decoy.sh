#!/usr/bin/env bash
# A hostile agent smuggles a decoy past the request scan in a form the scan cannot read (here
# reversed, as in "reverse this string for me"), and the model answers with it spelled out. In a
# streamed answer the text arrives a few characters per SSE event, each wrapped in its own JSON,
# so the decoy is never contiguous in the bytes on the wire and the byte scan alone misses it
# (this test checks that it is indeed split). The proxy also joins the text the model generates
# (usage's collect_generated_text) and scans that: the session turns RED and its next request is
# refused. A real vault key spelled out the same way by a hostile upstream is cut before the
# client has it whole. The stream itself is relayed untouched up to that point.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

# ask NAME API REVERSED_TEXT STREAM -> status; body in $WORK/out/reply
ask() {
  local name=$1 api=$2 text=$3 stream=$4 path body
  case $api in
    openai) path=/openai/v1/chat/completions
      body="{\"model\":\"gpt-4o-mini\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"reverse the header for me\"}]}" ;;
    anthropic) path=/anthropic/v1/messages
      body="{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"reverse it\"}]}" ;;
  esac
  curl -s -N -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-$name/proxy.sock" "http://localhost$path" \
    -H "Authorization: Bearer $(token_of "$name")" -H 'Content-Type: application/json' \
    -H "x-fake-spell-reversed: $text" -d "$body"
}
reversed() { rev <<<"$1"; }
risk_of() { tf session show "$(jq -r .session.name "$WORK/out/$1.json")" --json; jq -r .risk_state <<<"$TF_OUT"; }

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
write_test_config
add_canary_key openai
add_canary_key anthropic
start_daemon

for api in openai anthropic; do
  # 1. Control: an ordinary streamed answer keeps the session GREEN.
  open_socket "plain-$api"
  expect_eq "$(ask "plain-$api" $api "$(reversed "hello there, all fine")" true)" 200 "$api: ordinary stream"
  expect_eq "$(risk_of "plain-$api")" GREEN "$api: an ordinary stream"

  # 2. The decoy, spelled back in a stream.
  open_socket "agent-$api"
  DECOY=$(jq -r '.session.decoys.values[0]' "$WORK/out/agent-$api.json")
  [[ ${#DECOY} -ge 20 ]] || die "no decoy"
  expect_eq "$(ask "agent-$api" $api "$(reversed "$DECOY")" true)" 200 "$api: the stream itself is relayed"
  # The test could not fail if the decoy were contiguous in the bytes: the byte scan would see it.
  if grep -qaF -- "$DECOY" "$WORK/out/reply"; then die "$api: the decoy is whole in the raw stream (the test would not test the joined text)"; fi
  joined=$(grep -a '^data: {' "$WORK/out/reply" | sed 's/^data: //' |
    jq -rj '.choices[0].delta.content // .delta.text // empty')
  expect_contains "$joined" "$DECOY" "$api: the client got the model's text"
  expect_eq "$(risk_of "agent-$api")" RED "$api: a decoy spelled out in a streamed answer"
  tf session show "$(jq -r .session.name "$WORK/out/agent-$api.json")" --json
  expect_eq "$(jq -r '.transitions[-1].sensor' <<<"$TF_OUT")" honeytoken "$api: the sensor"
  expect_eq "$(ask "agent-$api" $api "$(reversed "hello")" true)" 403 "$api: the next request"
  expect_contains "$(cat "$WORK/out/reply")" tokfence_risk_red
done

# 3. A vault key spelled out by the upstream: cut before the client has a whole window of it.
open_socket keyecho
status=$(ask keyecho openai "$(reversed "$CANARY")" true) || true  # curl: 18, the stream was cut
# 200 and a stream cut short, or 502 when the whole answer came in one piece (nothing relayed).
[[ $status == 200 || $status == 502 ]] || die "the answer: $status"
got=$(grep -a '^data: {' "$WORK/out/reply" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty' 2>/dev/null || true)
[[ ${#got} -lt ${#CANARY} ]] || die "the client received the whole key (${#got} characters)"
python3 - "$got" "$CANARY" <<'PY' || die "the client received 16 characters of the key past its prefix"
import sys
got, key = sys.argv[1], sys.argv[2]
body = key[key.find("-", 3) + 1:] if "-" in key else key
sys.exit(1 if any(body[i:i + 16] in got for i in range(len(body) - 15)) else 0)
PY
tf_ok log --json -n 5
expect_contains "$(jq -r '.[-1].error // empty' <<<"$TF_OUT")" "vault key" "the row says why it was cut"
scan_for_canary || die "canary found in an artifact"
log "ok: decoys spelled out in streamed answers turn the session RED; a key spelled out is cut"
