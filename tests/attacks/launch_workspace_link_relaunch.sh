#!/usr/bin/env bash
# Escape class (review 15d L1): launch followed a symbolic link in --workspace. A second agent that
# writes a parent of the workspace (a fence given WS while this one is given WS/proj) replaces
# WS/proj with a link to another launch's state home; the relay's mount check (review 15c X1) then
# refuses the restart, and the user does what it says, `launch stop` and the same `launch` again,
# which mounted the victim's state home read-write as /workspace. Expected: a --workspace (and a
# run --workdir) reached through a symbolic link is refused, naming where it leads, and so is one
# inside or holding the tokfence home; nothing of the victim is read.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
tf launch --image "$TEST_IMAGE" --no-pull --name "tfv-$RUN_ID" --detach -- /bin/sh -c 'echo secret-history > $HOME/history.txt; sleep 600'
[[ $TF_RC -eq 0 ]] || die "victim launch: $TF_ERR"
victim_home="$TOKFENCE_HOME/openclaw/tfv-$RUN_ID/home"
wait_until "test -e '$victim_home/history.txt'" 20 || die "the victim wrote no history"

# What the other agent left: WS/proj is now a link to the victim's state home.
# (The other fence's workspace, and the link it made, are the container user's: only a link that
# nobody but root can change is taken, /home -> /var/home.)
ws="$WORK/ws"
CONTAINER_IDS=$(launch_default_ids)
mkdir -p "$ws"
ln -s "$victim_home" "$ws/proj"
chown -h "$CONTAINER_IDS" "$ws" "$ws/proj"
tf launch --image "$TEST_IMAGE" --no-pull --name "tfb-$RUN_ID" --workspace "$ws/proj" -- /bin/sh -c 'cat /workspace/history.txt; touch /workspace/written-by-b'
expect_eq "$TF_RC" 1 "launch with a --workspace that is a link"
expect_contains "$TF_ERR" "launch: --workspace: $ws/proj is reached through a symbolic link (it is $(realpath "$victim_home"))"
expect_not_contains "$TF_OUT" secret-history "the relaunched agent read the victim's state home"
[[ ! -e $victim_home/written-by-b ]] || die "the relaunched agent wrote into the victim's state home"
expect_nothing_left "tfb-$RUN_ID"

# A link on the way counts as much as the last one; and run --workdir is held to the same rule.
mkdir -p "$WORK/real/sub" && ln -s "$WORK/real" "$ws/via" && chown -h "$CONTAINER_IDS" "$ws/via"
tf launch --image "$TEST_IMAGE" --no-pull --name "tfc-$RUN_ID" --workspace "$ws/via/sub" -- /bin/true
expect_eq "$TF_RC" 1 "launch with a link in the middle of --workspace"
expect_contains "$TF_ERR" "is reached through a symbolic link"
tf launch --image "$TEST_IMAGE" --no-pull --name "tfc-$RUN_ID" --workspace "$(dirname "$TOKFENCE_HOME")" -- /bin/true
expect_eq "$TF_RC" 1 "launch with a --workspace that holds the tokfence home"
expect_contains "$TF_ERR" "holds the tokfence home"
tf launch stop --name "tfv-$RUN_ID"
