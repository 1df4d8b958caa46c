#!/usr/bin/env bash
# Another local user connects to the daemon's loopback TCP port. The Unix socket keeps other
# users out by its file mode; the TCP listener has none, and before issue 15 it injected the
# owner's key for a process of any uid. Now the owner of the peer's socket (sock_diag, once per
# connection, at accept) must be the daemon's uid: anything else gets 403 tokfence_forbidden_peer
# before a byte is read, nothing reaches the upstream, and no request-log row is written (the
# daemon's log counts such refusals instead: proxy_other_user_flood).
# Needs root (to become uid 65534 with setpriv).
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root to run a client as another uid"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
OTHER=65534
as_other() { setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups "$@"; }
as_other true || skip "setpriv cannot switch to uid $OTHER here"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
url="$PROXY_URL/openai/v1/chat/completions"
upstream_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq length; }

log "the daemon's own user is served"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$url" -d "$body")
expect_eq "$code" 200 "same uid"
expect_eq "$(upstream_requests)" 1 "same-uid request upstream"
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null

rows() {
  tf_ok status --json
  sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests"
}
rows_before=$(rows)
log "uid $OTHER over TCP: refused with its uid named, nothing upstream, no row"
# Output through a pipe: the other user cannot write under $WORK.
out=$(as_other curl -sS -D - -w '\n%{http_code}' "$url" -d "$body" </dev/null)
code=$(tail -1 <<<"$out")
expect_eq "$code" 403 "other uid: $out"
expect_contains "$out" '"type":"tokfence_forbidden_peer"'
expect_contains "$out" "belongs to uid $OTHER, not to the daemon's user (uid 0)"
expect_eq "$(rows)" "$rows_before" "request-log rows after another user's request"
# Keep-alive: every request of the connection is refused, not only the first.
out=$(as_other curl -sS -o /dev/null -w '%{http_code} ' "$url" -d "$body" --next -sS -o /dev/null -w '%{http_code}' \
  "$PROXY_URL/__tokfence/health" </dev/null)
expect_eq "$out" "403 403" "second request on the connection, health included"
expect_eq "$(upstream_requests)" 0 "another user's request reached the upstream"

log "uid $OTHER on the Unix socket: kept out by its mode, as before"
if as_other curl -sS -o /dev/null --unix-socket "$PROXY_SOCKET" http://localhost/openai/v1/models </dev/null 2>/dev/null; then
  die "uid $OTHER connected to the Unix socket"
fi
expect_eq "$(upstream_requests)" 0 "Unix socket request of another user reached the upstream"
