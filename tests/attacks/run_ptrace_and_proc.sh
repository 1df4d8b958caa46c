#!/usr/bin/env bash
# Escape class: reaching into other processes from `tokfence run`. The agent tries ptrace,
# process_vm_readv and /proc/<pid>/mem on the relay (the sandbox's PID 1: unfiltered, it may
# create Unix sockets, so taking it over would undo the seccomp filter), on the tokfence CLI that
# started it, and on the daemon (which holds the keys); and tries to see host processes in /proc.
# The PID namespace hides host processes; the seccomp filter refuses ptrace/process_vm_*; the
# relay makes itself non-dumpable, so /proc/1/mem and /proc/1/fd need a capability nobody inside
# has.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
RELAY="$BUILD_DIR/bin/tokfence-relay"
# Root inside a fresh user namespace has every capability there; the sandbox has none.
NOCAPS="setpriv --bounding-set=-all --inh-caps=-all"

attack() {
  principal_setup "$1"

  log "[$P_MODE] unprotected: an agent under a relay started without --agent-seccomp takes the relay over"
  # The relay as PID 1 of a PID namespace with no capabilities, as in the sandbox, but without
  # the agent's filter.
  as_principal unshare --user --map-root-user --pid --fork --mount-proc $NOCAPS "$RELAY" -- "$PROBE" ptrace 1 \
    >"$WORK/out/$P_MODE-relay-open.out" 2>&1 || die "control: ptrace of an unprotected relay failed: $(cat "$WORK/out/$P_MODE-relay-open.out")"
  as_principal unshare --user --map-root-user --pid --fork --mount-proc $NOCAPS "$RELAY" -- "$PROBE" proc-mem 1 \
    >"$WORK/out/$P_MODE-relay-open-mem.out" 2>&1 || die "control: /proc/1/mem of an unprotected relay: $(cat "$WORK/out/$P_MODE-relay-open-mem.out")"
  log "[$P_MODE] the same relay with --agent-seccomp refuses"
  for what in ptrace vm-read proc-mem; do
    if as_principal unshare --user --map-root-user --pid --fork --mount-proc $NOCAPS "$RELAY" --agent-seccomp -- "$PROBE" "$what" 1 \
      >"$WORK/out/$P_MODE-relay-$what.out" 2>&1; then
      die "$what on a relay with --agent-seccomp: $(cat "$WORK/out/$P_MODE-relay-$what.out")"
    fi
  done

  log "[$P_MODE] unprotected: --no-sandbox can ptrace the tokfence CLI that started it"
  TRUN_PRE="echo \$\$ >'$P_PROJECT/cli.pid';" ptf run codex --no-sandbox --command /bin/sh --workdir "$P_PROJECT" -- \
    -c '"$0" ptrace "$(cat cli.pid)"' "$PROBE"
  expect_eq "$RC" 0 "control: ptrace of the CLI with --no-sandbox: $OUT $ERR"

  log "[$P_MODE] sandboxed: the relay (PID 1), the CLI and the daemon are out of reach"
  for what in ptrace vm-read proc-mem; do
    prun -- "$what" 1
    expect_eq "$RC" 1 "$what of the relay from the sandbox: $OUT"
  done
  prun -- read /proc/1/environ
  expect_eq "$RC" 1 "the relay's environment from the sandbox: $OUT"
  TRUN_PRE="echo \$\$ >'$P_PROJECT/cli.pid';" ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- \
    -c 'pid=$(cat cli.pid); for w in ptrace vm-read proc-mem; do "$0" $w "$pid"; done; "$0" read /proc/$pid/cmdline' "$PROBE"
  expect_not_contains "$OUT" "ok:" "the tokfence CLI reachable from the sandbox"
  for what in ptrace vm-read proc-mem; do
    prun -- "$what" "$P_DAEMON_PID"
    expect_eq "$RC" 1 "$what of the daemon ($P_DAEMON_PID) from the sandbox: $OUT"
  done
  prun -- read "/proc/$P_DAEMON_PID/cmdline"
  expect_eq "$RC" 1 "the daemon's /proc entry visible from the sandbox"
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c 'ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\n" " "'
  expect_eq "$RC" 0 "ls /proc: $ERR"
  local pids
  pids=$(wc -w <<<"$OUT")
  # The relay and this pipeline (sh, ls, grep, sort, tr): nothing of the host.
  ((pids <= 10)) || die "the sandbox sees $pids processes: $OUT"
  log "[$P_MODE] processes visible inside: $OUT"
}

for_each_principal attack
