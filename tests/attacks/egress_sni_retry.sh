#!/usr/bin/env bash
# Attack (review 13a O1): the site named a second time. After a HelloRetryRequest a TLS 1.3 client
# sends a second ClientHello, and servers take the site name from it (OpenSSL uses the SNI of the
# handshake's latest ClientHello), while tokfence checked only the first. The agent sends
# CONNECT allowed.example, a ClientHello for allowed.example (checked, allowed), then a second
# ClientHello for other.example, before and after a middlebox-compatibility ChangeCipherSpec.
# Expected: every ClientHello of the client's handshake is read; one naming another site ends the
# tunnel before its bytes go on, and the egress row says sni-mismatch. A retry naming the same
# site, and an honest TLS client, go through.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""

# retry SNI1 SNI2 [ccs|split|alert]: CONNECT allowed.example, then ClientHello(SNI1), [a CCS, a
# warning alert and a CCS], ClientHello(SNI2) (split: in records of 40 bytes);
# prints "closed" when the proxy ended the tunnel at once, "open" when it was still open 2 s later.
retry() {
  $PY - "$RELAY_PORT" "$SOURCE_DIR/tests/attacks" "$@" <<'PY'
import socket, sys
port, here, first, second = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else ""
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, here)
from tls_hello import client_hello, open_tunnel
s, _ = open_tunnel(port, "allowed.example:443")
if s is None:
    print("no-tunnel"); sys.exit(0)
# One write: the destination (no TLS 1.3 retry server) ends the tunnel once it reads the second
# hello, which must not depend on when the proxy reads it (the unit tests cut the bytes every way).
ccs = b"\x14\x03\x03\x00\x01\x01"
between = {"": b"", "ccs": ccs, "split": ccs, "alert": b"\x15\x03\x03\x00\x02\x01\x5a" + ccs}[mode]
s.sendall(client_hello(first) + between + client_hello(second, piece=40 if mode == "split" else 16384))
s.settimeout(2)
state = "open"
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            state = "closed"; break
except socket.timeout:
    pass
except OSError:
    state = "closed"
print(state)
PY
}
before=$(egress_rows | jq length)
log "attack: a second ClientHello for other.example"
retry allowed.example other.example >/dev/null
log "attack: the same after a ChangeCipherSpec"
retry allowed.example other.example ccs >/dev/null
log "attack: after the ChangeCipherSpec, the second hello in records of 40 bytes (review 13d E1)"
retry allowed.example other.example split >/dev/null
log "attack: a warning alert (user_canceled) first (review 13d E1)"
retry allowed.example other.example alert >/dev/null
rows=$(egress_rows)
expect_eq "$(jq -r --argjson n "$before" '[.[$n:][] | .decision + ":" + .rule] | join(" ")' <<<"$rows")" \
  "denied:sni-mismatch denied:sni-mismatch denied:sni-mismatch denied:sni-mismatch" "the four tunnels' rows"
expect_contains "$(jq -r '.[-1].error' <<<"$rows")" "other.example"

log "a retry naming the same site goes on"
before=$(jq length <<<"$rows")
retry allowed.example allowed.example ccs >/dev/null
rows=$(egress_rows)
expect_eq "$(jq -r --argjson n "$before" '[.[$n:][] | .decision] | join(" ")' <<<"$rows")" "allowed" "the same-site retry"

log "an honest client still gets through"
through https://allowed.example/hello
expect_eq "$CODE" 200 "allowed.example"
scan_for_canary || die "canary found in an artifact"
log "ok: every ClientHello of a tunnel names the site it was allowed for"
