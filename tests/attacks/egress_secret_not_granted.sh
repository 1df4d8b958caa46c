#!/usr/bin/env bash
# A bound secret is usable only by the fence it was given to (`run|launch --secret VAR=NAME`,
# `--telegram-secret NAME`: the socket's grant). The user keeps a token bound to api.telegram.org
# for one agent; another agent allowed to reach api.telegram.org but given no secret guesses the
# placeholder's name. Without the grant check tokfence would write the real token into its request.
# Also: the refusal for a name not granted is the same as for a name that does not exist, so the
# agent cannot find out by guessing which secrets the user keeps.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["api.telegram.org"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret bot api.telegram.org
HEADS="$WORK/TLS.requests.heads"
T=api.telegram.org:443

guess() {  # NAME: the agent's request with tokfence-secret:NAME as its credential
  as_agent $T "GET /getMe HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot tokfence-secret:$1\r\n\r\n"
}
log "1. a fence given no secret guesses the name of one that exists"
guess bot
[[ $STATUS == "HTTP/1.1 403"* ]] || die "a secret not granted was used: $STATUS"
expect_eq "$EGRESS" secret-unknown "not granted"
granted_body=$(sed '1,/^\r$/d' <<<"$REPLY")
[[ -s $HEADS ]] && die "the bound host received a request: $(cat "$HEADS")"
log "2. ... and of one that does not: the same answer, so guessing tells nothing"
guess bat
expect_eq "$EGRESS" secret-unknown "unknown"
unknown_body=$(sed '1,/^\r$/d' <<<"$REPLY")
expect_eq "${granted_body//bot/NAME}" "${unknown_body//bat/NAME}" "the two refusals"

log "3. a fence given another secret: the same"
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$AGENT_SOCKET\",\"caller\":\"codex\",\"mode\":384,\"egress\":{\"allow\":[\"api.telegram.org\"],\"secrets\":[\"other\"]}}")
[[ $(jq -r .ok <<<"$reply") == true ]] || die "re-open with another grant: $reply"
guess bot
expect_eq "$EGRESS" secret-unknown "granted another"
[[ -s $HEADS ]] && die "the bound host received a request: $(cat "$HEADS")"

log "control: the fence given the secret gets it substituted"
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$AGENT_SOCKET\",\"caller\":\"codex\",\"mode\":384,\"egress\":{\"allow\":[\"api.telegram.org\"],\"secrets\":[\"bot\"]}}")
[[ $(jq -r .ok <<<"$reply") == true ]] || die "re-open with the grant: $reply"
guess bot
[[ -z $EGRESS ]] || die "the granted secret was refused: $STATUS ($EGRESS)"
grep -q "^Authorization: Bot $BOUND" "$HEADS" || die "the bound host did not get the granted secret"

tf_ok egress list --json
expect_contains "$(jq -c '.. | .secrets? // empty' <<<"$TF_OUT")" '["bot"]' "egress list shows the grant"
hits=$(grep -rlaF -- "$BOUND" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/TLS\.requests(\.heads)?$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
log "ok: a bound secret is used only by the fence it was given to"
