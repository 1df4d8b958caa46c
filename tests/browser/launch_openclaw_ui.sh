#!/usr/bin/env bash
# The real OpenClaw control UI, as a user opens it after `tokfence launch`: a detached launch of
# the OpenClaw image (scripts/build-openclaw-image) runs its gateway; headless Chromium opens the
# dashboard URL launch printed (through the dashboard relay, with its page policy: docs/LAUNCH.md)
# and the UI must talk to the gateway over its WebSocket; a message typed into it is answered by the
# model through the proxy. The policy's refusals the browser reports
# are logged (OpenClaw's own remote loads, e.g. web fonts, are expected among them); a refusal of
# the UI's own origin fails the test. Screenshot: $WORK/openclaw-ui.png.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
need_browser

oc_image=$("$SOURCE_DIR/scripts/build-openclaw-image" --cache "$BUILD_DIR/openclaw-image") ||
  die "could not build the OpenClaw image (needs Debian's mirror and the npm registry)"
launch_test_setup
name="tfui-$RUN_ID"
tf launch --image "$oc_image" --no-pull --name "$name" --detach --port 0 --json
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
url=$(jq -r .dashboard_url <<<"$TF_OUT")
port=${url#http://127.0.0.1:}
port=${port%%/*}
wait_until "curl -fsS -o /dev/null http://127.0.0.1:$port/" 90 || die "the gateway's UI did not answer on $port"
head=$(curl -sS -m 8 -D - -o /dev/null "http://127.0.0.1:$port/")
expect_contains "$head" "Content-Security-Policy: default-src 'self' data: blob:" "the relay's page policy on the UI"

out=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile" URL=$url SHOT="$WORK/openclaw-ui.png" \
  timeout 150 node "$SOURCE_DIR/tests/browser/launch_openclaw_ui.mjs" 2>"$WORK/node.err") ||
  { cat "$WORK/node.err" >&2; die "the browser run failed"; }
log "browser: $out"
expect_contains "$(jq -r .title <<<"$out")" "OpenClaw" "the UI's page title"
expect_contains "$(jq -r .text <<<"$out")" "Connected" "the UI's connection state"
expect_eq "$(jq -r .reply <<<"$out")" pong "a chat turn typed into the UI, answered through the proxy"
(($(jq -r .ws_received <<<"$out") >= 2)) || die "the UI got no answer from the gateway over its WebSocket: $out"
(($(jq -r .ws_sent <<<"$out") >= 2)) || die "the UI sent nothing over its WebSocket: $out"
expect_contains "$(jq -r '.ws_urls | join(" ")' <<<"$out")" "ws://127.0.0.1:$port" "the UI's WebSocket goes to the relay"
tf_ok log --json
expect_eq "$(jq --arg c "openclaw:$name" '[.[] | select(.caller_name == $c and .status == 200)] | length > 0' <<<"$TF_OUT")" true \
  "a log row of the UI's turn"
# The policy refuses other sites only: nothing of the UI's own origin may be among the refusals.
expect_not_contains "$(jq -r '.violations | join("\n")' <<<"$out")" "127.0.0.1:$port" "a refusal of the UI's own origin"
tf_ok launch stop --name "$name"
expect_nothing_left "$name"
