#!/usr/bin/env bash
# Escape class: persistence through the repository in the workdir. The workdir is writable, so the
# agent could plant .git/hooks/pre-commit, or core.hooksPath / core.fsmonitor in .git/config: the
# next `git status` or `git commit` the user runs executes it, unconfined. The sandbox mounts
# .git/hooks and .git/config read-only over themselves and makes .git a mount point (it cannot be
# renamed away and replaced); git itself keeps working inside (the agent can still commit). A
# symlinked .git is refused: its target could not be protected.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
command -v git >/dev/null || skip "git not installed"

attack() {
  principal_setup "$1"
  local repo="$P_PROJECT"
  as_principal git -C "$repo" init -q
  as_principal git -C "$repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m first
  [[ -d "$repo/.git/hooks" && -f "$repo/.git/config" ]] || die "git init made no hooks dir or config"
  # A submodule's git directory, as `git submodule add` leaves it.
  as_principal mkdir -p "$repo/.git/modules/lib/hooks"
  as_principal sh -c "printf '[core]\n\tbare = false\n' > '$repo/.git/modules/lib/config' &&
    echo 'ref: refs/heads/main' > '$repo/.git/modules/lib/HEAD'"
  local before
  before=$(cd "$repo/.git" && find hooks config -type f -exec sha256sum {} + | sort)

  log "[$P_MODE] unprotected: --no-sandbox plants a hook and edits .git/config"
  ptf run codex --no-sandbox --command "$PROBE" --workdir "$repo" -- write "$repo/.git/hooks/pre-commit"
  expect_eq "$RC" 0 "control: --no-sandbox hook write: $OUT"
  ptf run codex --no-sandbox --command "$PROBE" --workdir "$repo" -- write "$repo/.git/config.control"
  expect_eq "$RC" 0 "control: --no-sandbox write in .git: $OUT"
  rm -f "$repo/.git/hooks/pre-commit" "$repo/.git/config.control"

  log "[$P_MODE] sandboxed: hooks and config are read-only, .git cannot be swapped"
  for t in .git/hooks/pre-commit .git/hooks/fsmonitor-watchman.sample .git/config; do
    prun -- write "$repo/$t"
    expect_eq "$RC" 1 "write from the sandbox: $t: $OUT"
  done
  ptf run codex --command /bin/sh --workdir "$repo" -- -c '
    mv .git/modules/lib .git/modules/lib.aside 2>/dev/null && echo SUBMODULE-MOVED
    mv .git/modules .git/modules.aside 2>/dev/null && echo MODULES-MOVED
    git config core.fsmonitor "touch /tmp/pwned" 2>/dev/null && echo CONFIG-WRITTEN
    mv .git/config .git/config.old 2>/dev/null && echo CONFIG-MOVED
    rm -rf .git/hooks 2>/dev/null; test -d .git/hooks || echo HOOKS-REMOVED
    mv .git .git-old 2>/dev/null && echo GIT-MOVED
    mkdir -p .git/hooks2 && echo "#!/bin/sh" >.git/hooks2/x 2>/dev/null; true'
  expect_not_contains "$OUT" "CONFIG-WRITTEN" "git config changed from the sandbox"
  expect_not_contains "$OUT" "CONFIG-MOVED" ".git/config renamed from the sandbox"
  expect_not_contains "$OUT" "HOOKS-REMOVED" ".git/hooks removed from the sandbox"
  expect_not_contains "$OUT" "GIT-MOVED" ".git renamed from the sandbox"
  # Renamed aside, a directory on the way to protected entries could be replaced by the agent's own
  # (review 15b L1): they are mount points too.
  expect_not_contains "$OUT" "SUBMODULE-MOVED" ".git/modules/lib renamed from the sandbox"
  expect_not_contains "$OUT" "MODULES-MOVED" ".git/modules renamed from the sandbox"
  local after
  after=$(cd "$repo/.git" && find hooks config -type f -exec sha256sum {} + | sort)
  expect_eq "$after" "$before" "hooks or config changed"
  [[ ! -e "$repo/.git-old" ]] || die ".git was moved"

  log "[$P_MODE] git still works inside: the agent can commit"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c \
    'echo x >file && git add file && git -c user.name=a -c user.email=a@a commit -q -m agent && git log --oneline | wc -l'
  expect_eq "$RC" 0 "git commit in the sandbox: $OUT $ERR"
  expect_eq "$OUT" "2" "commits after the agent's"

  log "[$P_MODE] a symlinked .git is refused before anything runs"
  local linked="$P_BASE/linked"
  mkdir -p "$linked"
  ln -s "$repo/.git" "$linked/.git"
  [[ $P_MODE == user ]] && chown -h "$USER_ID:$USER_ID" "$linked" "$linked/.git"
  ptf run codex --command "$PROBE" --workdir "$linked" -- write "$linked/marker"
  expect_eq "$RC" 1 "run with a symlinked .git"
  expect_contains "$ERR" "tokfence: error: sandbox: $linked/.git is a symbolic link"
  [[ ! -e "$linked/marker" ]] || die "the agent ran although .git could not be protected"
}

for_each_principal attack
