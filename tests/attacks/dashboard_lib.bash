# Shared set-up for the web dashboard's tests (sourced after integration/lib.sh): a daemon with
# the dashboard on a free port, a logged-in session, and requests shaped like a browser's.
#   start_dashboard_daemon       config + vault key + daemon; sets DASH_PORT, DASH
#   dash_login                   one-time URL -> cookie; sets COOKIE, CSRF
#   dash_code ARGS...            curl's status code for ARGS (path relative to $DASH)
#   dash_post ACTION BODY [curl args]   a POST with every check passing unless ARGS override
#   killed                       prints the kill switch as `tokfence status --json` reports it
# Client-side files (the cookie jar, headers) live in $CLIENT, which the secret scan skips.
CLIENT="$WORK/client"
mkdir -p "$CLIENT"

start_dashboard_daemon() {
  start_fake_upstream
  write_test_config '[dashboard]' 'enabled = true' 'port = 0' "$@"
  add_canary_key openai
  start_daemon
  DASH_PORT=$(jq .dashboard_port "$TOKFENCE_HOME/daemon.json")
  [[ $DASH_PORT =~ ^[1-9][0-9]*$ ]] || die "no dashboard_port in daemon.json"
  DASH="http://127.0.0.1:$DASH_PORT"
}

login_url() {
  tf_ok dashboard --print-url
  [[ $TF_OUT =~ ^http://127\.0\.0\.1:$DASH_PORT/login\?once=[A-Za-z0-9_-]{43}$ ]] || die "unexpected login URL: $TF_OUT"
  printf '%s' "$TF_OUT"
}

dash_login() {
  local url headers
  url=$(login_url)
  headers=$(curl -sS --max-time 10 -o /dev/null -D - "$url" | tr -d '\r')
  expect_contains "$headers" "HTTP/1.1 303" "login redirects"
  expect_contains "$headers" "Location: /"
  expect_contains "$headers" "; HttpOnly; SameSite=Strict; Path=/" "cookie attributes"
  COOKIE=$(sed -n 's/^Set-Cookie: tokfence_dashboard=\([^;]*\);.*/\1/p' <<<"$headers")
  [[ ${#COOKIE} -ge 40 ]] || die "no session cookie in: $headers"
  printf '%s' "$COOKIE" >"$CLIENT/cookie"
  CSRF=$(curl -sS --max-time 10 -H "Cookie: tokfence_dashboard=$COOKIE" -H 'Sec-Fetch-Site: same-origin' "$DASH/api/session" | jq -r .csrf)
  [[ ${#CSRF} -ge 40 && $CSRF != "$COOKIE" ]] || die "no CSRF token from /api/session"
  printf '%s' "$CSRF" >"$CLIENT/csrf"
}

dash_code() {
  local path=$1
  shift
  curl -sS --max-time 10 -o "$CLIENT/body" -w '%{http_code}' "$@" "$DASH$path"
}

# A POST as the dashboard's own page sends it. `-H 'Name: value'` arguments replace that header
# (`-H 'Name:'` leaves it out); other arguments go to curl.
dash_post() {
  local action=$1 body=$2 name value
  shift 2
  declare -A h=([Cookie]="tokfence_dashboard=$COOKIE" [Origin]="$DASH" [Sec-Fetch-Site]=same-origin
    [Content-Type]=application/json [X-Tokfence-CSRF]="$CSRF")
  local extra=() args=()
  while (($#)); do
    if [[ $1 == -H ]]; then
      name=${2%%:*}
      value=${2#*:}
      h[$name]=${value# }
      shift 2
    else
      extra+=("$1")
      shift
    fi
  done
  for name in "${!h[@]}"; do args+=(-H "$name: ${h[$name]}"); done
  dash_code "/api/$action" -X POST "${args[@]}" --data "$body" "${extra[@]}"
}

killed() {
  tf_ok status --json
  jq -r .controls.killed <<<"$TF_OUT"
}

# Fails if the session cookie, the CSRF token or a login nonce appears anywhere the daemon writes
# (its log, tokfence.db, the snapshot, ...): everything under TOKFENCE_HOME.
scan_for_dashboard_secrets() {
  local s
  for s in "$@"; do
    [[ -n $s ]] || continue
    if grep -rlaF -- "$s" "$TOKFENCE_HOME" 2>/dev/null; then die "a dashboard secret was written under TOKFENCE_HOME"; fi
  done
}
