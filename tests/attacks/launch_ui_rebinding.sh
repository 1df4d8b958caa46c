#!/usr/bin/env bash
# Escape class: DNS rebinding against a launch's dashboard relay (review 12b F4). A web page at
# http://evil.test:<port> whose name then resolves to 127.0.0.1 reads that port same-origin from
# the user's own browser: the launch's OpenClaw gateway behind the relay (127.0.0.1:<port> ->
# ui.sock) takes it for a loopback client. Before: the relay forwarded any Host (the proxy answers
# such a page 403 tokfence_forbidden_host and the web dashboard 421; the relay looked at nothing),
# and the page in headless Chromium read the gateway's answer. Expected now: launch passes
# --check-host, the relay peeks at the first request head (at most 8 KiB within 5 s) and answers
# 421 unless Host is 127.0.0.1:<port> or localhost:<port>; the user's own URL works.
#
# Unprotected set-up first: a relay on the same ui.sock started without the check (as launch did)
# DOES hand the rebound page the gateway's answer. Checked with curl first, then in Chromium
# (puppeteer-core from scripts/setup --test; missing, the test fails: lib.sh need_browser).
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfur-$RUN_ID"
# A failed check must not leave the detached launch's host relay running.
EXTRA_CLEANUP="'$TOKFENCE_BIN' launch stop --name '$name' >/dev/null 2>&1; $EXTRA_CLEANUP"

launch_ui_stub "$name"

# --- unprotected: the relay the old way (no Host check) on the same ui.sock
exec {ui_fd}<"$(launch_ui_dir "$name")"
"$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unixat:$ui_fd/ui.sock@$cuid" --ready-file "$WORK/old.ready" \
  >"$WORK/old-relay.log" 2>&1 &
_pids_to_kill+=($!)
exec {ui_fd}<&-
wait_until "test -s '$WORK/old.ready'"
old_port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$WORK/old.ready")
get() { curl -sS -m 8 -w ' status=%{http_code}' "${@:2}" "http://127.0.0.1:$1/" 2>&1 || true; }
expect_contains "$(get "$old_port" -H "Host: evil.test:$old_port")" "hello-ui" "unprotected set-up: a foreign Host reaches the gateway"

# --- launch's dashboard relay, with curl: every foreign or odd Host is 421, never the gateway
for host in "evil.test:$port" evil.test "127.0.0.1.evil.test:$port" "localhost.:$port" "127.0.0.1:1" 127.0.0.1 localhost; do
  out=$(get "$port" -H "Host: $host")
  expect_not_contains "$out" "hello-ui" "Host $host"
  expect_contains "$out" "status=421" "Host $host is answered 421"
done
out=$(get "$port" -H "Host: evil.test:$port" -H "Host: 127.0.0.1:$port")
expect_contains "$out" "status=421" "two Host fields"
out=$(get "$port" -H "Host:" )
expect_contains "$out" "status=421" "no Host field"
# A WebSocket upgrade is a request head too.
out=$(get "$port" -H "Host: evil.test:$port" -H "Connection: Upgrade" -H "Upgrade: websocket" \
  -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
expect_contains "$out" "status=421" "websocket upgrade with a foreign Host"
# An oversized head and a head that never ends are refused, not waited on for ever.
out=$(get "$port" -H "X-Pad: $(head -c 9000 /dev/zero | tr '\0' a)")
expect_not_contains "$out" "hello-ui" "a head over 8 KiB"
start=$(date +%s)
out=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:" + sys.argv[1].encode() + b"\r\n")  # no blank line
try: print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
except OSError as e: print("error", e)
PY
)
elapsed=$(($(date +%s) - start))
expect_contains "$out" "408" "an unfinished head"
((elapsed <= 10)) || die "an unfinished head was held ${elapsed}s (limit 5 s)"
wait_until "grep -q 'refused: dashboard request: Host evil.test:$port' '$relay_log'"
# The user's own requests, and a request split across writes, still go through.
expect_contains "$(get "$port")" "hello-ui" "Host 127.0.0.1:port"
expect_contains "$(get "$port" -H "Host: LOCALHOST:$port")" "hello-ui" "Host localhost:port"
# The same head must not come from a page of another origin (review 13a R1; the browser side is
# tests/attacks/launch_ui_cross_site.sh): checked here on launch's own relay.
out=$(get "$port" -H "Origin: http://evil.test:$port")
expect_contains "$out" "status=403" "a foreign Origin"
expect_not_contains "$out" "hello-ui" "a foreign Origin"
expect_contains "$(get "$port" -H "Origin: http://127.0.0.1:$port")" "hello-ui" "the own Origin"
out=$(python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHo")
time.sleep(0.3)
s.sendall(b"st: 127.0.0.1:" + sys.argv[1].encode() + b"\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk: break
    data += chunk
print(data.decode(errors="replace"))
PY
)
expect_contains "$out" "hello-ui" "a head split across two writes"

# --- in a real browser
need_browser
out=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile" PORTS="$old_port $port" \
  timeout 120 node "$SOURCE_DIR/tests/attacks/launch_ui_rebinding.mjs" 2>"$WORK/node.err") ||
  { cat "$WORK/node.err" >&2; die "the browser run failed"; }
log "browser: $out"
expect_eq "$(jq -r --arg p "$old_port" '.[$p].rebound.fetch.body' <<<"$out")" "hello-ui" \
  "unprotected set-up: the rebound page reads the gateway"
expect_eq "$(jq -r --arg p "$port" '.[$p].rebound.navigation' <<<"$out")" 421 "the rebound page's load"
expect_eq "$(jq -r --arg p "$port" '.[$p].rebound.fetch.status' <<<"$out")" 421 "the rebound page's fetch"
expect_not_contains "$(jq -c --arg p "$port" '.[$p].rebound' <<<"$out")" "hello-ui" "the rebound page's view"
expect_eq "$(jq -r --arg p "$port" '.[$p].own.fetch.body' <<<"$out")" "hello-ui" "the user's own page"

tf_ok launch stop --name "$name"
expect_nothing_left "$name"
