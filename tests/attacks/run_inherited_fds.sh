#!/usr/bin/env bash
# Escape class: descriptors inherited from the user's shell. `exec 7<vault.enc; tokfence run ...`
# handed the open file to the agent (/proc/self/fd/7, or `cat <&7`), and an inherited directory
# descriptor is worse: /proc/self/fd/N/<name> walks the real directory behind every mount that
# hides it. tokfence now closes everything above stderr before the relay, the agent and the
# --no-sandbox child start.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

attack() {
  principal_setup "$1"
  local secret="$P_BASE/secret.txt"
  printf 'inherited %s\n' "$CANARY" >"$secret"
  chmod 600 "$secret"
  [[ $P_MODE == user ]] && chown "$USER_ID" "$secret"

  log "[$P_MODE] unprotected: a child spawned without closing descriptors reads fd 7 and fd 8"
  # The canary goes through a pipe to grep, never into a file the scan would flag.
  as_principal bash -c "exec 7<'$secret'; cat /proc/self/fd/7" | grep -qF "$CANARY" ||
    die "control: a plain child cannot read an inherited fd 7"
  as_principal bash -c "exec 8<'$P_TFHOME'; test -r /proc/self/fd/8/config.toml" ||
    die "control: a plain child cannot read the tokfence home through an inherited directory fd"

  log "[$P_MODE] sandboxed: fd 7 (the file) and fd 8 (TOKFENCE_HOME) are gone"
  TRUN_PRE="exec 7<'$secret'; exec 8<'$P_TFHOME';" prun -- read /proc/self/fd/7
  expect_eq "$RC" 1 "inherited file readable in the sandbox: $OUT"
  TRUN_PRE="exec 7<'$secret'; exec 8<'$P_TFHOME';" prun -- read /proc/self/fd/8/config.toml
  expect_eq "$RC" 1 "tokfence home readable through an inherited directory fd: $OUT"
  TRUN_PRE="exec 7<'$secret'; exec 8<'$P_TFHOME';" \
    ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c 'ls -l /proc/self/fd/ /proc/1/fd/ 2>&1; cat <&7 && echo READ-FD7'
  expect_not_contains "$OUT" "READ-FD7" "cat <&7 read the inherited file"
  expect_not_contains "$OUT" "secret.txt" "fd 7 still open somewhere in the sandbox"

  log "[$P_MODE] --no-sandbox: the unconfined child does not inherit them either"
  TRUN_PRE="exec 7<'$secret';" ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- read /proc/self/fd/7
  expect_eq "$RC" 1 "inherited file readable with --no-sandbox: $OUT"
  rm -f "$secret"  # holds the canary: the artifact scan would flag it
}

for_each_principal attack
