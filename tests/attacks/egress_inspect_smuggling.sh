#!/usr/bin/env bash
# Requests that mean one thing to tokfence's checks and another to the host (docs/EGRESS.md,
# "Inspected hosts"), from a hostile agent holding tokfence-secret:bot (bound to api.telegram.org):
#  1. two Host fields, the second naming another virtual host at the same address;
#  2. "Connection: content-length", which would have the framing field dropped as hop-by-hop and
#     the body read by the host as a second request;
#  3. path rules (allowed.example: deny_paths ["/admin"]) around matrix parameters, case,
#     fragments, encodings, trailing dots and "..;";
#  4. the bound host on another port the policy allows (api.telegram.org:8443);
#  5. method/path override headers where methods are ruled.
# Control: the same requests without the trick pass.
source "$(dirname "$0")/egress_lib.bash"
egress_setup '{"allow":["api.telegram.org","api.telegram.org:8443","allowed.example"],"secrets":["bot"]}' \
  '[egress.domains."allowed.example"]' 'methods = ["GET", "POST"]' 'deny_paths = ["/admin"]' \
  '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret bot api.telegram.org
P="tokfence-secret:bot"
HEADS="$WORK/TLS.requests.heads"

log "control: the bound host gets the secret; allowed.example serves /hello"
as_agent api.telegram.org:443 "GET /hello HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\n\r\n"
[[ $STATUS == "HTTP/1.1 200"* ]] || die "control request: $STATUS"
grep -q "^Authorization: Bot $BOUND" "$HEADS" || die "the bound host did not get the secret"
as_agent allowed.example:443 'GET /hello HTTP/1.1\r\nHost: allowed.example\r\n\r\n'
[[ $STATUS == "HTTP/1.1 200"* ]] || die "GET /hello on allowed.example: $STATUS"
: >"$HEADS"

log "1. two Host fields"
as_agent api.telegram.org:443 "GET /hello HTTP/1.1\r\nHost: api.telegram.org\r\nHost: other.example\r\nAuthorization: Bot $P\r\n\r\n"
expect_eq "$EGRESS" duplicate-host "two Host fields: $STATUS"
[[ -s $HEADS ]] && die "the host received the request: $(cat "$HEADS")"

log "2. Connection: content-length"
smuggled='DELETE /admin HTTP/1.1\r\nHost: allowed.example\r\n\r\n'
as_agent allowed.example:443 "POST /raw HTTP/1.1\r\nHost: allowed.example\r\nConnection: content-length\r\nContent-Length: $(printf '%b' "$smuggled" | wc -c)\r\n\r\n$smuggled"
expect_eq "$EGRESS" bad-connection-field "Connection naming Content-Length: $STATUS"
[[ -s $HEADS ]] && die "the host received the request: $(cat "$HEADS")"

log "3. path tricks around deny_paths /admin"
for path in /admin /admin/x '/admin;x=1' /ADMIN '/admin%3b' '/admin%20' /admin. '/x/..;/admin' '/%61dmin'; do
  as_agent allowed.example:443 "GET $path HTTP/1.1\r\nHost: allowed.example\r\n\r\n"
  [[ $STATUS == "HTTP/1.1 403"* ]] || die "GET $path reached the host: $STATUS"
  [[ $EGRESS == deny_paths:/admin || $EGRESS == ambiguous-path ]] || die "GET $path: refused by '$EGRESS'"
done
[[ -s $HEADS ]] && die "the host received a request for a denied path: $(cat "$HEADS")"

log "4. the bound host on another port"
as_agent api.telegram.org:8443 "GET /hello HTTP/1.1\r\nHost: api.telegram.org:8443\r\nAuthorization: Bot $P\r\n\r\n"
expect_eq "$EGRESS" secret-not-bound "the secret on port 8443: $STATUS"

log "5. override headers where methods are ruled"
as_agent allowed.example:443 'GET /hello HTTP/1.1\r\nHost: allowed.example\r\nX-HTTP-Method-Override: DELETE\r\n\r\n'
expect_eq "$EGRESS" override-header "X-HTTP-Method-Override: $STATUS"
as_agent allowed.example:443 'GET /hello HTTP/1.1\r\nHost: allowed.example\r\nX-Original-URL: /admin\r\n\r\n'
expect_eq "$EGRESS" override-header "X-Original-URL: $STATUS"
[[ -s $HEADS ]] && die "the host received an override request: $(cat "$HEADS")"

hits=$(grep -rlaF -- "$BOUND" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/TLS\.requests(\.heads)?$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
