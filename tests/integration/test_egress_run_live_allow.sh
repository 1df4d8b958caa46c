#!/usr/bin/env bash
# `tokfence egress allow` changes a running sandbox's policy from its next connection on: inside one
# `tokfence run`, later.test is refused (403), then the host runs `tokfence egress allow later.test
# --agent codex`, and the next curl succeeds; `egress deny` takes it away again. Also the errors:
# no daemon, an agent or launch that is not running, a malformed rule.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"

log "with no daemon running, egress says so"
tf egress allow later.test --agent codex
[[ $TF_RC -ne 0 ]] || die "egress allow without a daemon succeeded"
expect_contains "$TF_ERR" "no daemon running"

egress_run_setup

log "a fence that is not running, a malformed rule"
tf egress allow later.test --agent codex
[[ $TF_RC -ne 0 ]] || die "egress allow for an agent that is not running succeeded"
expect_contains "$TF_ERR" "no running agent 'codex'"
tf egress allow later.test --launch nosuchlaunch
[[ $TF_RC -ne 0 ]] || die "egress allow for a launch that is not running succeeded"
expect_contains "$TF_ERR" "no running launch 'nosuchlaunch'"
tf egress allow 'https://later.test/'
[[ $TF_RC -ne 0 ]] || die "egress allow of a URL succeeded"
expect_contains "$TF_ERR" "https://later.test/"

ca="$TLS_DIR/ca.pem"
script=$(cat <<EOF
try() { curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert $ca https://later.test/; echo " R \$1 \$?"; }
wait_for() { i=0; while [ ! -e "\$1" ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done; }
try before
echo READY1
wait_for go1
try after_allow
echo READY2
wait_for go2
try after_deny
EOF
)
"$TOKFENCE_BIN" run codex --command /bin/sh --workdir "$PROJECT" --allow allowed.test -- -c "$script" \
  >"$WORK/out/live.stdout" 2>"$WORK/out/live.stderr" </dev/null &
run_pid=$!
wait_until "grep -q READY1 '$WORK/out/live.stdout'" 30
tf_ok egress allow later.test --agent codex
expect_contains "$TF_OUT" "allowed later.test"
touch "$PROJECT/go1"
wait_until "grep -q READY2 '$WORK/out/live.stdout'" 30
tf_ok egress deny later.test
expect_contains "$TF_OUT" "agent 'codex'"
touch "$PROJECT/go2"
wait "$run_pid" || die "the run failed: $(cat "$WORK/out/live.stderr")"
out=$(cat "$WORK/out/live.stdout")
log "inside: $(tr '\n' ' ' <<<"$out")"
result() { sed -n "s/.* R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }
[[ $(result before) -ne 0 ]] || die "later.test answered before it was allowed: $out"
expect_eq "$(result after_allow)" 0 "later.test after 'egress allow': $out $(cat "$WORK/out/live.stderr")"
[[ $(result after_deny) -ne 0 ]] || die "later.test answered after 'egress deny': $out"
expect_eq "$(grep -c '^GET later.test /$' "$TLS_LOG")" 1 "requests the fake saw for later.test"
