#!/usr/bin/env bash
# Another local user holding the owner's session cookie, CSRF token and a fresh login URL (say
# they read them off a screen): the dashboard refuses every connection whose socket is not the
# daemon's uid before reading a byte, so pages, the API, the login and actions are all 403 and the
# kill switch stays off. Needs root (to become uid 65534 with setpriv).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
[[ $(id -u) -eq 0 ]] || skip "needs root to run a client as another uid"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
OTHER=65534
as_other() { setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups "$@"; }
as_other true || skip "setpriv cannot switch to uid $OTHER here"
start_dashboard_daemon
dash_login
url=$(login_url)

other_code() {  # curl as uid 65534; output through a pipe (it cannot write under $WORK)
  as_other curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$@" </dev/null
}
expect_eq "$(other_code "$url")" 403 "login URL as another uid"
expect_eq "$(other_code -H "Cookie: tokfence_dashboard=$COOKIE" "$DASH/")" 403 "page as another uid"
expect_eq "$(other_code -H "Cookie: tokfence_dashboard=$COOKIE" "$DASH/api/overview")" 403 "api as another uid"
expect_eq "$(other_code -X POST -H "Cookie: tokfence_dashboard=$COOKIE" -H "Origin: $DASH" -H 'Sec-Fetch-Site: same-origin' \
  -H 'Content-Type: application/json' -H "X-Tokfence-CSRF: $CSRF" --data '{}' "$DASH/api/kill")" 403 "kill as another uid"
expect_eq "$(killed)" false "kill switch after another uid's kill"
log "the login URL the other user tried is still good for the owner (refused before it was read)"
expect_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$url")" 303 "owner's login"
expect_eq "$(dash_post kill '{}')" 200 "the owner's kill"
expect_eq "$(killed)" true "kill switch after the owner's kill"
