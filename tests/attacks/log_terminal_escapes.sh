#!/usr/bin/env bash
# Attack: terminal escape injection through the request log. A client inside the fence chooses
# its model name (JSON escapes reach the row as raw characters), its caller name and path (raw
# bytes 0x80-0xFF are legal in HTTP field values and targets). Whoever later runs `tokfence log`
# or `tokfence stats` in a terminal would have those sent to it: ESC sequences (retitle the
# window, rewrite lines, OSC 52 clipboard writes), and C1 controls (U+009B is CSI, U+009D OSC on
# terminals that take 8-bit controls; a raw 0x9B byte is CSI to a terminal in an 8-bit mode).
# Every output of `log` and `stats` (table, detail, JSON) must be valid UTF-8 with no C0 (other
# than newline and tab), DEL or C1 character in it.
# Fails against a build that masks only C0 and DEL (TOKFENCE_BIN=/tmp/orig/build/bin/tokfence).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
start_daemon

# The model: ESC ] 0 ; title BEL, C1 CSI (U+009B), C1 OSC (U+009D) ... ST (U+009C), DEL.
model='evil\u001b]0;pwned\u0007\u009b31mred\u009d52;c;Zm9v\u009c\u007fend'
curl -fsS -o /dev/null "$PROXY_URL/openai/v1/chat/completions" \
  -H $'X-Tokfence-Caller: agent\x9b31m\xc2\x9b32m\xff\xfeend' \
  -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
curl -sS -o /dev/null "$PROXY_URL"$'/openai/v1/x\x9b2J\xc2\x9d0;t' -H 'X-Tokfence-Caller: plain' -d '{}'
wait_until "'$TOKFENCE_BIN' log --json -n 5 | jq -e 'length >= 2'" 20
ID=$("$TOKFENCE_BIN" log --json -n 5 | jq -r '.[] | select(.model | startswith("evil")) | .id')
[[ -n "$ID" ]] || die "the request with the hostile model has no row"

# Fails (naming the command) when its output is not clean UTF-8 text for a terminal.
check_clean() {
  local what=$1
  shift
  tf "$@"
  [[ $TF_RC -eq 0 ]] || die "tokfence $* exited $TF_RC: $TF_ERR"
  /usr/bin/python3 - "$WORK/out/$_out_seq.stdout" "$what" <<'PY' || die "raw control characters in the output of: $what"
import sys
data = open(sys.argv[1], "rb").read()
try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    print(f"{sys.argv[2]}: not valid UTF-8: {e}", file=sys.stderr); sys.exit(1)
bad = sorted({hex(ord(c)) for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f})
if bad:
    print(f"{sys.argv[2]}: raw control characters {bad}", file=sys.stderr); sys.exit(1)
PY
}
check_clean "log" log -n 5
check_clean "log <id>" log "$ID"
check_clean "log --json" log --json -n 5
check_clean "log <id> --json" log "$ID" --json
check_clean "stats --by model" stats --by model
check_clean "stats --by caller" stats --by caller
check_clean "stats --by caller --json" stats --by caller --json
check_clean "stats --by model --json" stats --by model --json

# Masked, not dropped: the rest of the text is still there.
tf_ok log -n 5
expect_contains "$TF_OUT" "evil?]0;pwned?" "the model, masked"
tf_ok log --json -n 5
expect_eq "$(jq -r --arg id "$ID" '.[] | select(.id == $id) | .model' <<<"$TF_OUT" | od -An -tx1 | tr -d ' \n' | grep -c 'c29b')" 1 \
  "JSON keeps the character itself (escaped): jq decodes U+009B"

stop_daemon
scan_for_canary
log "ok"
