#!/usr/bin/env bash
# The real OpenClaw's Telegram channel, end to end through the fence (issue 18):
#   tokfence vault add telegram-bot - --host api.telegram.org --in path   (the real token, host-bound)
#   tokfence launch --egress-preset telegram --telegram-secret telegram-bot --telegram-allow-from <user>
#                   (the image's own command: OpenClaw's gateway)
# OpenClaw's grammY client long-polls a fake Bot API (tests/integration/fake_telegram_api.py: TLS on
# 127.0.0.1, its certificate for api.telegram.org from a test CA given to the daemon by [egress]
# extra_ca_file, the name mapped by [egress.resolve]) through tokfence's forward proxy, which
# terminates TLS for the bound host (the container trusts the local CA) and swaps the placeholder
# in /bot<token>/ for the real token. The fake delivers one message from the allowed user; OpenClaw
# answers it through the model proxy (fake provider: "pong") with sendMessage.
# Checked: the model was asked with the user's text; the fake saw sendMessage to the user with the
# model's reply; every request it got
# carried the real token (never the placeholder); the model call was logged for the launch; the
# real token is in no container variable, docker inspect, daemon log, DB, config, state home or
# test output (only the vault holds it; the fake logs a hash check, never the token).
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
command -v openssl >/dev/null || skip "openssl missing"

oc_image=$("$SOURCE_DIR/scripts/build-openclaw-image" --cache "$BUILD_DIR/openclaw-image") ||
  die "could not build the OpenClaw image (needs Debian's mirror and the npm registry)"

# A test CA and a certificate for api.telegram.org (never the real one: the name resolves to the fake).
TG_DIR="$WORK/tg"
mkdir -p "$TG_DIR"
chmod 755 "$WORK" "$TG_DIR"
(
  cd "$TG_DIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=tokfence-telegram-test-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
    -subj /CN=api.telegram.org 2>/dev/null
  printf 'subjectAltName=DNS:api.telegram.org\nbasicConstraints=CA:FALSE\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile ext.cnf 2>/dev/null
  chmod 644 ca.pem
) || die "could not make the test certificates"

# The real token: Telegram's shape (<bot id>:<35 characters>). Only its hash goes to the fake.
BOT_TOKEN="7000000001:AA$(random_token 33)"
TG_USER=424242001
TG_TEXT="hello from telegram $(random_token 8)"
TG_LOG="$WORK/telegram-api.log"
: >"$TG_LOG"
python3 "$SOURCE_DIR/tests/integration/fake_telegram_api.py" --cert "$TG_DIR/server.pem" --key "$TG_DIR/server.key" \
  --port-file "$WORK/tg.port" --log "$TG_LOG" --user-id "$TG_USER" --text "$TG_TEXT" \
  --token-sha256 "$(printf '%s' "$BOT_TOKEN" | sha256sum | cut -d' ' -f1)" --lifetime 400 &
_pids_to_kill+=($!)
wait_until "test -s '$WORK/tg.port'"
TG_PORT=$(cat "$WORK/tg.port")
# The fake can tell: the placeholder (what the container holds) gets Telegram's 401.
control=$(curl -sS --max-time 10 --cacert "$TG_DIR/ca.pem" --resolve "api.telegram.org:$TG_PORT:127.0.0.1" \
  "https://api.telegram.org:$TG_PORT/bottokfence-secret:telegram-bot/getMe") || die "the fake Bot API does not answer"
expect_eq "$control" '{"ok":false,"error_code":401,"description":"Unauthorized"}' "the fake's answer to the placeholder"
: >"$TG_LOG"

launch_test_setup '[egress.resolve]' "\"api.telegram.org\" = \"127.0.0.1:$TG_PORT\"" \
  '[egress]' "extra_ca_file = \"$TG_DIR/ca.pem\""
start_daemon
tf_in "$BOT_TOKEN" vault add telegram-bot - --host api.telegram.org --in path
expect_eq "$TF_RC" 0 "vault add telegram-bot --host api.telegram.org --in path: $TF_ERR"
wait_until "grep -q 'bound secret' '$TOKFENCE_HOME/daemon.log'" 20
name="tftg-$RUN_ID"

# The image's own command (OpenClaw's gateway) in the foreground, its logs streamed; the test stops
# it once the reply was sent. launch runs OpenClaw's `config validate` on the rendered config first.
log "launching OpenClaw's gateway with the Telegram channel"
started=$(date +%s)
_out_seq=$((_out_seq + 1))
launch_out="$WORK/out/$_out_seq.stdout" launch_err="$WORK/out/$_out_seq.stderr"
"$TOKFENCE_BIN" launch --image "$oc_image" --no-pull --name "$name" --port 0 --egress-preset telegram \
  --telegram-secret telegram-bot --telegram-allow-from "$TG_USER" >"$launch_out" 2>"$launch_err" </dev/null &
launch_pid=$!
_pids_to_kill+=($launch_pid)
EXTRA_CLEANUP='"$TOKFENCE_BIN" launch stop --name "$name" >/dev/null 2>&1'

called() { jq -se --arg m "$1" 'any(.[]; .method == $m)' "$TG_LOG" >/dev/null; }
sent() { jq -se --arg u "$TG_USER" 'any(.[]; .method == "sendMessage" and (.params.chat_id | tostring) == $u)' "$TG_LOG" >/dev/null; }
# Bounded waits: the gateway's first Bot API call, then the reply (each at most 120 s).
wait_for() {  # CONDITION WHAT
  local i
  for ((i = 0; i < 120; i++)); do
    $1 && return 0
    kill -0 "$launch_pid" 2>/dev/null || die "the launch ended before $2: $(tail -c 3000 "$launch_err")"
    sleep 1
  done
  die "no $2 within 120 s: fake Bot API saw: $(jq -r '.method // .error' "$TG_LOG" | sort | uniq -c | tr '\n' ' ') launch: $(tail -c 3000 "$launch_err")"
}
wait_for "called getMe" "getMe"
first_call=$(date +%s)
log "first Bot API call (getMe) $((first_call - started)) s after the launch started"
wait_for sent "sendMessage to the user"
log "reply sent $(($(date +%s) - first_call)) s after getMe; the fake Bot API saw: $(jq -r '.method // .error' "$TG_LOG" | sort | uniq -c | tr '\n' ' ')"

# A grep for the real token that keeps it off every command line (the pattern comes from a pipe).
has_token() { grep -qaFf <(printf '%s\n' "$BOT_TOKEN"); }

log "while it runs: the token is in no variable, file or inspect output of the container"
cid=$(docker ps -q --filter "label=org.tokfence.launch=$name")
[[ -n $cid ]] || die "no running container for launch $name"
# (No pipes into a grep -q here: with pipefail an early exit would read as "not found".)
inspect=$(docker inspect "$cid")
has_token <<<"$inspect" && die "the real token is in docker inspect"
docker exec "$cid" /bin/sh -c 'cat /proc/[0-9]*/environ; find /tokfence /tmp /workspace /run -type f -size -50M -exec cat {} + 2>/dev/null' >"$WORK/container-dump" 2>/dev/null || true
[[ -s $WORK/container-dump ]] || die "could not read the container's environment and files"
grep -qa "tokfence-secret:telegram-bot" "$WORK/container-dump" || die "the placeholder is not in the container's config"
has_token <"$WORK/container-dump" && die "the real token is inside the container"
rm -f "$WORK/container-dump"
expect_eq "$(jq -r .channels.telegram.botToken "$TOKFENCE_HOME/openclaw/$name/openclaw.json")" "tokfence-secret:telegram-bot" "the rendered botToken"

log "the fake Bot API: the model's reply to the user; every call carried the real token, none the placeholder"
reply=$(jq -sr --arg u "$TG_USER" '[.[] | select(.method == "sendMessage" and (.params.chat_id | tostring) == $u)][0].params.text' "$TG_LOG")
expect_contains "$reply" "pong" "the text OpenClaw sent back"
calls=$(jq -s '[.[] | select(.method)] | length' "$TG_LOG")
bad=$(jq -sc '[.[] | select(.method) | select(.token_ok != true or .placeholder != false) | .method]' "$TG_LOG")
expect_eq "$bad" "[]" "Bot API calls without the real token (or with the placeholder)"
((calls >= 4)) || die "only $calls Bot API calls"
for m in getMe getUpdates sendMessage; do called "$m" || die "OpenClaw never called $m"; done

log "the proxy's view: the model call for the launch, the Bot API calls as inspected egress"
tf_ok log --json
row=$(jq -c --arg c "openclaw:$name" '[.[] | select(.caller_name == $c)][-1]' <<<"$TF_OUT")
[[ $row != null ]] || die "no model call logged for openclaw:$name: $TF_OUT"
expect_eq "$(jq -r .status <<<"$row")" 200 "the model call's status"
model_calls=$(curl -fsS "$FAKE_URL/__fake/requests")
auth=$(jq -r '[.[] | select(.path | endswith("/chat/completions"))][-1].headers.authorization' <<<"$model_calls")
[[ $auth == "Bearer $CANARY" ]] || die "the provider did not get the vault key"
jq -e --arg t "$TG_TEXT" 'any(.[]; (.path | endswith("/chat/completions")) and (.body | tostring | contains($t)))' <<<"$model_calls" >/dev/null ||
  die "no model request carried the Telegram message's text"
tf_ok log --egress --json -n 200
inspected=$(jq '[.[] | select(.host == "api.telegram.org" and .kind == "inspect" and .decision == "allowed")] | length' <<<"$TF_OUT")
((inspected >= calls - 1)) || die "only $inspected inspected egress rows for $calls Bot API calls: $TF_OUT"

log "stop; nothing left; the token nowhere but the vault"
tf launch stop --name "$name"
for ((i = 0; i < 60; i++)); do kill -0 "$launch_pid" 2>/dev/null || break; sleep 0.5; done
kill -0 "$launch_pid" 2>/dev/null && die "the foreground launch did not end after launch stop"
expect_nothing_left "$name"
hits=$(grep -rlaFf <(printf '%s\n' "$BOT_TOKEN") "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)' || true)
[[ -z $hits ]] || die "the real bot token is in: $hits"
