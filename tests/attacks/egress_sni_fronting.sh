#!/usr/bin/env bash
# Attack: domain fronting through an allowed name. A shared front end (a CDN) serves many sites on
# one address and picks the site by the TLS server name (SNI). The agent is allowed
# allowed.example only; other.example is served from the same address. It sends
# CONNECT allowed.example:443 (allowed) and then a ClientHello for other.example: the tunnel was
# checked by its CONNECT line only, so other.example answered (review 12a E2; with
# `--egress-preset discord`, every Cloudflare site). Expected: the ClientHello's server name must
# be the tunnel's host; a mismatch, a missing name or an Encrypted ClientHello (which hides the
# name) ends the tunnel with a TLS alert before a byte reaches the destination, and the egress row
# says why (sni-mismatch, sni-hidden).
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""

log "control: other.example named in the CONNECT is refused"
through https://other.example/hello
expect_eq "$CONNECT_CODE" 403 "CONNECT other.example"

log "attack: CONNECT allowed.example, ClientHello and Host for other.example"
through https://other.example/hello --connect-to other.example:443:allowed.example:443
log "CONNECT $CONNECT_CODE, status $CODE"
expect_eq "$CODE" 000 "the fronted request's status"
sleep 0.3
expect_eq "$(grep -c other.example "$WORK/TLS.requests" || true)" 0 "requests for other.example at the destination"

# hello AUTHORITY SNI [ech]: CONNECT, then a hand-made ClientHello; prints the bytes that came back
# after the 200, in hex.
hello() {
  $PY - "$RELAY_PORT" "$SOURCE_DIR/tests/attacks" "$@" <<'PY'
import sys
port, here, authority, sni = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, here)
from tls_hello import client_hello, open_tunnel
s, rest = open_tunnel(port, authority)
if s is None:
    print("no-tunnel", rest)
    sys.exit(0)
s.sendall(client_hello(sni, ech=len(sys.argv) > 5))
while True:
    try:
        chunk = s.recv(4096)
    except OSError:
        break
    if not chunk:
        break
    rest += chunk
print(rest.hex())
PY
}
alert=150303000202  # a fatal TLS alert record; 70 = unrecognized_name follows
for case in "other.example" "" "allowed.example ech"; do
  read -r sni ech <<<"$case"
  log "ClientHello with SNI '${sni:-none}'${ech:+ and ECH} in a tunnel to allowed.example"
  reply=$(hello allowed.example:443 "$sni" $ech)
  expect_eq "${reply:0:14}" "${alert}70" "the answer to that ClientHello"
done
log "the same hand-made ClientHello naming allowed.example reaches the destination's TLS"
reply=$(hello allowed.example:443 allowed.example)
[[ ${reply:0:2} == 16 || ${reply:0:2} == 15 ]] || die "no TLS answer from the destination: ${reply:0:40}"
[[ ${reply:0:14} != "${alert}70" ]] || die "the matching ClientHello was refused"

log "an honest client still gets through"
through https://allowed.example/hello
expect_eq "$CODE" 200 "allowed.example with its own name"

rows=$(egress_rows)
expect_eq "$(jq -r '[.[] | select(.decision == "denied") | .rule] | join(" ")' <<<"$rows")" \
  "default-deny sni-mismatch sni-mismatch sni-mismatch sni-hidden" "refusals in the egress log"
expect_eq "$(jq '[.[] | select(.rule | startswith("sni")) | .bytes_up] | add' <<<"$rows")" 0 "bytes sent on after a refusal"
scan_for_canary || die "canary found in an artifact"
log "ok: a tunnel carries only the site it was allowed for"
