#!/usr/bin/env bash
# The bound host made to hand the secret back to the agent (docs/EGRESS.md, "Inspected hosts"):
# the hostile agent holds tokfence-secret:bot (bound to api.telegram.org) and asks the host to
# quote its request back in every shape a watch could miss:
#  A. chunked, the secret straddling two chunks (the framing between its halves);
#  B. a long answer (300 KiB past the secret), the secret straddling two TLS records;
#  C. stored by one request (with the placeholder), fetched by the next (without one);
#  D. gzip behind a first "Content-Encoding: identity";
#  E. base64 and percent-encoded echoes;
#  C'. the old value after the user rotated, then removed the secret (the host still holds it).
# Each time: the agent reads no byte of the secret (and not its first 8 characters), the answer is
# refused with a row saying so. Control: the same host's plain answers still come through.
source "$(dirname "$0")/egress_lib.bash"
egress_setup '{"allow":["api.telegram.org"],"secrets":["bot"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret bot api.telegram.org
T=api.telegram.org:443
P="tokfence-secret:bot"
leaks() {  # whether REPLY holds the secret or its first 8 characters
  [[ $REPLY == *"$BOUND"* || $REPLY == *"${BOUND:0:8}"* ]]
}
refused() {  # what
  leaks && die "$1: the agent read (part of) the secret: $STATUS"
  [[ $STATUS == "HTTP/1.1 502"* ]] || die "$1: expected a 502 refusal, got: $STATUS"
  expect_eq "$EGRESS" "$2" "$1: X-Tokfence-Egress"
}
# Where the secret lands in the echo: after "POST <path> HTTP/1.1\r\nHost: api.telegram.org\nAuthorization: Bot ".
pad_to() {  # path boundary offset-into-secret: padding so the echo's byte `boundary` is that far into the secret
  local before=$((${#1} + 16 + 23 + 19))  # "POST <path> HTTP/1.1\r\n", "Host: api.telegram.org\n", "Authorization: Bot "
  printf '%*s' $(($2 - before - $3)) '' | tr ' ' p
}

log "control: a plain answer from the bound host comes through"
as_agent $T 'GET /hello HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n'
[[ $STATUS == "HTTP/1.1 200"* ]] || die "plain GET /hello: $STATUS"

log "A. a chunked echo, the secret split by the chunk boundary at 4096"
body=$(pad_to /echo-chunked 4096 10)
as_agent $T "POST /echo-chunked HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\nContent-Length: ${#body}\r\n\r\n$body"
refused "chunked echo" secret-reflected

log "B. an echo 300 KiB long, the secret split at 16 KiB"
body=$(pad_to /echo-big 16384 10)
as_agent $T "POST /echo-big HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\nContent-Length: ${#body}\r\n\r\n$body"
refused "long echo" secret-reflected

log "C. stored with the placeholder, fetched without it"
as_agent $T "GET /store HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\n\r\n"
[[ $STATUS == "HTTP/1.1 204"* ]] || die "store: $STATUS"
as_agent $T 'GET /fetch HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n'
refused "fetch of the stored request" secret-reflected

log "D. gzip behind a first Content-Encoding: identity"
as_agent $T "GET /echo-ce HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\n\r\n"
refused "double Content-Encoding" encoded-response

log "E. base64 and percent-encoded echoes"
as_agent $T "GET /echo-b64 HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\n\r\n"
refused "base64 echo" secret-reflected
as_agent $T "GET /echo-url HTTP/1.1\r\nHost: api.telegram.org\r\nAuthorization: Bot $P\r\n\r\n"
refused "percent-encoded echo" secret-reflected

log "C'. the stored secret after 'vault rotate' and after 'vault remove': still watched for"
rotated="rot$(random_token 30)"
tf_in "$rotated" vault rotate bot -
[[ $TF_RC -eq 0 ]] || die "vault rotate bot: $TF_ERR"
wait_until "[[ \$(grep -c 'bound secret' '$TOKFENCE_HOME/daemon.log') -ge 2 ]]" 20
as_agent $T 'GET /fetch HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n'
refused "fetch of the old secret after rotate" secret-reflected
tf vault remove bot
[[ $TF_RC -eq 0 ]] || die "vault remove bot: $TF_ERR"
wait_until "grep -q '0 bound secret' '$TOKFENCE_HOME/daemon.log'" 20
as_agent $T 'GET /fetch HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n'
refused "fetch of the old secret after remove" secret-reflected

log "the rows say secret-reflected / encoded-response; the secret is in no row, log or output"
rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "secret-reflected" and .decision == "denied")] | length' <<<"$rows")" 7 "secret-reflected rows"
expect_eq "$(jq '[.[] | select(.rule == "encoded-response")] | length' <<<"$rows")" 1 "encoded-response rows"
hits=$(grep -rlaF -e "$BOUND" -e "$rotated" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/TLS\.requests\.heads$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
