#!/usr/bin/env bash
# Egress from `tokfence run`, refused: a host not allowed, a port not allowed, and any host when no
# rule was given at all (the proxy variables are set anyway) get tokfence's 403 with an
# X-Tokfence-Egress header naming the rule, over CONNECT (https) and absolute-form (http) alike;
# the fake behind them sees nothing, and each refusal is a row of `tokfence log --egress`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_run_setup

log "a host that is not allowed"
RUN_FLAGS=(--allow allowed.test)
curl_in_run -sS -v --max-time 20 --cacert "$TLS_DIR/ca.pem" https://denied.test/
[[ $TF_RC -ne 0 ]] || die "curl https://denied.test/ succeeded: $TF_OUT"
expect_egress_refusal "$TF_ERR" "CONNECT denied.test:443"

log "an allowed host on a port that is not"
curl_in_run -sS -v --max-time 20 --cacert "$TLS_DIR/ca.pem" https://allowed.test:8443/
[[ $TF_RC -ne 0 ]] || die "curl https://allowed.test:8443/ succeeded: $TF_OUT"
expect_egress_refusal "$TF_ERR" "CONNECT allowed.test:8443"

log "absolute-form http to a host that is not allowed"
curl_in_run -sS -i --max-time 20 http://denied.test/
expect_egress_refusal "$TF_OUT" "GET http://denied.test/"

log "no rule at all: the variables are set, and the answer is the same clear 403"
RUN_FLAGS=()
curl_in_run -sS -v --max-time 20 --cacert "$TLS_DIR/ca.pem" https://allowed.test/
[[ $TF_RC -ne 0 ]] || die "curl https://allowed.test/ without --allow succeeded: $TF_OUT"
expect_egress_refusal "$TF_ERR" "CONNECT allowed.test:443 without rules"

if grep -q 'denied.test\|:8443' "$TLS_LOG" || grep -q 'allowed.test' "$TLS_LOG"; then
  die "the TLS fake saw a refused request: $(cat "$TLS_LOG")"
fi

log "each refusal is in the egress log, with the caller"
tf_ok log --egress --json
rows=$(jq -c '[.[] | select(.host == "denied.test" and .decision == "denied")]' <<<"$TF_OUT")
(($(jq length <<<"$rows") >= 2)) || die "no denied rows for denied.test in 'log --egress': $TF_OUT"
expect_eq "$(jq -r '.[0].caller' <<<"$rows")" codex "caller of the refused connection"
jq -e '[.[] | select(.host == "allowed.test" and (.port == 8443 or .port == "8443") and .decision == "denied")] | length >= 1' \
  <<<"$TF_OUT" >/dev/null || die "no denied row for allowed.test:8443: $TF_OUT"
