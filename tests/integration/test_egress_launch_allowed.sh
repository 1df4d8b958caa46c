#!/usr/bin/env bash
# Egress from a `tokfence launch` container: with --allow allowed.test, curl inside the container
# reaches the TLS fake through the HTTPS_PROXY tokfence sets (the container has no network; the
# daemon connects, through [egress.resolve]). The container's proxy variables, OPENCLAW_PROXY_URL
# included, point at the relay's 127.0.0.1:9471, and a model request still gets its answer when a
# client sends it through that proxy (as OpenClaw's proxy mode and clients without no_proxy do: an
# absolute-form request for the listener's own address is served as a model request).
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_launch_setup
name="tfea-$RUN_ID"

script=$(cat <<EOF
env | grep -i -E '_proxy=|_proxy_url=' | sort
$CURL_C -sS --max-time 20 --cacert /workspace/ca.pem https://allowed.test/; echo "R allowed \$?"
$CONTAINER_KEY_SH
$CURL_C -sS --max-time 20 --noproxy '' -H 'Content-Type: application/json' -H "Authorization: Bearer \$TFKEY" \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' \
  http://127.0.0.1:9471/openai/v1/chat/completions; rc=\$?; echo; echo "R model_via_proxy \$rc"
EOF
)
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$WS" --allow allowed.test -- /bin/sh -c "$script"
log "launch exited $TF_RC"
out=$TF_OUT
result() { sed -n "s/^R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }

for var in HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy OPENCLAW_PROXY_URL; do
  grep -qx "$var=http://127.0.0.1:9471" <<<"$out" || die "$var in the container is not http://127.0.0.1:9471: $out $TF_ERR"
done
grep -qx "NO_PROXY=127.0.0.1,localhost,::1" <<<"$out" || die "NO_PROXY in the container: $out"
expect_eq "$(result allowed)" 0 "curl https://allowed.test/ in the container: $out $TF_ERR"
expect_contains "$out" "hello from allowed.test over tls"
grep -q '^GET allowed.test /$' "$TLS_LOG" || die "the TLS fake saw no request for allowed.test"
expect_eq "$(result model_via_proxy)" 0 "model request through the proxy variables: $out"
expect_contains "$out" '"content":"pong"'
expect_nothing_left "$name"
