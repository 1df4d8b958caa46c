#!/usr/bin/env bash
# The web dashboard end to end with curl (docs/DASHBOARD.md): `dashboard --print-url` prints one
# line; the login sets the cookie; every page and endpoint answers with the strict CSP; the JSON
# endpoints report a request made through the proxy (overview, spend, requests, agents, vault);
# the live stream pushes it as it happens; actions go through the control ops (kill refuses the
# next proxied request, unkill, revoke/restore, budget, rate limit); at most 8 live streams, and
# /metrics answers while they are open; the cookie lasts 12 h (Max-Age, enforced by the daemon)
# and logout (POST with the session's CSRF token) ends the session on the daemon's side; a stop
# ends open streams, and a new daemon knows no old session; the dashboard off gives a clear error.
# The vault page shows each key's fingerprint and dates as `vault list` does, never the key.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/attacks/dashboard_lib.bash"
start_dashboard_daemon '[budget]' 'timezone = "UTC"'
tf_ok dashboard --print-url
expect_eq "$(wc -l <<<"$TF_OUT")" 1 "--print-url prints one line"
expect_eq "$TF_ERR" "" "--print-url prints nothing else"
dash_login
C=(-H "Cookie: tokfence_dashboard=$COOKIE")

send() {  # MODEL [curl args]: a request through the proxy; prints the status
  local model=$1
  shift
  curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -H 'authorization: Bearer x' \
    "$@" --data "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$PROXY_URL/openai/v1/chat/completions"
}

log "pages and headers"
csp="Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
for path in / /requests /agents /vault /controls /api/overview /assets/app.js /assets/style.css /nope; do
  h=$(curl -sS --max-time 10 -D - -o "$CLIENT/page" "${C[@]}" "$DASH$path" | tr -d '\r')
  for want in "$csp" "X-Frame-Options: DENY" "X-Content-Type-Options: nosniff" "Referrer-Policy: no-referrer" "Cache-Control: no-store"; do
    expect_contains "$h" "$want" "$path"
  done
done
page=$(curl -sS --max-time 10 "${C[@]}" "$DASH/requests")
expect_contains "$page" '<script src="/assets/app.js" defer></script>'
! grep -qiE '<script>|<script [^>]*>[^<]|style=|\son[a-z]+=' <<<"$page" || die "inline script or style in the page"
! grep -qE '\beval\(|new Function|innerHTML|insertAdjacentHTML|document\.write' "$SOURCE_DIR/proxy/dashboard/assets/app.js" ||
  die "app.js evaluates code or writes markup"
expect_contains "$(curl -sS --max-time 10 -D - -o /dev/null "$DASH/assets/app.js" | tr -d '\r')" "Content-Type: text/javascript"

log "a request through the proxy, seen live"
curl -sS -N --max-time 6 "${C[@]}" "$DASH/api/events" >"$CLIENT/events" 2>/dev/null &
sse=$!
sleep 0.5
expect_eq "$(send gpt-4o)" 200
expect_eq "$(send gpt-4o-mini -H 'x-fake-status: 500')" 500
wait "$sse" || true
grep -q '^retry: 3000' "$CLIENT/events" || die "no retry line in the stream: $(cat "$CLIENT/events")"
[[ $(grep -c '^event: request' "$CLIENT/events") -eq 2 ]] || die "expected 2 live rows: $(cat "$CLIENT/events")"
row=$(grep -m1 '^data: ' "$CLIENT/events" | cut -c7-)
expect_eq "$(jq -r .model <<<"$row")" gpt-4o "live row model"
expect_eq "$(jq -r .status <<<"$row")" 200 "live row status"

log "JSON endpoints"
o=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/overview")
expect_eq "$(jq .today_requests <<<"$o")" 2 "overview today_requests"
expect_eq "$(jq .kill_switch_active <<<"$o")" false
s=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/spend?range=24h&by=model")
expect_eq "$(jq .buckets <<<"$s")" 24 "24 hourly buckets"
expect_eq "$(jq '[.series[].total_requests] | add' <<<"$s")" 2 "spend counts both requests"
expect_eq "$(jq -r '[.series[].key] | sort | join(",")' <<<"$s")" "gpt-4o,gpt-4o-mini"
expect_eq "$(jq '.series[] | select(.key=="gpt-4o") | .cost_micro_usd | add > 0' <<<"$s")" true "gpt-4o has a cost"
expect_eq "$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/spend?range=30d&by=caller" | jq .buckets)" 30
expect_eq "$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/spend?range=7d&by=provider" | jq -r '.series[0].key')" openai
expect_eq "$(dash_code '/api/spend?range=1y' "${C[@]}")" 400 "unknown range"
expect_eq "$(dash_code '/api/spend?by=x%27%3B--' "${C[@]}")" 400 "unknown by"
r=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/requests?limit=1")
expect_eq "$(jq '.requests | length' <<<"$r")" 1 "limit=1"
expect_eq "$(jq -r '.requests[0].model' <<<"$r")" gpt-4o-mini "newest first"
a=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/agents")
expect_eq "$(jq '[.agents[].today.requests // 0] | add' <<<"$a")" 2 "agents count today's requests"
expect_eq "$(jq -r '.sessions | type' <<<"$a")" array "agents list ImmuneFence's sessions"
v=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/vault")
expect_eq "$(jq -r '.vault_providers | join(",")' <<<"$v")" openai
expect_eq "$(jq -r .vault_backend <<<"$v")" file
# Each key's fingerprint and dates, exactly as `tokfence vault list` shows them; never the key.
tf_ok vault list --json
expect_eq "$(jq -c '[.keys[] | {provider, fingerprint, added_at, rotated_at}]' <<<"$v")" \
  "$(jq -c '[.[] | {provider, fingerprint, added_at, rotated_at}]' <<<"$TF_OUT")" "vault page keys = 'vault list'"
[[ $(jq -r '.keys[0].fingerprint' <<<"$v") =~ ^\.\.\.[A-Za-z0-9]{4}$ ]] || die "fingerprint: $(jq -c .keys <<<"$v")"
expect_not_contains "$v" "$CANARY" "the key on the vault page"
expect_not_contains "$v" "${CANARY:0:16}" "the start of the key on the vault page"
log "a rotated key: new fingerprint and rotation date"
NEW_KEY="tfcanary-$(random_token 40)"
tf_in "$NEW_KEY" vault rotate openai -
expect_eq "$TF_RC" 0 "vault rotate: $TF_ERR"
v=$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/vault")
expect_eq "$(jq -r '.keys[0].fingerprint' <<<"$v")" "...${NEW_KEY: -4}" "fingerprint after the rotation"
expect_eq "$(jq '.keys[0].rotated_at >= .keys[0].added_at and .keys[0].rotated_at > 0' <<<"$v")" true "rotation date"
expect_not_contains "$v" "$NEW_KEY" "the rotated key on the vault page"
tf_in "$CANARY" vault rotate openai -
expect_eq "$TF_RC" 0 "vault rotate back: $TF_ERR"
expect_eq "$(dash_code /api/nope "${C[@]}")" 404

log "actions run the control ops"
expect_eq "$(dash_post kill '{}')" 200 "kill"
expect_eq "$(send gpt-4o)" 503 "a proxied request with the kill switch on (tokfence_killed)"
expect_eq "$(dash_post unkill '{}')" 200 "unkill"
expect_eq "$(send gpt-4o)" 200 "after unkill"
expect_eq "$(dash_post revoke '{"provider":"openai"}')" 200 "revoke"
tf_ok status --json
expect_eq "$(jq -r '.controls.revoked | join(",")' <<<"$TF_OUT")" openai "revoked by the dashboard"
expect_eq "$(send gpt-4o)" 403 "revoked provider"
expect_eq "$(dash_post restore '{"provider":"openai"}')" 200 "restore"
expect_eq "$(dash_post revoke '{"provider":"nosuch"}')" 409 "revoke an unknown provider"
expect_contains "$(cat "$CLIENT/body")" '"ok":false'
expect_eq "$(dash_post revoke '{}')" 400 "revoke without a provider"
expect_eq "$(dash_post budget '{"scope":"global","amount":"5","period":"daily"}')" 200 "budget"
tf_ok budget status --json
expect_contains "$TF_OUT" 'global' "budget set by the dashboard"
expect_eq "$(dash_post budget_clear '{"scope":"global"}')" 200 "budget clear"
expect_eq "$(dash_post ratelimit '{"provider":"openai","rpm":30}')" 200 "rate limit"
expect_eq "$(curl -sS --max-time 10 "${C[@]}" "$DASH/api/overview" | jq .rate_limits.openai)" 30
expect_eq "$(dash_post ratelimit_clear '{"provider":"openai"}')" 200 "rate limit clear"
expect_contains "$(cat "$TOKFENCE_HOME/daemon.log")" "dashboard: kill (from the web dashboard)"

log "at most 8 live streams; /metrics is not held up by them"
pids=()
for i in 1 2 3 4 5 6 7 8; do
  curl -sS -N --max-time 20 "${C[@]}" "$DASH/api/events" >/dev/null 2>&1 &
  pids+=($!)
done
sleep 1
expect_eq "$(dash_code /api/events "${C[@]}" --max-time 5)" 503 "a ninth stream"
t0=$(date +%s%N)
expect_eq "$(dash_code /metrics)" 200 "/metrics with 8 streams open"
log "GET /metrics with 8 streams open: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
sleep 0.5
code=$(dash_code /api/events "${C[@]}" --max-time 1 || true)
expect_eq "$code" 200 "a stream again once the others closed (then cut by curl's timeout)"

log "the session cookie: Max-Age, and logout ends it on the daemon's side"
headers=$(curl -sS --max-time 10 -o /dev/null -D - "$(login_url)" | tr -d '\r')
expect_contains "$headers" "; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200" "the cookie's lifetime (12 h)"
OTHER=$(sed -n 's/^Set-Cookie: tokfence_dashboard=\([^;]*\);.*/\1/p' <<<"$headers")
[[ ${#OTHER} -ge 40 && $OTHER != "$COOKIE" ]] || die "a second login gives its own session: $headers"
expect_eq "$(dash_post logout '{}' -H 'X-Tokfence-CSRF: wrong')" 403 "logout without the session's CSRF token"
expect_eq "$(dash_code /api/overview "${C[@]}")" 200 "still logged in after a refused logout"
# Another session's CSRF token does not log this one out.
OTHER_CSRF=$(curl -sS --max-time 10 -H "Cookie: tokfence_dashboard=$OTHER" "$DASH/api/session" | jq -r .csrf)
[[ ${#OTHER_CSRF} -ge 40 && $OTHER_CSRF != "$CSRF" ]] || die "each session has its own CSRF token"
expect_eq "$(dash_post logout '{}' -H "X-Tokfence-CSRF: $OTHER_CSRF")" 403 "logout with another session's CSRF token"
# A live stream of each session: logout ends this session's, not the other's.
curl -sS -N --max-time 30 "${C[@]}" "$DASH/api/events" >"$CLIENT/events-mine" 2>/dev/null &
mine=$!
curl -sS -N --max-time 30 -H "Cookie: tokfence_dashboard=$OTHER" "$DASH/api/events" >"$CLIENT/events-other" 2>/dev/null &
theirs=$!
wait_until "grep -q '^retry:' '$CLIENT/events-mine' && grep -q '^retry:' '$CLIENT/events-other'"
out=$(curl -sS --max-time 10 -D - -o /dev/null -X POST -H "Cookie: tokfence_dashboard=$COOKIE" -H "Origin: $DASH" \
  -H 'Sec-Fetch-Site: same-origin' -H 'Content-Type: application/json' -H "X-Tokfence-CSRF: $CSRF" --data '{}' \
  "$DASH/api/logout" | tr -d '\r')
expect_contains "$out" "HTTP/1.1 200" "logout"
expect_contains "$out" "Set-Cookie: tokfence_dashboard=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0" "logout clears the cookie"
wait_until "! kill -0 $mine" 5  # the logged-out session's live stream ends within moments
kill -0 "$theirs" 2>/dev/null || die "the other session's live stream ended with this one's logout"
kill "$theirs" 2>/dev/null || true
wait "$mine" "$theirs" 2>/dev/null || true
expect_eq "$(dash_code /api/overview "${C[@]}")" 401 "the logged-out cookie, sent anyway"
expect_eq "$(dash_code /vault "${C[@]}")" 401 "a page with the logged-out cookie"
expect_eq "$(dash_post kill '{}')" 401 "an action with the logged-out cookie"
expect_eq "$(killed)" false "the kill switch after the refused action"
expect_eq "$(dash_code /api/overview -H "Cookie: tokfence_dashboard=$OTHER")" 200 "the other session lives on"
expect_contains "$(cat "$TOKFENCE_HOME/daemon.log")" "dashboard: logged out (from the web dashboard)"
dash_login
C=(-H "Cookie: tokfence_dashboard=$COOKIE")

log "stopping the daemon ends an open stream"
curl -sS -N --max-time 60 "${C[@]}" "$DASH/api/events" >/dev/null 2>&1 &
held=$!
sleep 0.5
t0=$(date +%s)
stop_daemon
wait "$held" || true
(($(date +%s) - t0 < 15)) || die "the stream outlived the daemon stop by $(($(date +%s) - t0)) s"
[[ ! -f $TOKFENCE_HOME/daemon.json ]] || die "the daemon did not stop with a stream open"

log "a session of a daemon that stopped is not one of the next"
write_test_config '[dashboard]' 'enabled = true' 'port = 0'
start_daemon
DASH_PORT=$(jq .dashboard_port "$TOKFENCE_HOME/daemon.json")
DASH="http://127.0.0.1:$DASH_PORT"
expect_eq "$(dash_code /api/overview "${C[@]}")" 401 "the old daemon's cookie"
stop_daemon

log "the dashboard off: a clear error"
write_test_config
start_daemon
tf dashboard --print-url
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "dashboard: off: set [dashboard] enabled = true"
expect_eq "$TF_OUT" "" "nothing on stdout"
