#!/usr/bin/env bash
# Escape class: the host's memory through the fence's private /tmp and /dev/shm (review 14d M1).
# They are tmpfs mounts, whose pages are the host's shared memory, not the agent's: with tmpfs's
# default size (half of RAM each) an agent could fill both with all of the host's memory, and the
# OOM killer would pick host processes, not the agent. Expected: each is limited to a quarter of
# RAM (size=25%), so together they stay at half. Control: a tmpfs mounted with the default size
# in the same way shows half of RAM (so the check can fail).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
quarter_kb=$((mem_kb / 4))

attack() {
  principal_setup "$1"
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c 'df -k /tmp /dev/shm | awk "NR > 1 {print \$6, \$2}"'
  expect_eq "$RC" 0 "df in the sandbox: $OUT $ERR"
  log "[$P_MODE] sizes (KiB): $(tr '\n' ' ' <<<"$OUT"), MemTotal $mem_kb"
  for mount in /tmp /dev/shm; do
    size=$(awk -v m="$mount" '$1 == m {print $2}' <<<"$OUT")
    [[ -n $size ]] || die "no size for $mount in: $OUT"
    # tmpfs rounds to pages: allow 1 %.
    ((size <= quarter_kb + quarter_kb / 100)) || die "$mount in the sandbox holds $size KiB, more than a quarter of RAM ($quarter_kb KiB)"
  done
}

# The control: tmpfs's default (what the sandbox mounted before) is half of RAM.
control=$(unshare -m sh -c 'mount -t tmpfs -o mode=1777 tmpfs /mnt && df -k /mnt | awk "NR > 1 {print \$2}"' 2>/dev/null || true)
if [[ -n $control ]]; then
  ((control > quarter_kb + quarter_kb / 100)) || die "control: a default tmpfs holds only $control KiB"
  log "control: a tmpfs of the default size holds $control KiB"
fi

for_each_principal attack
