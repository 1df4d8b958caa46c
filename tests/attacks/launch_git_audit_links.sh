#!/usr/bin/env bash
# Escape class (review 15b L2): the git audit after a launch (and after `run`: the same code) runs
# on the host, as the user, and read the git settings the agent left by following its links, as git
# would. The agent made sub/.git with commondir -> a root-only file outside the workspace (its first
# line was printed in the warning, on the user's terminal or in a CI log) and config.worktree -> a
# FIFO outside the workspace (the host opened it: a stand-in for a device whose open does something,
# e.g. a watchdog that reboots the machine when closed without its magic byte). Expected: the audit
# opens nothing but regular files (reached with O_PATH first), quotes no file a link points to, and
# still names both links.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
ids=$(launch_default_ids)
outside="$WORK/outside"
mkdir -m 0700 "$outside"
line="root:SHADOW-$(random_token 12):19000:0:99999:7:::"
printf '%s\nsecond\n' "$line" >"$outside/shadow"
chmod 0600 "$outside/shadow"
mkfifo "$outside/fifo"
marker="$WORK/fifo-opened"
# The FIFO's writer: its open returns (and it writes the marker) only when something opens the FIFO
# for reading.
(timeout 60 sh -c 'exec 3>"$1"; echo OPENED >"$2"' _ "$outside/fifo" "$marker") &
_pids_to_kill+=($!)

ws="$WORK/ws"
git init -q "$ws"
chown -R "$ids" "$ws"
tf launch --image "$TEST_IMAGE" --no-pull --name "tfa-$RUN_ID" --workspace "$ws" -- /bin/sh -c "
mkdir -p /workspace/sub/.git && ln -s '$outside/shadow' /workspace/sub/.git/commondir &&
ln -s '$outside/fifo' /workspace/sub/.git/config.worktree && echo planted"
expect_contains "$TF_OUT" planted
sleep 1
[[ ! -e $marker ]] || die "the audit opened a FIFO outside the workspace that the agent linked to"
expect_not_contains "$TF_ERR" "SHADOW-" "the warning quoted a root-only file outside the workspace"
expect_contains "$TF_ERR" "$ws/sub/.git/commondir: a symbolic link to $outside/shadow, made during the run"
expect_contains "$TF_ERR" "$ws/sub/.git/config.worktree: a symbolic link to $outside/fifo, written during the run (git reads what it points to: read it yourself)"
expect_nothing_left "tfa-$RUN_ID"
