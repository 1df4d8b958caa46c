#!/usr/bin/env bash
# Port 443 carries TLS only: a tunnel whose first bytes are not a TLS handshake record (0x16) is
# refused inside the tunnel (a plain-text client can read the 403) and nothing reaches the
# destination. Other ports are opaque tunnels.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"]}'

reply=$(raw_connect allowed.example:443 "GET /hello HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n")
expect_contains "$reply" "HTTP/1.1 200 Connection Established" "the tunnel opened"
expect_contains "$reply" "HTTP/1.1 403 Forbidden" "plain text in a 443 tunnel"
expect_contains "$reply" "X-Tokfence-Egress: not-tls"
expect_not_contains "$reply" "hello from" "the destination answered plain text"
sleep 0.3
expect_eq "$(wc -l <"$WORK/TLS.requests")" 0 "plain text reached the destination"

log "TLS in the same tunnel works"
through https://allowed.example/hello
expect_eq "$CODE" 200 "TLS through the tunnel"

rows=$(egress_rows)
expect_eq "$(jq -r '.[0] | .decision, .rule' <<<"$rows" | paste -sd' ')" "denied not-tls" "not-tls row"
expect_eq "$(jq -r '.[0].bytes_up' <<<"$rows")" 0 "bytes sent on after the refusal"
expect_eq "$(jq -r '.[1] | .decision' <<<"$rows")" allowed "TLS row"
