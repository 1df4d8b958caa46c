#!/usr/bin/env bash
# `tokfence run` supervision: the child's exit code comes back, SIGINT/SIGTERM/SIGHUP reach it,
# killing the wrapper (even with SIGKILL) takes the child's whole process tree with it, and a
# terminal is passed through as a pseudo-terminal with its window size (and size changes).
source "$(dirname "$0")/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon
mkdir -p "$WORK/project"
cd "$WORK/project"

log "exit codes"
tf run codex --command /bin/sh -- -c 'exit 42'
expect_eq "$TF_RC" "42" "exit code"
tf run codex --command /bin/sh -- -c 'exit 0'
expect_eq "$TF_RC" "0" "exit code 0"
tf run codex --command /bin/sh -- -c 'kill -TERM $$'
expect_eq "$TF_RC" "143" "child killed by SIGTERM"
tf codex --command /bin/sh -- -c 'exit 3'
expect_eq "$TF_RC" "3" "shorthand 'tokfence codex'"

log "signals are forwarded"
for sig in INT TERM HUP; do
  rm -f ready
  "$TOKFENCE_BIN" run codex --command /bin/bash -- -c "trap 'exit 7' $sig; touch ready; while :; do sleep 0.05; done" \
    >"$WORK/out/sig-$sig.out" 2>"$WORK/out/sig-$sig.err" </dev/null &
  pid=$!
  wait_until "test -e ready"
  kill -s "$sig" "$pid"
  set +e; wait "$pid"; rc=$?; set -e
  expect_eq "$rc" "7" "SIG$sig forwarded to the child"
done

log "killing the wrapper leaves no process behind"
for how in TERM KILL; do
  marker="tfrunmarker$how$(random_token 10)"
  rm -f ready
  "$TOKFENCE_BIN" run codex --command /bin/bash -- -c \
    "(exec -a ${marker}-grandchild sleep 300) & (setsid bash -c 'exec -a ${marker}-detached sleep 300' &) ; touch ready; exec -a ${marker}-child sleep 300" \
    >"$WORK/out/kill-$how.out" 2>"$WORK/out/kill-$how.err" </dev/null &
  pid=$!
  wait_until "test -e ready && test \$(pgrep -f $marker | wc -l) -ge 3"
  kill -s "$how" "$pid"
  set +e; wait "$pid"; set -e
  wait_until "! pgrep -f $marker"
done

log "the next run closes the socket a killed run left behind"
tf run codex --command /bin/true
expect_eq "$TF_RC" "0" "run after a killed run"
expect_eq "$(find "$TOKFENCE_HOME/sockets" -maxdepth 1 -name 'run-*' | wc -l)" "0" "stale per-run socket dirs"

log "a terminal is passed through as a pseudo-terminal, with its size and size changes"
command -v script >/dev/null || die "script(1) is needed (bsdutils)"
cat >"$WORK/tty-test.sh" <<EOF
stty cols 123 rows 45
"$TOKFENCE_BIN" run codex --command /bin/sh -- -c 'tty; stty size; touch ready; while [ ! -e go ]; do sleep 0.05; done; stty size' </dev/tty &
p=\$!
while [ ! -e ready ]; do sleep 0.05; done
stty cols 99 rows 20
kill -WINCH \$p
touch go
wait \$p
echo "rc=\$?"
EOF
rm -f ready go
out=$(timeout 60 script -qec "bash '$WORK/tty-test.sh'" /dev/null </dev/null | tr -d '\r')
printf '%s\n' "$out" >"$WORK/out/tty.out"
expect_contains "$out" "/dev/pts/" "child has a terminal"
expect_contains "$out" "45 123" "window size passed on"
expect_contains "$out" "20 99" "window size change forwarded"
expect_contains "$out" "rc=0"
