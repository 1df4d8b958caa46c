#!/usr/bin/env bash
# DNS rebinding: a web page whose name an attacker points at 127.0.0.1 reaches the dashboard's
# port from the user's browser, with a Host header naming the attacker's domain. Even carrying
# a valid cookie (the browser would not send it to another name, but assume the worst) every
# such request gets 421 and nothing changes; Host 127.0.0.1/localhost with the port is served.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
start_dashboard_daemon
dash_login

for host in "attacker.example:$DASH_PORT" attacker.example "127.0.0.1.attacker.example:$DASH_PORT" \
  "localhost.:$DASH_PORT" "127.0.0.1:1"; do
  expect_eq "$(dash_code /api/overview -H "Host: $host" -H "Cookie: tokfence_dashboard=$COOKIE")" 421 "GET with Host $host"
  expect_eq "$(dash_post kill '{}' -H "Host: $host" -H "Origin: http://$host")" 421 "kill with Host $host"
done
expect_eq "$(dash_code /api/overview -H "Host: a" -H "Host: 127.0.0.1:$DASH_PORT" -H "Cookie: tokfence_dashboard=$COOKIE")" 421 "two Host headers"
expect_eq "$(killed)" false "kill switch after rebinding attempts"
expect_eq "$(dash_code /api/overview -H "Host: localhost:$DASH_PORT" -H "Cookie: tokfence_dashboard=$COOKIE")" 200 "localhost:port"
expect_eq "$(dash_post kill '{}' -H "Host: localhost:$DASH_PORT" -H "Origin: http://localhost:$DASH_PORT")" 200 "kill from localhost:port"
expect_eq "$(killed)" true "kill switch after the real kill"
