#!/usr/bin/env bash
# Escape class: a web page on another site drives a launch's container UI through the dashboard
# relay (review 13a R1). launch starts tokfence-relay on 127.0.0.1:<port> -> the container's
# ui.sock with --own-uid-only --check-host. The Host check stops DNS rebinding only: a page on ANY
# site opens ws://127.0.0.1:<port>/, the browser sends Host 127.0.0.1:<port> (right by
# construction) with Origin http://evil.test:..., and a WebSocket has no same-origin read barrier,
# so the page reads what the UI pushes and sends it commands; a no-cors POST reaches the UI too
# (blind CSRF). Before: the relay passed both. Expected now: in the same peeked head the relay
# answers 403 and closes when Origin is not http://127.0.0.1:<port> / http://localhost:<port>, or
# Sec-Fetch-Site is cross-site or same-site (core/page_origin.hpp); the user's own page, a typed
# URL and curl still get through.
#
# The relay runs as launch starts it (launcher/openclaw/launch.cpp: the same flags, unixat: with
# the socket owner's uid), in front of a WebSocket UI stub on a Unix socket (launch_ui_ws_stub.py,
# which logs every request head and command it gets); no container is needed for what is tested
# here (launch_ui_rebinding checks that launch passes --check-host). Unprotected set-up first: the
# same stub behind a relay without --check-host IS driven by the cross-site page in Chromium.
source "$(dirname "$0")/../integration/lib.sh"

source "$SOURCE_DIR/tests/attacks/ui_relay_lib.bash"
# start_ui NAME [RELAY FLAGS...]: the WebSocket UI stub (its log: $WORK/NAME/ui.log) behind a relay.
start_ui() {
  local name=$1
  shift
  start_ui_relay "$name" "$SOURCE_DIR/tests/attacks/launch_ui_ws_stub.py" "$WORK/$name/ui.log" -- "$@"
}
start_ui open
open_port=$ui_port
start_ui gated --own-uid-only --check-host
port=$ui_port
ui_log=$WORK/gated/ui.log
touch "$ui_log"

# curl to the gated relay: prints the body and the status.
get() { curl -sS -m 8 -w ' status=%{http_code}' "$@" 2>&1 || true; }
url="http://127.0.0.1:$port"

# --- the user's own requests: no Origin (curl), a typed URL, the UI's own page
expect_contains "$(get "$url/curl")" "hello-ui status=200" "curl, no Origin"
expect_contains "$(get -H 'Sec-Fetch-Site: none' "$url/typed")" "hello-ui status=200" "a typed URL"
expect_contains "$(get -H "Origin: http://127.0.0.1:$port" -H 'Sec-Fetch-Site: same-origin' -d x "$url/own-origin")" \
  "hello-ui status=200" "the own Origin"
expect_contains "$(get -H "Host: localhost:$port" -H "Origin: http://LOCALHOST:$port" -d x "$url/own-localhost")" \
  "hello-ui status=200" "the own Origin as localhost"

# --- what only a page of another origin sends: 403, and the UI never sees it
refused() {
  local what=$1 out
  shift
  out=$(get "$@" "$url/refused")
  expect_contains "$out" "status=403" "$what"
  expect_not_contains "$out" "hello-ui" "$what"
}
refused "Origin of another site" -H "Origin: http://evil.test:$port"
refused "Origin of another port" -H "Origin: http://127.0.0.1:$((port == 65535 ? 1 : port + 1))"
# Review 14a F1: localhost is another origin than 127.0.0.1 (a browser tries localhost at ::1 first,
# where another user can listen on the same port): that page's WebSocket to 127.0.0.1 is refused.
refused "Origin localhost on a request to 127.0.0.1" -H "Origin: http://localhost:$port" -H "Connection: Upgrade" \
  -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
refused "Origin 127.0.0.1 on a request to localhost" -H "Host: localhost:$port" -H "Origin: http://127.0.0.1:$port"
refused "Origin https" -H "Origin: https://127.0.0.1:$port"
refused "Origin null" -H "Origin: null"
refused "two Origin fields" -H "Origin: http://127.0.0.1:$port" -H "Origin: http://evil.test:$port"
refused "Sec-Fetch-Site cross-site" -H "Sec-Fetch-Site: cross-site"
refused "Sec-Fetch-Site same-site" -H "Sec-Fetch-Site: same-site"
refused "a cross-site POST" -H "Origin: http://evil.test:$port" -H 'Sec-Fetch-Site: cross-site' -d 'x'
refused "a cross-site WebSocket handshake" -H "Origin: http://evil.test:$port" -H "Connection: Upgrade" \
  -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
expect_not_contains "$(cat "$ui_log")" "/refused" "the UI saw a refused request"
wait_until "grep -q 'refused: dashboard request: sent by a web page of another origin' '$WORK/gated/relay.log'"
# The Host check still comes first: a rebinding page's head is 421 whatever its Origin.
expect_contains "$(get -H "Host: evil.test:$port" -H "Origin: http://evil.test:$port" "$url/")" "status=421" "rebinding"

# --- a second request on a connection whose first was the user's own (review 13d R1: Chromium
# reused the connection of a 403 page's same-origin favicon request for a page's cross-site POST).
# Only the first head of a connection is checked, so the relay sends it with Connection: close:
# the UI ends the connection after its answer and the second request never reaches it.
second=$(python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(f"GET /first-own HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n".encode())
data = b""
try:
    while b"hello-ui" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.sendall(f"POST /second-cross HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.test:{port}\r\n"
              "Sec-Fetch-Site: cross-site\r\nContent-Length: 1\r\n\r\nx".encode())
    s.settimeout(2)
    while s.recv(65536):
        pass
except OSError:
    pass
print("first answered" if b"hello-ui" in data else "first unanswered")
PY
)
expect_eq "$second" "first answered" "the first, own request"
sleep 0.5
expect_contains "$(cat "$ui_log")" "/first-own" "the first request at the UI"
expect_not_contains "$(cat "$ui_log")" "/second-cross" "a second request on the same connection at the UI"

# --- in a real browser
need_browser
# The attacker's site: an ordinary page on another port of 127.0.0.1 (as evil.test, another site;
# as 127.0.0.1, the same site).
mkdir -p "$WORK/site"
echo '<html><body>cat pictures</body></html>' >"$WORK/site/index.html"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/site" >"$WORK/site.log" 2>&1 &
_pids_to_kill+=($!)
wait_until "grep -q 'port [0-9]' '$WORK/site.log'"
site=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$WORK/site.log" | head -1)
out=$(CHROMIUM=$CHROMIUM PUPPETEER=$PUPPETEER PROFILE="$WORK/profile" SITE=$site PORTS="$open_port $port" \
  timeout 180 node "$SOURCE_DIR/tests/attacks/launch_ui_cross_site.mjs" 2>"$WORK/node.err") ||
  { cat "$WORK/node.err" >&2; die "the browser run failed"; }
log "browser: $out"
log "UI behind the gated relay saw: $(tr '\n' ';' <"$ui_log")"
view() { jq -c --arg p "$1" --arg t "$2" '.[$p][$t]' <<<"$out"; }

# Unprotected: the cross-site page reads the UI and its command runs (so the browser part works).
expect_contains "$(view "$open_port" cross)" "ui-state:" "unprotected set-up: the cross-site page reads the UI"
expect_contains "$(cat "$WORK/open/ui.log")" "COMMAND cross command" "unprotected set-up: the page's command reaches the UI"
expect_contains "$(cat "$WORK/open/ui.log")" "REQUEST POST /cross-post" "unprotected set-up: the cross-site POST reaches the UI"

# Gated: neither page of another origin gets anything through, nor anything back.
for tag in cross samesite; do
  expect_not_contains "$(view "$port" "$tag")" "ui-state:" "the $tag page's WebSocket"
  expect_not_contains "$(cat "$ui_log")" "/$tag-" "the UI saw a request of the $tag page"
  expect_not_contains "$(cat "$ui_log")" "$tag command" "the UI got a command of the $tag page"
done
# The UI's own page still works, WebSocket and POST.
expect_contains "$(view "$port" own)" "ui-state:" "the own page's WebSocket"
expect_contains "$(view "$port" own)" "ran: own command" "the own page's command"
expect_contains "$(cat "$ui_log")" "REQUEST POST /own-post origin=http://127.0.0.1:$port" "the own page's POST"
log "held: the gated relay refused the cross-site and same-site pages; the own page works"
