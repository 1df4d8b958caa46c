#!/usr/bin/env bash
# No dashboard secret is ever written down: after logins (good and replayed), refused and
# accepted actions, SSE and every API endpoint, the session cookie, the CSRF token and every
# login nonce are absent from the daemon's log, tokfence.db, the desktop snapshot and every other
# file under TOKFENCE_HOME (a logout included); the provider key (the canary), and its first 12
# characters, are absent from every API answer, the vault page showing only its fingerprint.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/dashboard_lib.bash"
start_dashboard_daemon
url1=$(login_url)
dash_login
url2=$(login_url)
curl -sS --max-time 10 -o /dev/null "$url1" || true  # a second login
curl -sS --max-time 10 -o /dev/null "$url1" || true  # and its replay (refused)
curl -sS --max-time 10 -o /dev/null -H "Host: evil.example" "$url2" || true  # refused before use
expect_eq "$(curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H 'authorization: Bearer x' \
  -H 'content-type: application/json' --data '{"model":"gpt-4o","messages":[]}' "$PROXY_URL/openai/v1/chat/completions")" 200 "a proxied request"
answers=""
for path in /api/session /api/overview '/api/spend?range=7d&by=model' /api/requests /api/agents /api/vault; do
  answers+=$(curl -sS --max-time 10 -H "Cookie: tokfence_dashboard=$COOKIE" "$DASH$path")
done
answers+=$(curl -sS --max-time 3 -N -H "Cookie: tokfence_dashboard=$COOKIE" "$DASH/api/events" || true)
expect_not_contains "$answers" "$CANARY" "the provider key in an API answer"
# The vault page's fingerprint is the key's last characters only: no prefix of it either.
expect_not_contains "$answers" "${CANARY:0:12}" "the start of the provider key in an API answer"
expect_contains "$answers" "\"fingerprint\":\"...${CANARY: -4}\"" "the vault page's fingerprint"
dash_post kill '{}' -H 'X-Tokfence-CSRF: wrong' >/dev/null
dash_post kill '{}' >/dev/null
dash_post unkill '{}' >/dev/null
dash_post logout '{}' >/dev/null
expect_eq "$(dash_code /api/overview -H "Cookie: tokfence_dashboard=$COOKIE")" 401 "the cookie after logout"
tf_ok widget render --json
stop_daemon
scan_for_dashboard_secrets "$COOKIE" "$CSRF" "${url1##*=}" "${url2##*=}"
