#!/usr/bin/env bash
# Escape class (review 15c X1): two launches whose workspaces overlap. A detached launch B has
# --workspace WS/proj (and another WS/repo, a repository whose .git/config is bound read-only); a
# launch A has --workspace WS. In A's mount namespace B's workspace and its git binds are plain
# directories, so A renames them aside and puts links to host paths in their place. The engine
# resolves B's bind sources by host path again at B's next start (launch restart, the restart
# policy, a reboot) and mounted the links' targets: a third launch's state home as B's /workspace
# (read and written), its openclaw.json (session token) as B's .git/config.
# Expected: B's relay (the container's first process) finds that a mount point is not the inode
# launch recorded and exits before the agent runs; nothing of the victim is read or written.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
CONTAINER_IDS=$(launch_default_ids)

tf launch --image "$TEST_IMAGE" --no-pull --name "tfv-$RUN_ID" --detach -- /bin/sh -c 'echo secret-history > $HOME/history.txt; sleep 600'
[[ $TF_RC -eq 0 ]] || die "victim launch: $TF_ERR"
victim_cfg="$TOKFENCE_HOME/openclaw/tfv-$RUN_ID/openclaw.json"
victim_home="$TOKFENCE_HOME/openclaw/tfv-$RUN_ID/home"
wait_until "test -e '$victim_home/history.txt'" 20 || die "the victim wrote no history"

ws="$WORK/ws"
mkdir -p "$ws/proj"
git init -q "$ws/repo"
chown -R "$CONTAINER_IDS" "$ws"
b_cmd='sleep 600'
for b in proj repo; do
  tf launch --image "$TEST_IMAGE" --no-pull --name "tfb-$b-$RUN_ID" --workspace "$ws/$b" --detach -- /bin/sh -c "$b_cmd"
  [[ $TF_RC -eq 0 ]] || die "launch with --workspace $ws/$b: $TF_ERR"
done

attack=$(cat <<EOS
w=/workspace
mv \$w/proj \$w/proj.aside && ln -s "$victim_home" \$w/proj && echo proj-swapped
mv \$w/repo \$w/repo.aside && mkdir -p \$w/repo/.git/hooks && ln -s "$victim_cfg" \$w/repo/.git/config && echo repo-swapped
EOS
)
tf launch --image "$TEST_IMAGE" --no-pull --name "tfa-$RUN_ID" --workspace "$ws" -- /bin/sh -c "$attack"
expect_contains "$TF_OUT" proj-swapped "the attacking launch swapped B's workspace (plain directories in its view)"
expect_contains "$TF_OUT" repo-swapped "the attacking launch swapped B's repository"

for b in proj repo; do
  tf launch restart --name "tfb-$b-$RUN_ID"
  expect_eq "$TF_RC" 1 "launch restart of B ($b) after its sources were replaced"
  expect_contains "$TF_ERR" "did not stay up after the restart" "launch restart says so"
done
for b in proj repo; do
  seen=$(docker exec "tfb-$b-$RUN_ID" /bin/sh -c 'cat /workspace/history.txt /workspace/.git/config; touch /workspace/written-by-b' 2>&1 || true)
  ! grep -q secret-history <<<"$seen" || die "B ($b) read the victim's state home after its restart"
  ! grep -q '"apiKey"' <<<"$seen" || die "B ($b) read the victim's openclaw.json after its restart"
  logs=$(docker logs "tfb-$b-$RUN_ID" 2>&1 || true)
  expect_contains "$logs" "tokfence-relay: refused: /workspace" "B ($b)'s relay names the replaced mount"
done
[[ ! -e $victim_home/written-by-b ]] || die "B wrote into the victim's state home"
for n in "tfb-proj-$RUN_ID" "tfb-repo-$RUN_ID" "tfv-$RUN_ID"; do tf launch stop --name "$n" >/dev/null 2>&1 || true; done
