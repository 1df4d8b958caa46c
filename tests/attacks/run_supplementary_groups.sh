#!/usr/bin/env bash
# Escape class: supplementary groups carried into `tokfence run`. Credentials survive clone and
# the user namespace: a group of the caller's (docker, disk, adm, a project group) kept opening
# group-owned files inside, even with no capabilities. Run as root, tokfence now clones the sandbox
# with no supplementary groups. (An ordinary user cannot drop them: the kernel forbids it in a
# user namespace; docs/SANDBOX.md says what that leaves: group-owned sockets stay covered by the
# seccomp filter, group-readable files do not.)
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
[[ $(id -u) -eq 0 ]] || skip "needs root (only root can hold groups that tokfence drops)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
GROUP=4321
principal_setup root
# Readable by group $GROUP only: not by its owner (another uid), not by others.
printf 'group-only\n' >"$P_BASE/group-only.txt"
chown "12345:$GROUP" "$P_BASE/group-only.txt"
chmod 040 "$P_BASE/group-only.txt"
with_group() { setpriv --groups "$GROUP" "$@"; }

log "unprotected: root with no capabilities (like the sandbox) but group $GROUP reads the file"
with_group setpriv --bounding-set=-all --inh-caps=-all cat "$P_BASE/group-only.txt" >/dev/null ||
  die "control: group $GROUP cannot read its own file"
setpriv --clear-groups --bounding-set=-all --inh-caps=-all cat "$P_BASE/group-only.txt" >/dev/null 2>&1 &&
  die "control: the file is readable without the group"

log "sandboxed: the run started by root with group $GROUP has no supplementary groups"
_ptf_seq=$((_ptf_seq + 1))
set +e
with_group env -i HOME="$P_HOME" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$P_TFHOME" \
  TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" "$TOKFENCE_BIN" run codex --command /bin/sh \
  --workdir "$P_PROJECT" -- -c "grep '^Groups:' /proc/self/status; cat '$P_BASE/group-only.txt' && echo READ" \
  </dev/null >"$WORK/out/groups.out" 2>"$WORK/out/groups.err"
set -e
OUT=$(cat "$WORK/out/groups.out")
expect_contains "$OUT" "Groups:" "no status line: $OUT $(cat "$WORK/out/groups.err")"
# An unmapped group shows as the overflow gid (65534) inside: the line must be empty.
expect_eq "$(grep '^Groups:' <<<"$OUT" | tr -d '[:space:]')" "Groups:" "supplementary groups inside the sandbox"
expect_not_contains "$OUT" "READ" "group-only file read inside the sandbox"
