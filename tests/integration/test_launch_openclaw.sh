#!/usr/bin/env bash
# CI smoke with the real OpenClaw: builds the OpenClaw image with no registry
# (scripts/build-openclaw-image: debootstrap rootfs + node from npm + `npm install openclaw`,
# cached under the build directory) and runs one agent turn through `tokfence launch` against the
# fake upstream:
#   tokfence launch --image <it> --no-pull -- openclaw --log-level error agent --local --agent main --message ping
# Checks the reply, the log row (tokens, cost, caller openclaw:<name>), that the upstream saw the
# vault key, that the rendered config validates with OpenClaw itself, that the container user has
# an account (os.userInfo), and that nothing is left.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

oc_image=$("$SOURCE_DIR/scripts/build-openclaw-image" --cache "$BUILD_DIR/openclaw-image") ||
  die "could not build the OpenClaw image (needs Debian's mirror and the npm registry)"
log "image $oc_image"

launch_test_setup
name="tfoc-$RUN_ID"

# The config tokfence renders is valid for OpenClaw's strict schema.
tf launch --image "$oc_image" --no-pull --name "$name-validate" -- openclaw --log-level error config validate
expect_eq "$TF_RC" 0 "openclaw config validate: $TF_OUT $TF_ERR"
expect_contains "$TF_OUT" "Config valid: /tokfence/config/openclaw.json"
expect_nothing_left "$name-validate"

# The container user has an account: node's os.userInfo() (which chrome-devtools-mcp and other
# tools call) and whoami work for the id launch picked, from the host's read-only account files.
ids=$(launch_default_ids)
tf launch --image "$oc_image" --no-pull --name "$name-user" -- sh -c \
  'node -e "const u = require(\"os\").userInfo(); console.log(\"user=\" + u.username + \" uid=\" + u.uid + \" home=\" + u.homedir)" && whoami && touch /etc/passwd'
expect_contains "$TF_OUT" "user=$([[ ${ids%%:*} == 1000 ]] && echo node || echo openclaw) uid=${ids%%:*}" "os.userInfo() in the container: $TF_ERR"
[[ ${ids%%:*} == 1000 ]] || expect_contains "$TF_OUT" "home=/tokfence/home"
expect_contains "$TF_ERR$TF_OUT" "cannot touch '/etc/passwd'" "the account files are read-only"
expect_nothing_left "$name-user"

tf launch --image "$oc_image" --no-pull --name "$name" -- openclaw --log-level error agent --local --agent main --message ping
[[ $TF_RC -eq 0 ]] || die "openclaw agent turn failed ($TF_RC): $TF_OUT $TF_ERR"
expect_contains "$TF_OUT" "pong" "agent reply"

# The upstream got the real key; the request log names the launch, with tokens and cost.
auth=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path | endswith("/chat/completions"))][-1].headers.authorization')
[[ $auth == "Bearer $CANARY" ]] || die "upstream did not get the vault key"
tf_ok log --json
row=$(jq -c --arg c "openclaw:$name" '[.[] | select(.caller_name == $c)][-1]' <<<"$TF_OUT")
[[ $row != null ]] || die "no log row with caller openclaw:$name: $TF_OUT"
log "log row: $row"
expect_eq "$(jq -r .status <<<"$row")" 200
(($(jq -r '.input_tokens // 0' <<<"$row") > 0)) || die "no input tokens logged"
(($(jq -r '.output_tokens // 0' <<<"$row") > 0)) || die "no output tokens logged"
(($(jq -r '.cost_pico // 0' <<<"$row") > 0)) || die "no cost logged"
expect_eq "$(jq -r .model <<<"$row")" "gpt-5" "the primary model chosen for openai"

expect_nothing_left "$name"

# ImmuneFence: the row names the launch's session (from its token), and the real OpenClaw's
# ordinary turn left that session GREEN.
session=$(jq -r .session <<<"$row")
[[ $session == openclaw:$name* ]] || die "log row's session: '$session'"
tf_ok session list --all --json >/dev/null
tf session list --all --json
expect_eq "$(jq -r --arg s "$session" '[.history[] | select(.name == $s)][0].risk_state' <<<"$TF_OUT")" GREEN "OpenClaw's session"
