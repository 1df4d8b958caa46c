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

# retry SNI1 SNI2 [ccs]: CONNECT allowed.example, then ClientHello(SNI1) [CCS] ClientHello(SNI2);
# prints "closed" when the proxy ended the tunnel at once, "open" when it was still open 2 s later.
retry() {
  $PY - "$RELAY_PORT" "$@" <<'PY'
import socket, sys
port, first, second = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ccs = len(sys.argv) > 4
def vec(b, w): return len(b).to_bytes(w, "big") + b
def ext(t, b): return t.to_bytes(2, "big") + vec(b, 2)
def hello(sni):
    exts = ext(0, vec(b"\x00" + vec(sni.encode(), 2), 2)) + ext(43, b"\x02\x03\x04")
    body = b"\x03\x03" + b"r" * 32 + vec(b"s" * 32, 1) + vec(b"\x13\x01", 2) + vec(b"\x00", 1) + vec(exts, 2)
    return b"\x16\x03\x01" + vec(b"\x01" + vec(body, 3), 2)
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
if not data.startswith(b"HTTP/1.1 200"):
    print("no-tunnel"); sys.exit(0)
# One write: the destination (no TLS 1.3 retry server) ends the tunnel once it reads the second
# hello, which must not depend on when the proxy reads it (the unit tests cut the bytes every way).
s.sendall(hello(first) + (b"\x14\x03\x03\x00\x01\x01" if ccs else b"") + hello(second))
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
rows=$(egress_rows)
expect_eq "$(jq -r --argjson n "$before" '[.[$n:][] | .decision + ":" + .rule] | join(" ")' <<<"$rows")" \
  "denied:sni-mismatch denied:sni-mismatch" "the two tunnels' rows"
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
