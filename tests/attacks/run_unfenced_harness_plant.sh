#!/usr/bin/env bash
# Escape class: persistence through the harness home into a later unconfined run. A fenced run may
# write its harness home (TOKFENCE_HOME/harness/<program>/), kept between runs, and tokfence
# points XDG_CONFIG_HOME, CODEX_HOME, CLAUDE_CONFIG_DIR and OPENCODE_CONFIG into it. A hostile run
# wrote xdg/config/git/config with core.fsmonitor; the next `--no-sandbox` run of the same program
# used the same home, and its `git status` (any agent runs it) executed the planted command on the
# host, unconfined (review 11a F7; the class of attack: run_relay_ready_plant, through the
# programs' own config). Now `--no-sandbox` runs use a harness home of their own
# (harness/<program>-unfenced/), which the fence never shows.
#
# Unprotected first: a --no-sandbox run that plants into its own home and a second --no-sandbox
# run that runs git show the carrier works (the marker appears).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
command -v git >/dev/null || skip "git not installed"

# The planting agent: core.fsmonitor in $XDG_CONFIG_HOME/git/config (git's global config) running
# `touch MARK` ($1); further arguments go to `run`.
plant() {
  local mark=$1
  shift
  ptf run codex "$@" --command /bin/sh --workdir "$P_PROJECT" -- -c \
    'mkdir -p "$XDG_CONFIG_HOME/git" && printf "[core]\n\tfsmonitor = \"touch $0; false\"\n" >"$XDG_CONFIG_HOME/git/config" && echo "planted in $XDG_CONFIG_HOME"' "$mark"
}
# The benign agent of a later unconfined run: git status in the workdir.
git_status_unfenced() {
  ptf run codex --no-sandbox --command /bin/sh --workdir "$P_PROJECT" -- -c \
    'git status --short >/dev/null 2>&1; echo "XDG $XDG_CONFIG_HOME"'
}

attack() {
  principal_setup "$1"
  as_principal git -C "$P_PROJECT" init -q
  local mark="$P_BASE/outside/marker-control" h="$P_TFHOME/harness"

  log "[$P_MODE] control: a planted fsmonitor in the unconfined harness home does run"
  plant "$mark" --no-sandbox
  expect_eq "$RC" 0 "control plant: $OUT $ERR"
  git_status_unfenced
  expect_eq "$RC" 0 "control git status: $ERR"
  [[ -e $mark ]] || die "[$P_MODE] control: the planted fsmonitor did not run (the carrier does not work here)"
  rm -rf "$h/codex-unfenced/xdg/config/git"

  log "[$P_MODE] attack: the fenced run plants, the next --no-sandbox run runs git status"
  mark="$P_BASE/outside/marker-attack"
  plant "$mark"
  expect_eq "$RC" 0 "fenced plant: $OUT $ERR"
  expect_contains "$OUT" "planted in $h/codex/xdg/config"
  [[ -e $mark ]] && die "[$P_MODE] the fenced run could write the marker itself: set-up broken"
  [[ -f $h/codex/xdg/config/git/config ]] || die "[$P_MODE] the plant did not land in the fenced harness home"
  git_status_unfenced
  expect_eq "$RC" 0 "unfenced git status: $ERR"
  [[ ! -e $mark ]] || die "[$P_MODE] code planted by the fenced run ran unconfined in the --no-sandbox run"
  expect_contains "$OUT" "XDG $h/codex-unfenced/xdg/config" "the --no-sandbox run uses its own harness home"

  log "[$P_MODE] the fenced run does not see the unconfined harness home"
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c 'ls -a "$0" 2>&1; echo end' "$h/codex-unfenced"
  expect_contains "$OUT" "No such file or directory"
}

for_each_principal attack
