#!/usr/bin/env bash
# Escape class: `launch --workspace DIR` on a git repository. The container may write DIR, but
# .git/hooks/* and .git/config are code the HOST runs the next time the user runs git there (a
# pre-commit hook; core.fsmonitor even on `git status`). launch binds .git/hooks and .git/config
# read-only over themselves (and .git over itself, so it cannot be renamed away); a .git, .git/hooks
# or .git/config that is a symlink makes launch refuse. The same holds for a submodule's git
# directory (.git/modules/<name>/config and hooks: `git status` in the project runs git there).
# What cannot be blocked (a commondir, a repository of the agent's own with a gitlink in the
# index) is named when the launch ends (sandbox/git_settings.hpp).
#
# Unprotected set-up first: the same script in a container given DIR the plain way (read-write)
# DOES write the hook and the config.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon

# A repository the container user owns, as a workspace the agent may write must be (as root: the
# id no host account has that launch picks, docs/LAUNCH.md).
CONTAINER_IDS=$(launch_default_ids)
new_repo() {
  rm -rf "$1"
  git init -q "$1"
  # A submodule's git directory, as `git submodule add` leaves it.
  mkdir -p "$1/.git/modules/lib/hooks"
  echo 'ref: refs/heads/main' >"$1/.git/modules/lib/HEAD"
  printf '[core]\n\tbare = false\n' >"$1/.git/modules/lib/config"
  chown -R "$CONTAINER_IDS" "$1"
}

# Every step prints "T <step> <exit status>"; 0 = it worked.
attack=$(cat <<'EOF'
w=/workspace
printf '#!/bin/sh\necho PWNED\n' > $w/.git/hooks/pre-commit; echo "T hook $?"
printf '[core]\n\tfsmonitor = echo PWNED\n' >> $w/.git/config; echo "T config $?"
printf '[core]\n\tfsmonitor = echo PWNED\n' >> $w/.git/modules/lib/config; echo "T submodule_config $?"
echo x > $w/.git/modules/lib/hooks/post-checkout; echo "T submodule_hook $?"
mv $w/.git/config $w/.git/config.old; echo "T rename_config $?"
mv $w/.git/hooks $w/.git/hooks.old; echo "T rename_hooks $?"
mv $w/.git $w/.git-moved; echo "T rename_git $?"
rm -rf $w/.git 2>/dev/null; test -d $w/.git/hooks; echo "T remove_git $((1 - $?))"
echo data > $w/notes.txt; echo "T workspace_write $?"
echo x > $w/.git/scratch; echo "T git_dir_write $?"
echo /workspace/elsewhere > $w/.git/commondir; echo "T commondir $?"
mkdir -p $w/sub/.git && printf '[core]\n\tpager = echo PWNED\n' > $w/sub/.git/config; echo "T nested_repo $?"
mv $w/.git/modules/lib $w/.git/modules/lib.aside; echo "T rename_submodule_dir $?"
mv $w/.git/modules $w/.git/modules.aside; echo "T rename_modules $?"
EOF
)
step() { sed -n "s/^T $1 \([0-9]*\)\$/\1/p" <<<"$2" | tail -1; }

# --- unprotected
ws="$WORK/ws-plain"
new_repo "$ws"
out=$(docker run --rm --network none --user "$CONTAINER_IDS" --cap-drop ALL -v "$ws:/workspace" "$TEST_IMAGE" \
  /bin/sh -c "$attack" 2>&1) || true
expect_eq "$(step hook "$out")" 0 "unprotected: hook written: $out"
expect_eq "$(step config "$out")" 0 "unprotected: config written"
expect_eq "$(step submodule_config "$out")" 0 "unprotected: the submodule's config written"
# (the later steps moved it around: look for it anywhere)
[[ -n $(find "$ws" -name pre-commit -path '*hooks*') ]] || die "unprotected: no hook on the host"
log "unprotected: the container wrote .git/hooks/pre-commit and .git/config"

# --- tokfence launch --workspace
ws="$WORK/ws"
new_repo "$ws"
config_before=$(sha256sum <"$ws/.git/config")
git_inode=$(stat -c %i "$ws/.git")
tf launch --image "$TEST_IMAGE" --no-pull --name "tfg-$RUN_ID" --workspace "$ws" -- /bin/sh -c "$attack"
out="$TF_OUT"$'\n'"$TF_ERR"
# The directories between .git and a read-only entry are mount points too: renamed aside and
# replaced by links, the engine would mount the links' targets at the next start (review 15b L1,
# attack launch_workspace_restart_binds).
for s in hook config rename_config rename_hooks rename_git remove_git submodule_config submodule_hook \
  rename_submodule_dir rename_modules; do
  [[ -n $(step $s "$out") ]] || die "step $s did not run: $out"
  [[ $(step $s "$out") != 0 ]] || die "the container could $s in the workspace's .git: $out"
done
expect_eq "$(step workspace_write "$out")" 0 "the workspace itself stays writable"
expect_eq "$(step git_dir_write "$out")" 0 "the rest of .git stays writable (the agent can commit)"
# Known gap (docs/LAUNCH.md): .git/commondir redirects git past the read-only binds. Not blocked
# (git cannot be told to ignore it), but reported when the launch ends.
expect_eq "$(step commondir "$out")" 0 "commondir is writable (the documented gap)"
expect_eq "$(step nested_repo "$out")" 0 "a repository of the agent's own (the documented gap)"
expect_contains "$TF_ERR" "launch: warning: the agent left git settings or hooks that run programs"
expect_contains "$TF_ERR" "$ws/.git/commondir: written during the run: git reads the config and hooks of /workspace/elsewhere"
expect_contains "$TF_ERR" "$ws/sub/.git/config: written during the run; runs programs: core.pager"
[[ ! -e $ws/.git/hooks/pre-commit ]] || die "hook written on the host"
expect_eq "$(sha256sum <"$ws/.git/config")" "$config_before" ".git/config unchanged"
expect_eq "$(stat -c %i "$ws/.git")" "$git_inode" ".git is still the same directory"
[[ ! -e $ws/.git-moved ]] || die ".git was renamed"
expect_nothing_left "tfg-$RUN_ID"

# --- symlinks the container (of an earlier run) or anyone may have planted: launch refuses
mkdir -p "$WORK/elsewhere/hooks"
for planted in .git/hooks .git/config .git; do
  ws="$WORK/ws-link"
  new_repo "$ws"
  target="$WORK/elsewhere/$(basename "$planted")"
  [[ $planted == .git/config ]] && target="$WORK/elsewhere/config" && touch "$target"
  [[ $planted == .git ]] && { mv "$ws/.git" "$WORK/elsewhere/dotgit-$RUN_ID"; target="$WORK/elsewhere/dotgit-$RUN_ID"; }
  rm -rf "${ws:?}/$planted"
  ln -s "$target" "$ws/$planted"
  name="tfg-link-$RUN_ID"
  tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$ws" -- /bin/true
  expect_eq "$TF_RC" 1 "launch with a symlinked $planted"
  expect_contains "$TF_ERR" "tokfence: error: launch: --workspace: $ws/$planted: is a symlink: refusing to mount the workspace" \
    "refusal for a symlinked $planted"
  expect_nothing_left "$name"
  rm -rf "$WORK/elsewhere/dotgit-$RUN_ID"
done

# --- a detached launch: `launch stop` judges the workspace by the inventory taken at the start,
# so a git directory staged before and moved into place by the container (its contents keep their
# old times) is named too.
ws="$WORK/ws-detached"
new_repo "$ws"
mkdir -p "$ws/staged" && echo 'ref: refs/heads/main' >"$ws/staged/HEAD" &&
  printf '[core]\n\tfsmonitor = echo PWNED\n' >"$ws/staged/config"
chown -R "$CONTAINER_IDS" "$ws"
name="tfg-det-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --workspace "$ws" --detach -- \
  /bin/sh -c 'mkdir -p /workspace/moved && mv /workspace/staged /workspace/moved/.git && echo moved && sleep 600'
[[ $TF_RC -eq 0 ]] || die "detached launch: $TF_ERR"
wait_until "test -d '$ws/moved/.git'" 30 || die "the container did not move the staged git directory"
tf_ok launch stop --name "$name"
expect_contains "$TF_ERR" "launch: warning: the agent left git settings or hooks that run programs"
expect_contains "$TF_ERR" "$ws/moved/.git: a repository that was not here before the run" "launch stop names the moved repository"
expect_nothing_left "$name"
