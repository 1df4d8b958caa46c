#!/usr/bin/env bash
# A hostile agent holding only the placeholder tokfence-secret:bot tries to get the real secret
# (bound to api.telegram.org) somewhere it can read it (docs/EGRESS.md, "Inspected hosts"):
#  1. the placeholder in a request to another allowed host that tokfence inspects: refused;
#  2. a tunnel opened to the bound host carrying a request whose Host names another virtual host
#     at the same address: refused (host-mismatch);
#  3. the placeholder over plain http, to any host: refused;
#  4. the bound host made to quote the request back (/echo): the response is cut before the agent
#     reads a byte of the secret;
#  5. the bound host answered by an impostor whose certificate tokfence cannot verify (no
#     extra_ca_file): refused before the request is sent;
#  6. a redirect from the bound host to another host: followed by the client with the placeholder,
#     which is refused there.
# Each time the secret must reach no host but the bound one, and appear in no output, log or DB.
source "$(dirname "$0")/egress_lib.bash"

# extra_ca_file: the daemon trusts the fakes' certificate as it would a real host's.
egress_setup '{"allow":["api.telegram.org","other.example"],"secrets":["bot"]}' \
  '[egress.domains."other.example"]' 'mode = "inspect"' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
reply=$(ctl "{\"op\":\"egress\",\"caller\":\"codex\",\"action\":\"allow\",\"rule\":\"plain.example:$PLAIN_PORT\"}")
[[ $(jq -r .ok <<<"$reply") == true ]] || die "egress allow plain.example: $reply"

BOT="bot$(random_token 30)"
tf_in "$BOT" vault add bot - --host api.telegram.org
expect_eq "$TF_RC" 0 "vault add bot --host api.telegram.org: $TF_ERR"
wait_until "grep -q '1 bound secret' '$TOKFENCE_HOME/daemon.log'" 20
CA="$TOKFENCE_HOME/egress-ca.pem"
[[ -s $CA ]] || die "the daemon made no local CA at $CA"
HEADS="$WORK/TLS.requests.heads"
P="tokfence-secret:bot"

log "control: the bound host gets the secret in place of the placeholder"
through "https://api.telegram.org/hello" --cacert "$CA" -H "Authorization: Bot $P"
expect_eq "$CODE" 200 "GET /hello on the bound host"
grep -q "^Authorization: Bot $BOT" "$HEADS" || die "the bound host did not receive the secret"
: >"$HEADS"

log "1. the placeholder to another allowed, inspected host"
through "https://other.example/hello" --cacert "$CA" -H "Authorization: Bot $P"
expect_eq "$CODE" 403 "placeholder to other.example"
expect_eq "$(egress_header)" secret-not-bound
[[ -s $HEADS ]] && die "other.example received a request: $(cat "$HEADS")"

log "2. a tunnel to the bound host with a request for another virtual host"
through "https://api.telegram.org/hello" --cacert "$CA" -H "Host: other.example" -H "Authorization: Bot $P"
expect_eq "$CODE" 403 "Host: other.example inside a tunnel to api.telegram.org"
expect_eq "$(egress_header)" host-mismatch
[[ -s $HEADS ]] && die "a request reached the fake: $(cat "$HEADS")"

log "3. the placeholder over plain http"
through "http://plain.example:$PLAIN_PORT/hello?t=$P"
expect_eq "$CODE" 403 "placeholder over plain http"
expect_eq "$(egress_header)" secret-over-plain-http
grep -q "hello" "$WORK/PLAIN.requests" && die "the plain host received the request"

log "4. the bound host quoting the request back"
through "https://api.telegram.org/echo" --cacert "$CA" -H "Authorization: Bot $P"
[[ $OUT != *"$BOT"* ]] || die "the agent read the secret from the echoed response"
expect_eq "$CODE" 502 "an echo of the secret"
expect_eq "$(egress_header)" secret-reflected
: >"$HEADS"

log "6. a redirect from the bound host to another host: the placeholder is refused there"
through "https://api.telegram.org/redirect?to=https://other.example/hello" --cacert "$CA" -L -H "X-Token: $P"
expect_eq "$CODE" 403 "the redirected request"
grep -qi "^Host: other.example" "$HEADS" && die "other.example received the redirected request"
: >"$HEADS"

log "the log rows name each refusal; the secret is in none"
rows=$(egress_rows)
for rule in secret-not-bound host-mismatch secret-over-plain-http secret-reflected; do
  expect_eq "$(jq --arg r "$rule" '[.[] | select(.rule == $r and .decision == "denied")] | length >= 1' <<<"$rows")" true "a denied row for $rule"
done

log "5. an impostor for the bound host (a certificate tokfence does not trust)"
sed -i '/^extra_ca_file/d' "$TOKFENCE_HOME/config.toml"
stop_daemon
start_daemon
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$AGENT_SOCKET\",\"caller\":\"codex\",\"mode\":384,\"egress\":{\"allow\":[\"api.telegram.org\"],\"secrets\":[\"bot\"]}}")
[[ $(jq -r .ok <<<"$reply") == true ]] || die "open_proxy_socket after restart: $reply"
through "https://api.telegram.org/hello" --cacert "$CA" -H "Authorization: Bot $P"
expect_eq "$CODE" 502 "a destination whose certificate does not verify"
expect_eq "$(egress_header)" upstream-tls
[[ -s $HEADS ]] && die "the impostor received a request: $(cat "$HEADS")"

hits=$(grep -rlaF -- "$BOT" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/TLS\.requests\.heads$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
