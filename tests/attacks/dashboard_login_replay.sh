#!/usr/bin/env bash
# The one-time login URL: whoever sees it after use (browser history, a shoulder, a log) gets
# nothing. A used nonce, a made-up one, an empty one and a HEAD request (a link preview) never
# set the cookie; at most 4 nonces are outstanding at once (a fifth pushes the oldest out).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
start_dashboard_daemon

url=$(login_url)
expect_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -I "$url")" 405 "HEAD does not spend the nonce"
first=$(curl -sS --max-time 10 -o /dev/null -D - "$url" | tr -d '\r')
expect_contains "$first" "HTTP/1.1 303" "first use"
expect_contains "$first" "Set-Cookie: tokfence_dashboard="
second=$(curl -sS --max-time 10 -D - "$url" | tr -d '\r')
expect_contains "$second" "HTTP/1.1 403" "second use"
expect_not_contains "$second" "Set-Cookie" "second use sets no cookie"
expect_contains "$second" "already used or has expired" "second use explains"
expect_eq "$(dash_code '/login?once=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')" 403 "made-up nonce"
expect_eq "$(dash_code '/login?once=')" 403 "empty nonce"
expect_eq "$(dash_code '/login')" 403 "no nonce"
expect_eq "$(dash_code "/login?once=${url##*=}x")" 403 "nonce with a suffix"

log "at most 4 outstanding: the oldest goes"
urls=()
for i in 1 2 3 4 5; do urls+=("$(login_url)"); done
expect_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "${urls[0]}")" 403 "oldest of five"
for i in 1 2 3 4; do
  expect_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "${urls[$i]}")" 303 "nonce $i of five"
done
