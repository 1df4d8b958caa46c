#!/usr/bin/env bash
# An allowed *name* that resolves to loopback (or any private, link-local or metadata address) is
# refused: tokfence resolves the name itself, checks every address, and connects only to the one
# it checked. Only the user naming an address (an IP rule, [egress.resolve]) reaches such a place.
# No name here is looked up on a network: `localhost` comes from /etc/hosts.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{}'
allow() {
  local reply
  reply=$(ctl "{\"op\":\"egress\",\"caller\":\"codex\",\"action\":\"allow\",\"rule\":\"$1\"}")
  [[ $(jq -r .ok <<<"$reply") == true ]] || die "egress allow $1: $reply"
}

log "a name allowed by the policy but resolving to 127.0.0.1 / ::1 is refused"
allow "localhost:$TLS_PORT"
through "https://localhost:$TLS_PORT/hello" -k
expect_eq "$CONNECT_CODE" 403 "CONNECT to an allowed name that resolves to loopback"
expect_eq "$(egress_header)" private-address "X-Tokfence-Egress"
reply=$(raw_connect "localhost:$TLS_PORT" "")
expect_contains "$reply" "resolves to"
expect_contains "$reply" "loopback"
allow "localhost:$PLAIN_PORT"
# http://localhost:<port>/ is the proxy's own name inside the fence (a model request); the same
# name with a trailing dot is a destination, normalised to the allowed "localhost".
through "http://localhost.:$PLAIN_PORT/hello"
expect_eq "$CODE" 403 "absolute-form request to a name resolving to loopback"
expect_eq "$(egress_header)" private-address "X-Tokfence-Egress (absolute form)"
through "http://localhost:$PLAIN_PORT/hello"
expect_eq "$(jq -r .error.type <<<"$OUT")" tokfence_unknown_provider "absolute form to the own name is a model request"
expect_eq "$(wc -l <"$WORK/TLS.requests")" 0 "the loopback destination was reached"
expect_eq "$(wc -l <"$WORK/PLAIN.requests")" 0 "the loopback destination was reached (plain)"

log "the metadata address and other special addresses need an explicit IP rule (none here)"
for target in 169.254.169.254:80 "[::ffff:169.254.169.254]:80" "[fd00::1]:443" 10.0.0.1:443; do
  reply=$(raw_connect "$target" "")
  expect_contains "$reply" "HTTP/1.1 403" "CONNECT $target"
done

log "naming the address is the user's explicit choice: an IP rule reaches loopback"
allow "127.0.0.1:$TLS_PORT"
through "https://127.0.0.1:$TLS_PORT/hello" -k
expect_eq "$CODE" 200 "explicit IP rule"

rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "private-address" and .decision == "denied")] | length' <<<"$rows")" 3 "private-address rows"
expect_eq "$(jq -r '[.[] | select(.rule == "private-address")][0].host' <<<"$rows")" localhost "row host"
