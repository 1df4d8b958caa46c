#!/usr/bin/env bash
# Escape class: the container's UI page carries what the agent read out through the user's
# browser. launch relays the OpenClaw control UI (the container's gateway, behind ui.sock) to
# 127.0.0.1:<port>; an agent that rewrote the UI serves a page whose script runs in the user's
# browser, which has the network the container lacks: fetch, beacons, images, scripts, frames,
# forms, WebSockets, workers, a service worker (which would outlive the launch and answer for
# the origin with headers of its choosing) and violation reports of a policy of its own all reach
# any site, no click needed.
# Before: the relay passed the container's answers as sent. Expected now (tokfence-relay
# --page-policy, which launch passes): every answer carries tokfence's Content-Security-Policy
# (core/page_origin.hpp relayed_page_policy: loads and connections only to the listener's own
# origin), X-DNS-Prefetch-Control: off and Connection: close, the server's reporting and Link
# fields are dropped, and the service worker script is refused, so the collector on another site hears nothing. Unprotected set-up first: the same
# page behind a relay without --page-policy does reach the collector in the same browser.
# (Not covered by a policy, named in docs/THREAT-MODEL.md: top-level navigation and WebRTC.)
source "$(dirname "$0")/../integration/lib.sh"
need_browser

# The attacker's collector: another site (evil.test, mapped to 127.0.0.1 in the browser only).
mkdir -p "$WORK/collector"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/collector" >"$WORK/collector.log" 2>&1 &
_pids_to_kill+=($!)
wait_until "grep -q 'port [0-9]' '$WORK/collector.log'"
collector_port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$WORK/collector.log" | head -1)

source "$SOURCE_DIR/tests/attacks/ui_relay_lib.bash"
# start_ui NAME [RELAY FLAGS...]: the hostile UI behind a relay with launch's --own-uid-only
# --check-host and those flags.
start_ui() {
  local name=$1
  shift
  start_ui_relay "$name" "$SOURCE_DIR/tests/attacks/launch_ui_exfil_stub.py" "http://evil.test:$collector_port" -- \
    --own-uid-only --check-host "$@"
}
start_ui open
open_port=$ui_port
start_ui gated --page-policy
port=$ui_port

# The answers as a client sees them.
head=$(curl -sS -m 8 -D - -o /dev/null "http://127.0.0.1:$port/")
expect_contains "$head" "Content-Security-Policy: default-src 'self' data: blob:" "the page policy on the answer"
expect_contains "$head" "connect-src 'self' data: blob: ws://127.0.0.1:$port ws://localhost:$port;" "connect-src"
expect_contains "$head" "X-DNS-Prefetch-Control: off"
expect_contains "$head" "Connection: close" "the server's keep-alive replaced"
expect_not_contains "$head" "keep-alive"
# Review 14c R1: cookies are per host, not per port: none crosses the relay, either way.
expect_not_contains "$head" "Set-Cookie" "a cookie the UI sets (the dashboard's and other launches' would be overwritten)"
expect_contains "$(curl -sS -m 8 -H 'Cookie: tokfence_dashboard=session-of-the-web-dashboard' "http://127.0.0.1:$port/echo-cookie")" \
  "cookie=" "the stub's echo"
expect_not_contains "$(curl -sS -m 8 -H 'Cookie: tokfence_dashboard=session-of-the-web-dashboard' "http://127.0.0.1:$port/echo-cookie")" \
  "session-of-the-web-dashboard" "the browser's cookies at the container's UI"
expect_not_contains "$(curl -sS -m 8 -H 'Cookie: tokfence_dashboard=session-of-the-web-dashboard' -H 'Connection: Upgrade' \
  -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
  "http://127.0.0.1:$port/echo-cookie")" "session-of-the-web-dashboard" "the browser's cookies in a WebSocket handshake at the UI"
expect_contains "$(curl -sS -m 8 -H 'Cookie: tokfence_dashboard=session-of-the-web-dashboard' "http://127.0.0.1:$open_port/echo-cookie")" \
  "session-of-the-web-dashboard" "unprotected set-up: the cookies reach the UI (so the check above can fail)"
sw=$(curl -sS -m 8 -D - -H 'Service-Worker: script' "http://127.0.0.1:$port/sw.js")
expect_contains "$sw" "self.registration.unregister()" "a service worker script is the relay's own, one that unregisters itself"
expect_not_contains "$sw" "C/sw" "the UI's service worker script"
wait_until "grep -q 'dashboard request: a service worker script: answered with one that unregisters itself' '$WORK/gated/relay.log'"
expect_not_contains "$head" "report-uri" "the page's own reporting policy dropped"
expect_not_contains "$(curl -sS -m 8 -D - -o /dev/null "http://127.0.0.1:$open_port/")" "Content-Security-Policy: default-src" \
  "the unprotected relay adds no policy (the set-up the browser part compares with)"

out=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile" PORTS="$open_port" \
  timeout 120 node "$SOURCE_DIR/tests/attacks/launch_ui_page_exfil.mjs" 2>"$WORK/node.err") ||
  { cat "$WORK/node.err" >&2; die "the browser run failed"; }
log "browser: $out"
collected() { grep -o '"[A-Z]* /[a-z]*?d=stolen' "$WORK/collector.log" | sed 's/.* \/\([a-z]*\)?.*/\1/' | sort -u | tr '\n' ' '; }

# Unprotected: the page's loads reach the collector (so the browser part works).
sleep 1
before=$(collected)
log "collector, unprotected relay: $before"
for way in fetch beacon img script style frame form worker sw report; do
  expect_contains " $before" " $way " "unprotected set-up: the page's $way reached the collector"
done
expect_eq "$(jq -r --arg p "$open_port" '.[$p].r.sw' <<<"$out")" registered "unprotected set-up: the service worker"

# Gated: nothing more reaches the collector; the browser reports the policy's refusals.
: >"$WORK/collector.log.mark"
lines_before=$(wc -l <"$WORK/collector.log")
out2=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile2" PORTS="$port" \
  timeout 120 node "$SOURCE_DIR/tests/attacks/launch_ui_page_exfil.mjs" 2>"$WORK/node2.err") ||
  { cat "$WORK/node2.err" >&2; die "the browser run failed"; }
log "browser, gated: $out2"
sleep 1
after=$(tail -n +"$((lines_before + 1))" "$WORK/collector.log")
expect_not_contains "$after" "stolen" "a request of the page behind --page-policy at the collector"
expect_eq "$(jq -r --arg p "$port" '.[$p].r != null' <<<"$out2")" true "the gated page ran its script"
violations=$(jq -r --arg p "$port" '.[$p].violations | join(" ")' <<<"$out2")
# The service worker the page registered is the relay's, which unregistered itself.
log "service worker behind --page-policy: $(jq -r --arg p "$port" '.[$p].r.sw' <<<"$out2")"
for directive in connect-src img-src script-src-elem frame-src form-action; do
  expect_contains "$violations" "$directive" "the browser reported the policy's refusal ($directive)"
done

# Review 14b R1, R2: answer heads a relay could read differently from the browser (bare LF line
# ends, a head ended by CRLF LF, interim lines the browser skips, a folded or misspelled reporting
# policy). Each page is refused (connection closed) or gets the policy: nothing reaches the collector.
framings="lf crlf-lf interim-space interim-zero interim-101 fold space-colon lf-field"
paths=$(for m in $framings; do printf '/?mode=%s ' "$m"; done)
lines_before=$(wc -l <"$WORK/collector.log")
out3=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile3" PORTS="$port" PATHS="${paths% }" WAIT_MS=2500 \
  timeout 240 node "$SOURCE_DIR/tests/attacks/launch_ui_page_exfil.mjs" 2>"$WORK/node3.err") ||
  { cat "$WORK/node3.err" >&2; die "the browser run failed"; }
log "browser, gated, odd framings: $out3"
sleep 1
after=$(tail -n +"$((lines_before + 1))" "$WORK/collector.log")
for m in $framings; do
  expect_not_contains "$after" "stolen-$m" "a request of the page framed '$m' at the collector"
done
expect_not_contains "$after" "stolen" "a request of an oddly framed page at the collector"
expect_contains "$(cat "$WORK/gated/relay.log")" "dashboard answer: " "the relay's refusal of an odd answer head"
log "held: behind --page-policy the page reached no other site (violations: $violations), in any framing"
