#!/usr/bin/env bash
# Egress from a `tokfence launch` container, refused: a host not allowed (CONNECT and absolute-form)
# and, in a launch with no rule at all, the host another launch may reach get tokfence's 403 with
# X-Tokfence-Egress; the fake sees nothing, and `tokfence log --egress` has the rows with caller
# openclaw:<name>.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_launch_setup
name="tfed-$RUN_ID"

script=$(cat <<EOF
$CURL_C -sS -v --max-time 20 --cacert /workspace/ca.pem https://denied.test/ 2>&1; echo "R denied_connect \$?"
$CURL_C -sS -i --max-time 20 http://denied.test/ 2>&1; echo "R denied_absolute \$?"
EOF
)
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$WS" --allow allowed.test -- /bin/sh -c "$script"
out=$TF_OUT
result() { sed -n "s/^R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }
[[ $(result denied_connect) -ne 0 ]] || die "curl https://denied.test/ succeeded in the container: $out"
expect_egress_refusal "$(sed -n '1,/^R denied_connect/p' <<<"$out")" "CONNECT denied.test:443 from the container"
expect_egress_refusal "$(sed -n '/^R denied_connect/,/^R denied_absolute/p' <<<"$out")" "GET http://denied.test/ from the container"

log "a launch without any rule: the proxy is set, and refuses"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name-none" --workspace "$WS" -- /bin/sh -c \
  "$CURL_C -sS -v --max-time 20 --cacert /workspace/ca.pem https://allowed.test/ 2>&1; echo \"R none \$?\""
out2=$TF_OUT
[[ $(sed -n 's/^R none \([0-9]*\)$/\1/p' <<<"$out2") -ne 0 ]] || die "allowed.test answered a launch without rules: $out2"
expect_egress_refusal "$out2" "CONNECT allowed.test:443 from a launch without rules"
[[ ! -s $TLS_LOG ]] || die "the TLS fake saw a refused request: $(cat "$TLS_LOG")"

tf_ok log --egress --json
rows=$(jq -c --arg c "openclaw:$name" '[.[] | select(.host == "denied.test" and .decision == "denied" and .caller == $c)]' <<<"$TF_OUT")
(($(jq length <<<"$rows") >= 2)) || die "no denied rows for denied.test with caller openclaw:$name: $TF_OUT"
jq -e --arg c "openclaw:$name-none" '[.[] | select(.host == "allowed.test" and .decision == "denied" and .caller == $c)] | length >= 1' \
  <<<"$TF_OUT" >/dev/null || die "no denied row for the launch without rules: $TF_OUT"
expect_nothing_left "$name"
expect_nothing_left "$name-none"
