#!/usr/bin/env bash
# Escape class: egress around the policy proxy from a `tokfence launch` container. The agent ignores
# HTTPS_PROXY and connects straight to a TLS server it may reach through the proxy (listening on all
# host interfaces, reachable over the test's own Docker network), or asks the proxy for it as an IP
# literal. From a normal container on that network the direct connection works; from the launch it
# fails (NetworkMode none), the IP-literal CONNECT is refused, and only the proxied request answers.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
TLS_BIND=0.0.0.0
source "$(dirname "$0")/../integration/egress_lib.bash"
egress_launch_setup
name="tfeb-$RUN_ID"
net="tf-egb-$RUN_ID"
docker network create "$net" >/dev/null
EXTRA_CLEANUP="docker network rm $net >/dev/null 2>&1; $EXTRA_CLEANUP"
gateway=$(docker network inspect "$net" -f '{{(index .IPAM.Config 0).Gateway}}')
[[ -n $gateway ]] || die "no gateway for $net"
direct="$CURL_C -sS --max-time 10 --noproxy '*' --cacert /workspace/ca.pem --resolve allowed.test:$TLS_PORT:$gateway https://allowed.test:$TLS_PORT/"

log "unprotected: a normal container on the test's network reaches the TLS server directly"
control=$(docker run --rm --network "$net" --user "$(launch_default_ids)" -v "$WS:/workspace:ro" "$TEST_IMAGE" /bin/sh -c "$direct" 2>&1) ||
  die "control: direct curl from a normal container failed: $control"
expect_contains "$control" "hello from allowed.test"

script=$(cat <<EOF
$direct; echo "R direct \$?"
/probe connect $gateway $TLS_PORT; echo "R raw_tcp \$?"
$CURL_C -sS -v --max-time 10 -k https://$gateway:$TLS_PORT/ 2>&1; echo "R ip_literal \$?"
$CURL_C -sS --max-time 20 --cacert /workspace/ca.pem https://allowed.test/; echo "R proxied \$?"
EOF
)
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$WS" --allow allowed.test -- /bin/sh -c "$script"
out=$TF_OUT
result() { sed -n "s/^R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }
[[ $(result direct) -ne 0 ]] || die "a direct connection from the launch reached the TLS server: $out"
expect_eq "$(result raw_tcp)" 1 "raw TCP to $gateway:$TLS_PORT from the launch: $out"
[[ $(result ip_literal) -ne 0 ]] || die "CONNECT $gateway:$TLS_PORT through the proxy succeeded: $out"
expect_egress_refusal "$(sed -n '/^R raw_tcp/,/^R ip_literal/p' <<<"$out")" "CONNECT $gateway:$TLS_PORT"
expect_eq "$(result proxied)" 0 "proxied curl from the launch: $out $TF_ERR"
expect_contains "$out" "hello from allowed.test over tls"
expect_nothing_left "$name"
