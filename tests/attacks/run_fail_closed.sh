#!/usr/bin/env bash
# Escape class: running unconfined because part of the sandbox failed to start. Whatever step
# fails, the agent must never run, the exit status must be non-zero and the message must say what
# failed. Two real failures, no test hooks in the product:
#  - the sandbox itself cannot start: a tokfence-relay that cannot be exec'd inside (a script: the
#    sandbox execs the relay from a close-on-exec descriptor, which no interpreter can reopen);
#  - the agent's seccomp filter cannot be installed: tokfence runs where seccomp() and
#    prctl(PR_SET_SECCOMP) fail (tokfence-probe deny-seccomp), and the relay refuses to start the
#    agent. Without --agent-seccomp the same relay does start it: the refusal is what protects.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
RELAY="$BUILD_DIR/bin/tokfence-relay"

attack() {
  principal_setup "$1"
  local marker="$P_PROJECT/agent-ran" bin="$P_BASE/bin"
  mkdir -p "$bin"
  cp "$TOKFENCE_BIN" "$bin/tokfence"

  log "[$P_MODE] a copy of tokfence with the real relay next to it runs the agent (the set-up works)"
  cp "$RELAY" "$bin/tokfence-relay"
  [[ $P_MODE == user ]] && chown -R "$USER_ID:$USER_ID" "$bin"
  TOKFENCE_BIN="$bin/tokfence" ptf run codex --command /bin/touch --workdir "$P_PROJECT" -- "$marker"
  expect_eq "$RC" 0 "control run: $ERR"
  [[ -e $marker ]] || die "control: the agent did not run"
  rm -f "$marker"

  log "[$P_MODE] the relay cannot start inside the sandbox: the agent never runs"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$RELAY" >"$bin/tokfence-relay"
  chmod 755 "$bin/tokfence-relay"
  TOKFENCE_BIN="$bin/tokfence" ptf run codex --command /bin/touch --workdir "$P_PROJECT" -- "$marker"
  [[ $RC -ne 0 ]] || die "a failed sandbox start exited 0"
  expect_contains "$ERR" "tokfence: error: sandbox: exec tokfence-relay:"
  [[ ! -e $marker ]] || die "the agent ran although the sandbox did not start"

  log "[$P_MODE] deny-seccomp really blocks seccomp, and lets an unfiltered relay start its command"
  as_principal "$PROBE" deny-seccomp "$RELAY" --agent-seccomp -- /bin/touch "$marker" 2>"$WORK/out/$P_MODE-relay.err" &&
    die "the relay started its command although the filter could not be installed"
  expect_contains "$(cat "$WORK/out/$P_MODE-relay.err")" \
    "tokfence-relay: error: agent seccomp filter: cannot install: Operation not permitted: not starting /bin/touch"
  [[ ! -e $marker ]] || die "the relay ran its command without the filter"
  as_principal "$PROBE" deny-seccomp "$RELAY" -- /bin/touch "$marker" ||
    die "control: a relay without --agent-seccomp under deny-seccomp did not run its command"
  [[ -e $marker ]] || die "control: the unfiltered command did not run"
  rm -f "$marker"

  log "[$P_MODE] tokfence run where the filter cannot be installed: the agent never runs"
  TRUN_PRE="" ptf_wrapped
  [[ $RC -ne 0 ]] || die "run without a possible filter exited 0"
  expect_contains "$ERR" "agent seccomp filter: cannot install"
  [[ ! -e $marker ]] || die "the agent ran without its seccomp filter"
}

# tokfence run under deny-seccomp, as the principal; sets RC OUT ERR.
ptf_wrapped() {
  local o="$WORK/out/$P_MODE-denied.stdout" e="$WORK/out/$P_MODE-denied.stderr"
  set +e
  as_principal env -i HOME="$P_HOME" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$P_TFHOME" \
    TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" TOKFENCE_TEST_BACKEND=file \
    "$PROBE" deny-seccomp "$TOKFENCE_BIN" run codex --command /bin/touch --workdir "$P_PROJECT" -- \
    "$P_PROJECT/agent-ran" </dev/null >"$o" 2>"$e"
  RC=$?
  set -e
  OUT=$(cat "$o")
  ERR=$(cat "$e")
}

for_each_principal attack
