#!/usr/bin/env bash
# Egress from `tokfence run`: a host named with --allow answers curl inside the sandbox through the
# HTTPS_PROXY tokfence sets (a TLS fake on host loopback, reached by the daemon through
# [egress.resolve]; the sandbox itself has no route there). The proxy variables are tokfence's own:
# the parent's HTTPS_PROXY/NO_PROXY never reach the child. A preset shows in `tokfence egress list`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_run_setup

log "the child's proxy variables point at the sandbox's own relay, whatever the parent had"
export HTTPS_PROXY=http://parent-proxy.invalid:3128 https_proxy=http://parent-proxy.invalid:3128 NO_PROXY='*'
tf run codex --command /usr/bin/env --workdir "$PROJECT" --allow allowed.test
expect_eq "$TF_RC" 0 "env in the sandbox: $TF_ERR"
for var in HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy; do
  grep -qx "$var=$PROXY_URL" <<<"$TF_OUT" || die "$var in the sandbox is not $PROXY_URL: $TF_OUT"
done
expect_contains "$TF_OUT" "NO_PROXY=127.0.0.1,localhost,::1" "NO_PROXY in the sandbox"
expect_contains "$TF_OUT" "no_proxy=127.0.0.1,localhost,::1" "no_proxy in the sandbox"
expect_not_contains "$TF_OUT" "parent-proxy" "the parent's proxy leaked into the sandbox"
unset HTTPS_PROXY https_proxy NO_PROXY

log "an allowed host answers through the proxy, its certificate verified by curl"
RUN_FLAGS=(--allow allowed.test)
curl_in_run -sS --max-time 20 --cacert "$TLS_DIR/ca.pem" https://allowed.test/
expect_eq "$TF_RC" 0 "curl https://allowed.test/ in the sandbox: $TF_ERR"
expect_eq "$TF_OUT" "hello from allowed.test over tls"
grep -q '^GET allowed.test /$' "$TLS_LOG" || die "the TLS fake saw no request for allowed.test"

log "the same with an explicit port and a wildcard rule"
RUN_FLAGS=(--allow 'later.test:443' --allow '*.nothing.test')
curl_in_run -sS --max-time 20 --cacert "$TLS_DIR/ca.pem" https://later.test/
expect_eq "$TF_RC" 0 "curl https://later.test/ with --allow later.test:443: $TF_ERR"
expect_eq "$TF_OUT" "hello from later.test over tls"

log "a preset is accepted and listed while the run is up"
tf run codex --command /bin/sh --workdir "$PROJECT" --egress-preset npm --allow allowed.test -- \
  -c 'echo started; i=0; while [ ! -e go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done' &
run_pid=$!
wait_until "$TOKFENCE_BIN egress list --agent codex --json | jq -e '.listeners[0].presets | index(\"npm\")'" 20
tf_ok egress list --agent codex --json
expect_eq "$(jq -c '[.listeners[] | select(.caller == "codex")][0].allow' <<<"$TF_OUT")" '["allowed.test:443"]' "allow list"
tf_ok egress list
expect_contains "$TF_OUT" "agent 'codex'"
expect_contains "$TF_OUT" "npm"
touch "$PROJECT/go"
wait "$run_pid" || die "the run with a preset failed"
