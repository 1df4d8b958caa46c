#!/usr/bin/env bash
# Escape class: a link planted in the harness home for a later run's host relay. Without the Linux
# sandbox (--no-sandbox; always on macOS) `run` starts tokfence-relay on the host with
# --ready-file <harness home>/.relay-ready, and the relay writes <ready>.tmp<its pid> by name
# (ofstream: follows links, truncates), then renames it. The harness home is writable from inside
# every sandboxed run of the same program: a hostile agent sprays symlinks at every
# .relay-ready.tmp<pid> (pid_max names, under a second), and the next unsandboxed run's relay, a
# tokfence process outside any fence, truncates and overwrites the link's target: any file of the
# user (a start-up file, the vault).
# The plant is shown to land (the links exist after the sandboxed run); the later run must leave
# the target untouched.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
PID_MAX=$(cat /proc/sys/kernel/pid_max)
((PID_MAX <= 4194304)) || skip "pid_max $PID_MAX too large to spray in a test"

attack() {
  principal_setup "$1"
  local victim="$P_HOME/.bashrc"
  printf '# the user'"'"'s own start-up file\n' >"$victim"
  [[ $P_MODE == user ]] && chown "$USER_ID:$USER_ID" "$victim"
  local before
  before=$(sha256sum <"$victim")

  log "[$P_MODE] a sandboxed agent plants links at every .relay-ready.tmp<pid> in its harness home"
  ptf run codex --command /usr/bin/python3 --workdir "$P_PROJECT" -- -c '
import os, sys
home, target, pid_max = os.path.dirname(os.environ["CODEX_HOME"]), sys.argv[1], int(sys.argv[2])
n = 0
for pid in range(1, pid_max + 1):
    try:
        os.symlink(target, f"{home}/.relay-ready.tmp{pid}")
        n += 1
    except OSError:
        pass
print("planted", n)' "$victim" "$PID_MAX"
  expect_eq "$RC" 0 "the planting run failed: $ERR"
  log "[$P_MODE] $OUT"
  local planted
  planted=$(find "$P_TFHOME/harness/codex" -maxdepth 1 -name '.relay-ready.tmp*' -type l | wc -l)
  ((planted > 0)) || die "control: no link landed in the harness home (the plant is the attack's first half)"
  expect_eq "$(sha256sum <"$victim")" "$before" "the sandboxed run itself changed $victim"

  log "[$P_MODE] later, a run without the sandbox: its host relay must not write through them"
  ptf run codex --no-sandbox --command /bin/true --workdir "$P_PROJECT"
  expect_eq "$RC" 0 "the --no-sandbox run failed: $ERR"
  if [[ $(sha256sum <"$victim") != "$before" ]]; then
    die "the host relay wrote through a planted link: $victim now holds: $(head -c 200 "$victim")"
  fi
}

for_each_principal attack
