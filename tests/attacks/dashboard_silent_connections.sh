#!/usr/bin/env bash
# Attack: a web page (or any program of the user's) opens many connections to the dashboard
# listener and sends nothing, as a page's <link rel=preconnect> does. The listener read one
# connection at a time, each for up to 2 s: 30 silent connections held /metrics and the web
# dashboard for a minute. Expected: a silent connection holds up no other; /metrics answers at
# once while they wait, and they are closed after their 2 s.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"

start_dashboard_daemon
python3 - "$DASH_PORT" >"$WORK/out/silent.log" 2>&1 <<'PY' &
import socket, sys, time
held = [socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) for _ in range(30)]
print("open", len(held), flush=True)
time.sleep(20)
PY
silent=$!
_pids_to_kill+=("$silent")
wait_until "grep -q '^open 30' '$WORK/out/silent.log'" 10
# Bounded by what the old listener needed (30 x 2 s), not by a speed: 5 s is generous here.
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$DASH/metrics" || true)
expect_eq "$code" 200 "/metrics while 30 silent connections wait"
expect_eq "$(curl -sS --max-time 5 -o /dev/null -w "%{http_code}" "$DASH/" || true)" 401 "the web dashboard (no cookie: 401, but at once)"
kill "$silent" 2>/dev/null || true
scan_for_canary || die "canary found in an artifact"
log "ok: silent connections do not stall the dashboard"
