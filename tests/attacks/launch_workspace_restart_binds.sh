#!/usr/bin/env bash
# Escape class (review 15b L1): `launch --detach --workspace REPO` of a repository with a submodule.
# launch binds .git/modules/lib/{config,hooks} read-only over themselves, by host path, and the
# engine resolves that path again at every start: the restart policy's restart after the
# container's own exit, a reboot, `launch restart`. The container renamed .git/modules aside (a
# directory that only holds mount points can be renamed), planted .git/modules/lib/config as a link
# to a host file and exited; at the restart the engine followed the link and mounted the host file
# into the container (another launch's session token, the user's own engine socket). Expected:
# every directory between .git and a protected entry is a mount point too, so nothing on the path
# can be renamed, and after the restart the container reads the submodule's own config.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
CONTAINER_IDS=$(launch_default_ids)

# The host file the attack wants: readable by the container's uid, but in a directory nothing of
# the container reaches.
secret_dir="$WORK/private"
mkdir -m 0700 "$secret_dir"
marker="host-only-$(random_token 16)"
echo "$marker" >"$secret_dir/target"
chown "$CONTAINER_IDS" "$secret_dir/target"
chmod 0600 "$secret_dir/target"

ws="$WORK/ws"
git init -q "$ws"
mkdir -p "$ws/.git/modules/lib/hooks"
echo 'ref: refs/heads/main' >"$ws/.git/modules/lib/HEAD"
printf '[core]\n\tbare = false\n' >"$ws/.git/modules/lib/config"
chown -R "$CONTAINER_IDS" "$ws"

attack=$(cat <<EOS
w=/workspace
if [ -e \$w/.planted ]; then
  echo restarted >> \$w/trace
  cat \$w/.git/modules/lib/config >> \$w/loot 2>> \$w/trace
  sleep 600
fi
mv \$w/.git/modules \$w/.git/modules.aside; echo "rename \$?" >> \$w/trace
mkdir -p \$w/.git/modules/lib 2>/dev/null
ln -s "$secret_dir/target" \$w/.git/modules/lib/config 2>> \$w/trace
touch \$w/.planted
# Up long enough for launch --detach to see it start (an exit at once is a failed launch); then
# the exit the restart policy answers.
sleep 5
exit 3
EOS
)
name="tfr-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$ws" --detach -- /bin/sh -c "$attack"
[[ $TF_RC -eq 0 ]] || die "detached launch: $TF_ERR"
wait_until "grep -q restarted '$ws/trace'" 60 || die "the container was not restarted: $(cat "$ws/trace" 2>&1)"
wait_until "test -s '$ws/loot'" 10 || true
log "trace: $(tr '\n' ' ' <"$ws/trace")"
loot=$(cat "$ws/loot" 2>/dev/null || true)
tf launch stop --name "$name"
! grep -qF "$marker" <<<"$loot" || die "after its restart the container read a host file through a planted link: $loot"
expect_contains "$(cat "$ws/trace")" "rename 1" "renaming .git/modules fails (a mount point)"
expect_contains "$loot" "bare = false" "the restarted container reads the submodule's own config"
expect_nothing_left "$name"
