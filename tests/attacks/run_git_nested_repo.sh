#!/usr/bin/env bash
# Escape class: persistence through a repository git reaches from the project, beyond the top
# .git/hooks and .git/config that run_git_persistence covers.
#  1. A submodule's git directory (.git/modules/<name>/config and hooks) decides what git runs in
#     the submodule, and `git status` in the project runs git there: the agent sets its
#     core.fsmonitor. Before: writable. Expected now: read-only like the top ones.
#  2. A repository the agent makes itself (sub/.git with core.fsmonitor) plus a gitlink for it in
#     the project's index (.git/index must stay writable, or the agent could not commit): the
#     user's next plain `git status` in the project runs the agent's program, unfenced. Nothing
#     stops a program from creating a directory named .git, so tokfence cannot prevent this one.
#     Expected now: after the run, tokfence names what it left (sandbox/git_settings.hpp): the
#     test shows the program really would run (the user's `git status` runs it) and that the
#     warning says where. Before: the run ended silently.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
command -v git >/dev/null || skip "git not installed"

attack() {
  principal_setup "$1"
  local repo="$P_PROJECT" lib="$P_BASE/libsrc" marker="$P_BASE/ran-$1"
  local g=(git -c user.name=t -c user.email=t@t -c protocol.file.allow=always)
  as_principal "${g[@]}" init -q "$lib"
  as_principal "${g[@]}" -C "$lib" commit -q --allow-empty -m lib
  as_principal "${g[@]}" -C "$repo" init -q
  as_principal "${g[@]}" -C "$repo" submodule -q add "$lib" lib
  as_principal "${g[@]}" -C "$repo" commit -q -m "with lib"
  [[ -f "$repo/.git/modules/lib/config" ]] || die "set-up: no submodule git directory"

  log "[$P_MODE] sandboxed: the submodule's config is read-only; a repository of the agent's own is noticed"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c "
    git -C lib config core.fsmonitor 'touch $marker-lib; false' 2>/dev/null && echo SUBMODULE-CONFIG-WRITTEN
    (echo x >.git/modules/lib/hooks/post-checkout) 2>/dev/null && echo SUBMODULE-HOOK-WRITTEN
    git init -q sub && git -C sub -c user.name=a -c user.email=a@a commit -q --allow-empty -m s &&
      git -C sub config core.fsmonitor 'touch $marker; false' &&
      git update-index --add --cacheinfo 160000,\$(git -C sub rev-parse HEAD),sub && echo NESTED-PLANTED"
  expect_eq "$RC" 0 "the agent's run: $OUT $ERR"
  expect_not_contains "$OUT" "SUBMODULE-CONFIG-WRITTEN" "the submodule's config written from the sandbox"
  expect_not_contains "$OUT" "SUBMODULE-HOOK-WRITTEN" "a submodule hook written from the sandbox"
  expect_contains "$OUT" "NESTED-PLANTED" "the agent's own repository and gitlink (the attack's set-up)"
  expect_contains "$ERR" "tokfence: warning: the agent left git settings or hooks that run programs"
  expect_contains "$ERR" "$repo/sub/.git: a repository that was not here before the run" "the warning names the planted repository"
  expect_contains "$ERR" "$repo/sub/.git/config: written during the run; runs programs: core.fsmonitor" "the warning names the planted setting"
  expect_not_contains "$ERR" "modules/lib" "the protected submodule reported"

  # What the warning is about: the user's plain `git status` in the project runs the planted
  # program (and not the submodule's, which stayed as it was).
  rm -f "$marker" "$marker-lib"
  as_principal git -C "$repo" status >/dev/null 2>&1 || true
  [[ -e "$marker" ]] || die "the nested repository's fsmonitor did not run on git status: the warning would be about nothing"
  [[ ! -e "$marker-lib" ]] || die "the submodule's fsmonitor ran"

  log "[$P_MODE] across two runs (review 14b G1): a git directory staged under another name, then a .git link to it"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c "
    git init -q --bare staged && git --git-dir=staged config core.bare false &&
      git --git-dir=staged config core.fsmonitor 'touch $marker-staged; false' && echo STAGED"
  expect_contains "$OUT" "STAGED" "the first run's staging: $ERR"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c "
    mkdir -p sl && ln -s ../staged sl/.git && echo LINKED"
  expect_contains "$OUT" "LINKED"
  expect_contains "$ERR" "$repo/sl/.git: a symbolic link to ../staged, made during the run" "the second run's .git link"

  log "[$P_MODE] a planted repository below a directory the audit cannot list (review 14c G1: chmod 0311)"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c "
    mkdir -p locked/in && git init -q locked/in/sub2 &&
      git -C locked/in/sub2 -c user.name=a -c user.email=a@a commit -q --allow-empty -m s &&
      git -C locked/in/sub2 config core.fsmonitor 'touch $marker-locked; false' &&
      git update-index --add --cacheinfo 160000,\$(git -C locked/in/sub2 rev-parse HEAD),locked/in/sub2 &&
      chmod 0311 locked && echo LOCKED"
  expect_contains "$OUT" "LOCKED" "the locked plant: $ERR"
  if [[ $P_MODE == root ]]; then  # root lists it anyway
    expect_contains "$ERR" "$repo/locked/in/sub2/.git: a repository that was not here before the run"
  else
    expect_contains "$ERR" "$repo/locked: a directory the audit cannot open (Permission denied), changed during the run"
  fi
  chmod 0755 "$repo/locked"
  as_principal git -C "$repo" rm -q --cached locked/in/sub2 >/dev/null 2>&1 || true

  log "[$P_MODE] an ordinary run with git (a commit in the project, the submodule untouched) warns of nothing"
  ptf run codex --command /bin/sh --workdir "$repo" -- -c \
    'echo y >file && git add file && git -c user.name=a -c user.email=a@a commit -q -m agent && echo COMMITTED'
  expect_contains "$OUT" "COMMITTED"
  expect_not_contains "$ERR" "tokfence: warning: the agent left git" "a warning after an ordinary commit"
}

for_each_principal attack
