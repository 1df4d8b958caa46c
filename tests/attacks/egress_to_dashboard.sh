#!/usr/bin/env bash
# The dashboard serves only the daemon's own user: the owner of the peer's socket must be the
# daemon's uid. A tunnel the daemon's forward proxy opens is such a socket. A fenced agent whose
# policy allows 127.0.0.1:<dashboard port> (a broad loopback rule meant for a dev server, say)
# tunnelled there and read /metrics (every caller's spend, models, budgets; no cookie needed).
# Now every port the daemon listens on is refused as "own-port" whatever the policy, the
# dashboard's as well as the proxy's: by address, as localhost, through an [egress.resolve] name,
# and in absolute form. Fails on the previous binary (the metrics come back through the tunnel).
source "$(dirname "$0")/egress_lib.bash"

DASH_PORT=$(free_port)
egress_setup "{\"allow\":[\"127.0.0.1:$DASH_PORT\",\"localhost:$DASH_PORT\",\"dash.example:$DASH_PORT\"]}" \
  "\"dash.example\" = \"127.0.0.1:$DASH_PORT\"" \
  "[dashboard]" "enabled = true" "port = $DASH_PORT"
expect_eq "$(jq -r .dashboard_port "$TOKFENCE_HOME/daemon.json")" "$DASH_PORT" "the dashboard's port"
# Control: the dashboard answers the daemon's user directly.
metrics=$(curl -fsS --max-time 10 "http://127.0.0.1:$DASH_PORT/metrics")
expect_contains "$metrics" "tokfence_" "/metrics asked directly"

for target in "127.0.0.1:$DASH_PORT" "localhost:$DASH_PORT" "dash.example:$DASH_PORT" "[::1]:$DASH_PORT"; do
  reply=$(raw_connect "$target" "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:$DASH_PORT\r\n\r\n")
  log "CONNECT $target: $(head -1 <<<"$reply" | tr -d '\r')"
  expect_not_contains "$reply" "HTTP/1.1 200" "CONNECT $target"
  expect_not_contains "$reply" "tokfence_requests" "CONNECT $target: the metrics came back"
  expect_contains "$reply" "X-Tokfence-Egress: own-port" "CONNECT $target"
done
out=$(curl -sS --max-time 10 --proxy "$AGENT_PROXY" -D "$WORK/out/abs.h" "http://dash.example:$DASH_PORT/metrics" || true)
expect_not_contains "$out" "tokfence_requests" "absolute form to the dashboard: the metrics came back"
expect_contains "$(cat "$WORK/out/abs.h")" "X-Tokfence-Egress: own-port" "absolute form to the dashboard"
rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "own-port")] | length' <<<"$rows")" 5 "own-port rows"
stop_daemon
log "ok"
