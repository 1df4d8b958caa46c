#!/usr/bin/env bash
# Deny by default: a host the policy does not name gets a 403 with a JSON body and an
# X-Tokfence-Egress header naming the rule, and a row; nothing reaches it. The main listeners
# (TCP and the main Unix socket) never tunnel. A policy with a malformed rule or an unknown preset
# opens nothing.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"]}'

log "a host not allowed: 403 before any connection"
through https://other.example/hello
expect_eq "$CONNECT_CODE" 403 "CONNECT to a host not allowed"
expect_eq "$(egress_header)" default-deny "X-Tokfence-Egress"
reply=$(raw_connect other.example:443 "")
expect_contains "$reply" "HTTP/1.1 403"
body=$(sed -n '/^\r$/,$p' <<<"$reply" | tail -1)
expect_eq "$(jq -r .error.type <<<"$body")" tokfence_egress "error type"
expect_contains "$(jq -r .error.message <<<"$body")" "other.example:443 is not allowed for 'codex'"
expect_contains "$(jq -r .error.message <<<"$body")" "tokfence egress allow other.example:443"
through https://allowed.example:8443/hello
expect_eq "$CONNECT_CODE" 403 "another port of an allowed host"
through http://other.example/hello
expect_eq "$CODE" 403 "absolute-form request to a host not allowed"
expect_eq "$(egress_header)" default-deny "X-Tokfence-Egress (absolute form)"
reply=$(raw_connect 203.0.113.9:443 "")
expect_contains "$reply" "X-Tokfence-Egress: default-deny" "an IP literal needs an explicit rule"
expect_eq "$(wc -l <"$WORK/TLS.requests")" 0 "a refused connection reached the destination"
through https://allowed.example/hello
expect_eq "$CODE" 200 "the allowed host still answers"

log "a CONNECT after a model request on the same connection is refused all the same"
out=$($PY - "$RELAY_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(b"GET /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
head, _, rest = data.partition(b"\r\n\r\n")
length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
while len(rest) < length:
    rest += s.recv(65536)
s.sendall(b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n")
print(s.recv(65536).decode())
PY
)
expect_contains "$out" "HTTP/1.1 403" "CONNECT after a kept-alive model request"
expect_contains "$out" "X-Tokfence-Egress: default-deny"

log "the main listeners never tunnel"
code=$(curl -sS -o /dev/null -w '%{http_connect}' --max-time 10 --proxy "$PROXY_URL" --cacert "$WORK/cert.pem" \
  https://allowed.example/hello 2>/dev/null || true)
expect_eq "$code" 403 "CONNECT on the TCP listener"
out=$($PY - "$PROXY_SOCKET" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(b"CONNECT allowed.example:443 HTTP/1.1\r\nHost: allowed.example:443\r\n\r\n")
print(s.recv(65536).decode())
PY
)
expect_contains "$out" "HTTP/1.1 403"
expect_contains "$out" "X-Tokfence-Egress: no-egress-on-main-listener"

log "rows for every refusal"
rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.decision == "denied" and .rule == "default-deny")] | length' <<<"$rows")" 6 "default-deny rows"
expect_eq "$(jq '[.[] | select(.rule == "no-egress-on-main-listener")] | length' <<<"$rows")" 2 "main-listener rows"
expect_eq "$(jq -r '[.[] | select(.decision == "denied")][0] | .host, .port, .bytes_up, .address' <<<"$rows" | paste -sd' ')" \
  "other.example 443 0 " "a refused row connected nothing"

log "a malformed rule or an unknown preset opens nothing"
for policy in '{"allow":["https://x.example"]}' '{"presets":["npmm"]}' '{"allow":"x.example"}' '{"allow":["[::1"]}'; do
  reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/run/bad.sock\",\"caller\":\"bad\",\"egress\":$policy}")
  expect_eq "$(jq -r .ok <<<"$reply")" false "open_proxy_socket with $policy"
  [[ ! -e "$WORK/run/bad.sock" ]] || die "a socket was opened for a bad policy $policy"
done
expect_contains "$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/run/bad.sock\",\"caller\":\"bad\",\"egress\":{\"presets\":[\"npmm\"]}}")" "unknown preset 'npmm'"
expect_contains "$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/run/bad.sock\",\"caller\":\"bad\",\"egress\":{\"allow\":[\"ok.example\",\"bad host\"]}}")" "rule 'bad host'"
