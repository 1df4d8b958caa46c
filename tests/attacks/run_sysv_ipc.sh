#!/usr/bin/env bash
# Escape class: System V IPC from `tokfence run`. SysV shared memory, semaphores and message queues
# are named by a number, not a path: no hidden mount and no Landlock rule covers them, only an IPC
# namespace. The sandbox was cloned without CLONE_NEWIPC, so the agent listed the user's own
# mode-0600 segments in /proc/sysvipc/shm (X11 MIT-SHM image buffers: screen contents; databases),
# attached them, read them and overwrote them (review 11a F2). Now the sandbox has IPC, UTS and
# cgroup namespaces of its own: the host's segments do not exist inside.
#
# Unprotected first: the same probe with --no-sandbox reads the segment.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

attack() {
  principal_setup "$1"
  local secret="host-only-$(random_token 20)" id
  # A segment of the principal's, made outside the fence, as the user's other programs do.
  id=$(as_principal "$PROBE" shm-create "$secret")
  [[ $id =~ ^[0-9]+$ ]] || die "[$P_MODE] shm-create: $id"
  EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }as_user_or_root '$P_MODE' '$PROBE' shm-rm $id >/dev/null 2>&1 || true"
  log "[$P_MODE] host segment $id holds the secret (mode 0600)"

  log "[$P_MODE] unprotected: --no-sandbox attaches and reads it"
  ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- shm-read "$id"
  expect_eq "$RC" 0 "control: --no-sandbox shm-read: $OUT $ERR"
  expect_contains "$OUT" "$secret"

  log "[$P_MODE] sandboxed: the segment is neither listed nor attachable, reading or writing"
  prun -- shm-read "$id"
  expect_eq "$RC" 1 "shm-read of a host segment inside the fence: $OUT $ERR"
  expect_not_contains "$OUT" "$secret" "the host segment's text was read inside the fence"
  prun -- shm-write "$id" overwritten-from-inside-the-fence
  expect_eq "$RC" 1 "shm-write of a host segment inside the fence: $OUT $ERR"
  expect_contains "$(as_principal "$PROBE" shm-read "$id")" "$secret"
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c 'cat /proc/sysvipc/shm'
  expect_eq "$RC" 0 "cat /proc/sysvipc/shm inside: $ERR"
  expect_not_contains "$OUT" "$secret"
  [[ -z $(awk -v id="$id" 'NR > 1 && $2 == id' <<<"$OUT") ]] || die "[$P_MODE] segment $id listed inside: $OUT"

  log "[$P_MODE] IPC, UTS and cgroup namespaces differ from the host's; a segment made inside works"
  local outside inside
  outside=$(as_principal readlink /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/cgroup | tr '\n' ' ')
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c \
    'readlink /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/cgroup | tr "\n" " "; echo; id=$("$0" shm-create inner-text) && "$0" shm-read "$id"' "$PROBE"
  expect_eq "$RC" 0 "namespaces and an inner segment: $OUT $ERR"
  inside=$(head -1 <<<"$OUT")
  for ns in ipc uts cgroup; do
    local o i
    o=$(grep -o "$ns:\[[0-9]*\]" <<<"$outside")
    i=$(grep -o "$ns:\[[0-9]*\]" <<<"$inside")
    [[ -n $o && -n $i ]] || die "[$P_MODE] $ns namespace not read: outside '$outside' inside '$inside'"
    [[ $o != "$i" ]] || die "[$P_MODE] the sandbox shares the host's $ns namespace ($i)"
  done
  expect_contains "$OUT" "inner-text"
}

as_user_or_root() {
  local mode=$1
  shift
  if [[ $mode == user ]]; then as_user "$@"; else "$@"; fi
}

for_each_principal attack
