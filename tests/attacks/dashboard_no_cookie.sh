#!/usr/bin/env bash
# Without the session cookie (or with a made-up one) the dashboard serves nothing but the login
# refusal: pages answer 401, every /api endpoint 401, and a POST to /api/kill leaves the kill
# switch off. The same requests with the cookie are served, so the test can fail.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
start_dashboard_daemon
dash_login

for path in / /requests /agents /vault /controls /api/session /api/overview /api/spend /api/requests \
  /api/agents /api/vault /api/events; do
  expect_eq "$(dash_code "$path")" 401 "$path without a cookie"
  expect_eq "$(dash_code "$path" -H 'Cookie: tokfence_dashboard=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')" 401 "$path with a made-up cookie"
  expect_eq "$(dash_code "$path" -H "Cookie: tokfence_dashboard=${COOKIE:0:42}")" 401 "$path with a truncated cookie"
done
expect_eq "$(dash_post kill '{}' -H 'Cookie: tokfence_dashboard=wrong')" 401 "kill with a wrong cookie"
expect_eq "$(dash_post kill '{}' -H 'Cookie: other=1')" 401 "kill without our cookie"
expect_eq "$(killed)" false "kill switch after refused kills"

log "with the cookie: served"
expect_eq "$(dash_code / -H "Cookie: a=b; tokfence_dashboard=$COOKIE")" 200 "page with the cookie"
expect_eq "$(dash_code /api/overview -H "Cookie: tokfence_dashboard=$COOKIE")" 200 "api with the cookie"
# A planted cookie of the same name (another port of 127.0.0.1 can set one) does not lock us out.
expect_eq "$(dash_code /api/overview -H "Cookie: tokfence_dashboard=planted; tokfence_dashboard=$COOKIE")" 200 "planted + real cookie"
expect_eq "$(dash_post kill '{}')" 200 "kill with every check passing"
expect_eq "$(killed)" true "kill switch after the real kill"
scan_for_dashboard_secrets "$COOKIE" "$CSRF"
