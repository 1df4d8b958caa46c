#!/usr/bin/env bash
# Attack: a bound secret sent as data on the agent's own account. The agent holds only
# tokfence-secret:gh, bound to a host that reads its credential from a header (as api.github.com
# and GitLab do). It sends one placeholder, in the path, beside a token of its own:
#   POST /repos/attacker/loot/contents/tokfence-secret:gh      Authorization: token <its own>
# One placeholder in an allowed position: the host received the real secret as the name of a file
# created in the attacker's repository (review 12a E1). The first fix spotted the agent's own
# credential by field name, and a name it did not list (GitLab's PRIVATE-TOKEN,
# X-Shopify-Access-Token, Cloudflare's X-Auth-Key) or a form body's access_token= (RFC 6750 2.2)
# let the secret through again (review 13a P1). Expected: the position is part of the binding. A
# secret bound with `vault add NAME --host H` goes in a credential field only; a placeholder for
# it in the path is refused (403 placeholder-position) whatever else the request carries, and
# nothing reaches the host. A secret bound with `--in path` (a Telegram bot token, /bot<token>/)
# may stand in the path, but not beside a credential of the agent's own. Inside Basic credentials
# the placeholder is the whole password: as the user name beside a password of the agent's own it
# is refused (review 13a O2); `git:tokfence-secret:gh` still works.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"],"secrets":["gh","tg"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret gh allowed.example
P="tokfence-secret:gh"
HEADS="$WORK/TLS.requests.heads"
OWN="attacker-own-token-$(random_token 12)"

# refused_as_data WHAT REQUEST: refused as placeholder-position.
refused_as_data() {
  log "$1"
  as_agent allowed.example:443 "$2"
  expect_eq "$STATUS" "HTTP/1.1 403 Forbidden" "the agent's answer ($1)"
  expect_eq "$EGRESS" placeholder-position "$1"
}
for own in "Authorization: token $OWN" "Cookie: user_session=$OWN" "X-Api-Key: $OWN" \
  "PRIVATE-TOKEN: $OWN" "X-Shopify-Access-Token: $OWN" "X-Auth-Key: $OWN"; do
  refused_as_data "placeholder in the path beside '${own%%:*}' of the agent's own" \
    "POST /repos/attacker/loot/contents/$P HTTP/1.1\r\nHost: allowed.example\r\n$own\r\nContent-Length: 2\r\n\r\n{}"
done
refused_as_data "placeholder in the path beside an access_token parameter" \
  "POST /repos/attacker/loot/contents/$P?access_token=$OWN HTTP/1.1\r\nHost: allowed.example\r\nContent-Length: 2\r\n\r\n{}"
body="access_token=$OWN&content=x"
refused_as_data "placeholder in the path beside a form body's access_token" \
  "POST /api/v4/projects/attacker%2Floot/repository/files/$P HTTP/1.1\r\nHost: allowed.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${#body}\r\n\r\n$body"
refused_as_data "placeholder alone in the path of a secret bound for credential fields" \
  "GET /files/$P HTTP/1.1\r\nHost: allowed.example\r\n\r\n"
expect_contains "$REPLY" "--in path" "the refusal names the fix"
refused_as_data "placeholder as the Basic user name beside a password of the agent's own" \
  "GET /hello HTTP/1.1\r\nHost: allowed.example\r\nAuthorization: Basic $(printf '%s:%s' "$P" "$OWN" | base64 -w0)\r\n\r\n"
sleep 0.3
[[ ! -s $HEADS ]] || ! grep -q "$BOUND" "$HEADS" || die "the bound secret reached the host as data: $(grep -c "$BOUND" "$HEADS") time(s)"

log "the placeholder as the credential itself: a field, the password of Basic credentials"
as_agent allowed.example:443 "GET /hello HTTP/1.1\r\nHost: allowed.example\r\nAuthorization: token $P\r\n\r\n"
expect_eq "$STATUS" "HTTP/1.1 200 OK" "the credential use"
wait_until "grep -q 'Authorization: token $BOUND' '$HEADS'" 10
as_agent allowed.example:443 "GET /hello HTTP/1.1\r\nHost: allowed.example\r\nAuthorization: Basic $(printf 'git:%s' "$P" | base64 -w0)\r\n\r\n"
expect_eq "$STATUS" "HTTP/1.1 200 OK" "git's Basic credentials"
wait_until "grep -q 'Authorization: Basic $(printf 'git:%s' "$BOUND" | base64 -w0)' '$HEADS'" 10

log "a secret bound for the path (--in path) goes there, but not beside a credential of the agent's own"
TG_BOUND="tg$(random_token 30)"
tf_in "$TG_BOUND" vault add tg - --host allowed.example --in path
[[ $TF_RC -eq 0 ]] || die "vault add tg --host allowed.example --in path: $TF_ERR"
wait_until "grep -q '2 bound secret' '$TOKFENCE_HOME/daemon.log'" 20
refused_as_data "path-bound placeholder beside an Authorization of the agent's own" \
  "POST /repos/attacker/loot/contents/tokfence-secret:tg HTTP/1.1\r\nHost: allowed.example\r\nAuthorization: token $OWN\r\nContent-Length: 2\r\n\r\n{}"
sleep 0.3
! grep -q "contents/$TG_BOUND" "$HEADS" || die "the path-bound secret reached the host as data"
as_agent allowed.example:443 "GET /bottokfence-secret:tg/getMe HTTP/1.1\r\nHost: allowed.example\r\n\r\n"
expect_eq "$EGRESS" "" "the path use of a path-bound secret (the fake answers 404: not a refusal)"
wait_until "grep -q '^GET /bot$TG_BOUND/getMe ' '$HEADS'" 10
scan_for_canary || die "canary found in an artifact"
log "ok: a bound secret is never data beside the agent's own credential, nor in a position its binding does not name"
