#!/usr/bin/env bash
# The kill switch cuts egress too: inside a `tokfence run`, a download through an allowed tunnel
# (GET /slow: 60 KiB over 30 s) is cut when the host runs `tokfence kill` (curl fails with the
# transfer incomplete); while killed, a new connection to the allowed host is refused; after
# `tokfence unkill` it answers again.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_run_setup

ca="$TLS_DIR/ca.pem"
script=$(cat <<EOF
curl -sS -o /dev/null --max-time 60 --cacert $ca https://allowed.test/slow; echo "R slow \$?"
curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert $ca https://allowed.test/; echo " R while_killed \$?"
echo READY
i=0; while [ ! -e go ] && [ \$i -lt 300 ]; do sleep 0.1; i=\$((i+1)); done
curl -sS --max-time 20 --cacert $ca https://allowed.test/; echo " R after_unkill \$?"
EOF
)
"$TOKFENCE_BIN" run codex --command /bin/sh --workdir "$PROJECT" --allow allowed.test -- -c "$script" \
  >"$WORK/out/kill.stdout" 2>"$WORK/out/kill.stderr" </dev/null &
run_pid=$!
wait_until "grep -q '^GET allowed.test /slow' '$TLS_LOG'" 30
sleep 1  # a few KiB are through the tunnel
tf_ok kill
wait_until "grep -q READY '$WORK/out/kill.stdout'" 30
tf_ok unkill
touch "$PROJECT/go"
wait "$run_pid" || die "the run failed: $(cat "$WORK/out/kill.stderr")"
out=$(cat "$WORK/out/kill.stdout")
log "inside: $(tr '\n' ' ' <<<"$out")"
result() { sed -n "s/.*R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }
slow=$(result slow)
[[ -n $slow && $slow -ne 0 ]] || die "the live tunnel was not cut by 'tokfence kill' (curl exit '$slow'): $out"
wait_until "grep -q '^CUT allowed.test /slow' '$TLS_LOG'" 40
while_killed=$(result while_killed)
[[ -n $while_killed && $while_killed -ne 0 ]] || die "a new connection succeeded while killed: $out"
expect_eq "$(result after_unkill)" 0 "allowed.test after 'tokfence unkill': $out $(cat "$WORK/out/kill.stderr")"
expect_contains "$out" "hello from allowed.test over tls"
