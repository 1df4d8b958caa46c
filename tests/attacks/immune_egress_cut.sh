#!/usr/bin/env bash
# A fenced agent with an allowed host keeps a tunnel open (a long transfer, a websocket) and goes
# on using it after its session is revoked or turns RED, where every new request is refused. The
# sweep must cut the open tunnel too (within about a second), and new CONNECTs are refused while
# the session is RED. Control: the same transfer, untouched, runs to its end.
source "$(dirname "$0")/egress_lib.bash"

EGRESS_SESSION=1 egress_setup '{"allow":["allowed.example"]}'
TOKEN=$(jq -r .session.token "$WORK/agent-open.json")
NAME=$(jq -r .session.name "$WORK/agent-open.json")
DECOY=$(jq -r '.session.decoys.values[0]' "$WORK/agent-open.json")

long_transfer() {  # starts a slow download through the tunnel; its pid in SLOW
  rm -f "$WORK/slow.body"
  curl -sS --max-time 60 --proxy "$AGENT_PROXY" --cacert "$WORK/cert.pem" -o "$WORK/slow.body" \
    https://allowed.example/slow 2>"$WORK/slow.err" &
  SLOW=$!
  _pids_to_kill+=($SLOW)
  wait_until "test \$(stat -c %s '$WORK/slow.body' 2>/dev/null || echo 0) -gt 4096" 20
}
stops_within() {  # stops_within SECONDS: the transfer ended that soon
  local i
  for ((i = 0; i < $1 * 10; i++)); do kill -0 "$SLOW" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

log "control: an untouched transfer keeps running"
long_transfer
stops_within 3 && die "the control transfer ended by itself within 3 s (the test could not tell a cut)"
kill "$SLOW" 2>/dev/null || true

log "RED (a decoy sent in a prompt) cuts the open tunnel and refuses new ones"
long_transfer
status=$(curl -s -o /dev/null -w '%{http_code}' "$AGENT_PROXY/openai/v1/chat/completions" \
  -H "Authorization: Bearer $TOKEN" -d "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$DECOY\"}]}")
expect_eq "$status" 403 "the decoy request"
stops_within 5 || die "the tunnel still runs 5 s after the session turned RED"
through https://allowed.example/hello
expect_eq "$CONNECT_CODE" 403 "CONNECT while RED"
expect_eq "$(egress_header)" risk-red "X-Tokfence-Egress"

log "revoke cuts an open tunnel"
tf_ok session reset "$NAME" >/dev/null
through https://allowed.example/hello
expect_eq "$CODE" 200 "after reset"
long_transfer
tf_ok session revoke "$NAME" >/dev/null
stops_within 5 || die "the tunnel still runs 5 s after the session was revoked"
through https://allowed.example/hello
expect_eq "$CONNECT_CODE" 403 "CONNECT after revoke"
