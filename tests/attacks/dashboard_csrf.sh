#!/usr/bin/env bash
# Cross-site request forgery against the dashboard's actions. The browser sends the SameSite
# cookie along with requests from any page on 127.0.0.1 (another port is the same "site"), so a
# hostile page there can POST with the cookie. Every variant a page can produce is refused and
# the kill switch stays off: a foreign Origin, no Origin, Sec-Fetch-Site same-site/cross-site, no
# or a wrong X-Tokfence-CSRF header, a form's text/plain or urlencoded body, a body too large.
# The same POST with every check passing switches it, so the test can fail.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
start_dashboard_daemon
dash_login

refused() {  # DESCRIPTION EXPECTED-CODE CURL-ARGS...: a kill that must be refused
  local what=$1 want=$2
  shift 2
  expect_eq "$(dash_post kill '{}' "$@")" "$want" "$what"
  expect_eq "$(killed)" false "kill switch after: $what"
}
refused "foreign Origin (another loopback port)" 403 -H "Origin: http://127.0.0.1:$((DASH_PORT == 65535 ? 1 : DASH_PORT + 1))"
refused "foreign Origin (a web site)" 403 -H 'Origin: https://evil.example'
refused "Origin null (sandboxed frame, file:)" 403 -H 'Origin: null'
refused "no Origin" 403 -H 'Origin:'
refused "Sec-Fetch-Site same-site" 403 -H 'Sec-Fetch-Site: same-site'
refused "Sec-Fetch-Site cross-site" 403 -H 'Sec-Fetch-Site: cross-site'
refused "no CSRF header" 403 -H 'X-Tokfence-CSRF:'
refused "wrong CSRF header" 403 -H "X-Tokfence-CSRF: ${CSRF%?}x"
refused "the cookie as CSRF token" 403 -H "X-Tokfence-CSRF: $COOKIE"
refused "text/plain (a form)" 415 -H 'Content-Type: text/plain'
refused "urlencoded (a form)" 415 -H 'Content-Type: application/x-www-form-urlencoded'
refused "no Content-Type" 415 -H 'Content-Type:'
expect_eq "$(dash_post kill "{\"pad\":\"$(head -c 5000 /dev/zero | tr '\0' a)\"}")" 413 "a body over 4 KiB"
expect_eq "$(killed)" false "kill switch after a body over 4 KiB"
log "a header given twice (the first one right) is refused"
expect_eq "$(dash_post kill '{}' --header "Origin: http://evil.example")" 400 "two Origin headers"
expect_eq "$(dash_post kill '{}' --header "X-Tokfence-CSRF: x")" 400 "two CSRF headers"
expect_eq "$(killed)" false "kill switch after duplicated headers"
refused "chunked body" 411 -H 'Transfer-Encoding: chunked'
# What a browser form would send: no custom header, text/plain, foreign Origin.
expect_eq "$(dash_code /api/kill -X POST -H "Cookie: tokfence_dashboard=$COOKIE" -H 'Origin: http://127.0.0.1:8000' \
  -H 'Sec-Fetch-Site: same-site' -H 'Content-Type: text/plain' --data '{}')" 403 "form POST"
# A CORS preflight is never granted, so a page's fetch with the CSRF header never gets sent.
pre=$(curl -sS --max-time 10 -D - -o /dev/null -X OPTIONS -H "Cookie: tokfence_dashboard=$COOKIE" \
  -H 'Origin: http://127.0.0.1:8000' -H 'Access-Control-Request-Method: POST' "$DASH/api/kill" | tr -d '\r')
expect_not_contains "$pre" "Access-Control-Allow" "preflight"
# The body cannot name another op.
expect_eq "$(dash_post unkill '{"op":"kill"}')" 200 "an op field in the body is ignored"
expect_eq "$(killed)" false "kill switch after unkill with op:kill in its body"
expect_eq "$(dash_post shutdown '{}')" 404 "a control op that is not an action"
tf_ok status --json

log "every check passing: the kill switch goes on"
expect_eq "$(dash_post kill '{}')" 200 "the real kill"
expect_eq "$(killed)" true "kill switch after the real kill"
expect_contains "$(cat "$TOKFENCE_HOME/daemon.log")" "dashboard: refused an action" "refusal logged"
scan_for_dashboard_secrets "$COOKIE" "$CSRF"
