#!/usr/bin/env bash
# `tokfence egress allow --launch NAME` changes a running launch's policy from its next connection
# on: later.test is refused inside the container, allowed from the host, then answers; `egress
# list --launch NAME --json` shows the rule; `egress deny` takes it away again.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_launch_setup
name="tfel-$RUN_ID"

script=$(cat <<EOF
try() { $CURL_C -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert /workspace/ca.pem https://later.test/; echo " R \$1 \$?"; }
wait_for() { i=0; while [ ! -e "/workspace/\$1" ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i+1)); done; }
try before
touch /workspace/ready1
wait_for go1
try after_allow
touch /workspace/ready2
wait_for go2
try after_deny
EOF
)
"$TOKFENCE_BIN" launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$WS" --allow allowed.test \
  --egress-preset npm -- /bin/sh -c "$script" >"$WORK/out/live.stdout" 2>"$WORK/out/live.stderr" </dev/null &
launch_pid=$!
# Files in the workspace, not output lines, say where the container is: its output reaches the
# launch's stdout through the engine's log stream, not promptly enough to count on.
wait_until "test -e '$WS/ready1'" 120
tf_ok egress allow later.test --launch "$name"
expect_contains "$TF_OUT" "launch '$name': allowed later.test"
tf_ok egress list --launch "$name" --json
expect_eq "$(jq -c '.listeners[0].allow | sort' <<<"$TF_OUT")" '["allowed.test:443","later.test:443"]' "allow list after 'egress allow'"
expect_eq "$(jq -c '.listeners[0].presets' <<<"$TF_OUT")" '["npm"]' "presets of the launch"
touch "$WS/go1"
wait_until "test -e '$WS/ready2'" 60
tf_ok egress deny later.test --launch "$name"
touch "$WS/go2"
wait "$launch_pid" || die "the launch failed: $(cat "$WORK/out/live.stderr")"
out=$(cat "$WORK/out/live.stdout")
log "inside: $(tr '\n' ' ' <<<"$out")"
result() { sed -n "s/.* R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }
[[ $(result before) -ne 0 ]] || die "later.test answered before it was allowed: $out"
expect_eq "$(result after_allow)" 0 "later.test after 'egress allow': $out $(cat "$WORK/out/live.stderr")"
[[ $(result after_deny) -ne 0 ]] || die "later.test answered after 'egress deny': $out"
expect_eq "$(grep -c '^GET later.test /$' "$TLS_LOG")" 1 "requests the fake saw for later.test"
expect_nothing_left "$name"
