#!/usr/bin/env bash
# A tunnel to tokfence's own proxy port would be a second, unlabeled way to the model proxy (and
# chained CONNECT through it): refused as "own-port", whether named by address, as localhost, or
# through an [egress.resolve] name the user mapped there, and whatever the policy allows.
# (Chained CONNECT inside a tunnel is impossible by construction: after the 200 the bytes are opaque.)
source "$(dirname "$0")/egress_lib.bash"

DAEMON_PORT=$(free_port)
egress_setup "{\"allow\":[\"127.0.0.1:$DAEMON_PORT\",\"sneaky.example:$DAEMON_PORT\",\"localhost:$DAEMON_PORT\"]}" \
  "\"sneaky.example\" = \"127.0.0.1:$DAEMON_PORT\""
[[ $PROXY_PORT == "$DAEMON_PORT" ]] || die "the daemon is not on the port the test chose"

for target in "127.0.0.1:$DAEMON_PORT" "[::1]:$DAEMON_PORT" "localhost:$DAEMON_PORT" "sneaky.example:$DAEMON_PORT" \
  "0.0.0.0:$DAEMON_PORT"; do
  reply=$(raw_connect "$target" "GET /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  expect_contains "$reply" "HTTP/1.1 403" "CONNECT $target"
  expect_contains "$reply" "X-Tokfence-Egress: own-port" "CONNECT $target"
  expect_not_contains "$reply" "HTTP/1.1 200" "CONNECT $target"
done
out=$(curl -sS --max-time 10 --proxy "$AGENT_PROXY" -o /dev/null -w '%{http_code}' "http://sneaky.example:$DAEMON_PORT/openai/v1/models")
expect_eq "$out" 403 "absolute form to a name mapped to the daemon's port"
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq length)" 0 "a request reached the model upstream"
rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "own-port")] | length' <<<"$rows")" 6 "own-port rows"
