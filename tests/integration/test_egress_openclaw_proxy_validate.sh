#!/usr/bin/env bash
# The real OpenClaw's own check of its managed proxy passes inside a launch: with --allow
# allowed.test, `openclaw proxy validate --allowed-url https://allowed.test/` (run in the launched
# container, which has OPENCLAW_PROXY_URL and proxy.proxyUrl from tokfence) reaches the TLS fake
# through tokfence's forward proxy, and its default denied check (a loopback canary server it
# starts itself) is blocked by the proxy. The test CA is handed to node with NODE_EXTRA_CA_CERTS.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
source "$(dirname "$0")/egress_lib.bash"

oc_image=$("$SOURCE_DIR/scripts/build-openclaw-image" --cache "$BUILD_DIR/openclaw-image") ||
  die "could not build the OpenClaw image (needs Debian's mirror and the npm registry)"
egress_launch_setup
name="tfev-$RUN_ID"

tf launch --image "$oc_image" --no-pull --name "$name" --workspace "$WS" --allow allowed.test -- /bin/sh -c \
  'NODE_EXTRA_CA_CERTS=/workspace/ca.pem openclaw --log-level error proxy validate --allowed-url https://allowed.test/ --json'
log "openclaw proxy validate exited $TF_RC"
json=$(sed -n '/^{/,/^}/p' <<<"$TF_OUT")
[[ -n $json ]] || die "no JSON from openclaw proxy validate: $TF_OUT $TF_ERR"
expect_eq "$TF_RC" 0 "openclaw proxy validate: $TF_OUT $TF_ERR"
expect_eq "$(jq -r '.ok' <<<"$json")" true "openclaw proxy validate verdict: $json"
grep -q '^GET allowed.test /$' "$TLS_LOG" || die "the TLS fake saw no request for allowed.test"
expect_nothing_left "$name"
