#!/usr/bin/env bash
# Escape class: persistence through writes outside the workdir, from `tokfence run`: shell start-up
# files in the home (~/.bashrc, ~/.profile), autostart entries, the tokfence home (config, another
# program's harness), and system paths. Landlock allows writes only below the workdir, the
# program's harness home, the private /tmp and --allow-write paths; the tokfence home is not even
# visible. Each target is first shown writable with --no-sandbox.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

attack() {
  principal_setup "$1"
  mkdir -p "$P_HOME/.config/autostart" "$P_TFHOME/harness/claude"
  printf '# the user'"'"'s own\n' >"$P_HOME/.bashrc"
  [[ $P_MODE == user ]] && chown -R "$USER_ID:$USER_ID" "$P_HOME" "$P_TFHOME/harness"
  local targets=("$P_HOME/.bashrc" "$P_HOME/.profile" "$P_HOME/.config/autostart/agent.desktop"
    "$P_TFHOME/config.toml" "$P_TFHOME/harness/claude/planted" "$P_BASE/outside/planted")
  [[ $P_MODE == root ]] && targets+=("/etc/tokfence-attack-$$" "/usr/local/bin/tokfence-attack-$$" "/var/tmp/tokfence-attack-$$")
  local before
  before=$(for t in "${targets[@]}"; do [[ -e $t ]] && sha256sum "$t"; done; true)

  log "[$P_MODE] unprotected: --no-sandbox writes the home's start-up file"
  cp "$P_HOME/.bashrc" "$P_BASE/bashrc.saved"
  ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- write "$P_HOME/.bashrc"
  expect_eq "$RC" 0 "control: --no-sandbox write to ~/.bashrc: $OUT"
  grep -q '^probe$' "$P_HOME/.bashrc" || die "control: the write did not land"
  cp "$P_BASE/bashrc.saved" "$P_HOME/.bashrc"
  ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- write "$P_BASE/outside/control"
  expect_eq "$RC" 0 "control: --no-sandbox write outside the workdir: $OUT"

  log "[$P_MODE] sandboxed: every write outside fails, nothing changed"
  for t in "${targets[@]}"; do
    prun -- write "$t"
    expect_eq "$RC" 1 "write from the sandbox: $t: $OUT"
  done
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c \
    "echo evil >>'$P_HOME/.bashrc'; mv '$P_HOME/.bashrc' '$P_HOME/.bashrc.old'; ln -s /tmp/x '$P_HOME/.zshrc'; ls -A '$P_TFHOME'"
  expect_not_contains "$OUT" "config.toml" "the tokfence home is listable from the sandbox"
  local after
  after=$(for t in "${targets[@]}"; do [[ -e $t ]] && sha256sum "$t"; done; true)
  expect_eq "$after" "$before" "files outside changed"
  for t in "${targets[@]}" "$P_HOME/.bashrc.old" "$P_HOME/.zshrc"; do
    [[ $t == "$P_HOME/.bashrc" || $t == "$P_TFHOME/config.toml" ]] && continue
    [[ ! -e $t && ! -L $t ]] || die "created from the sandbox: $t"
  done

  log "[$P_MODE] the allowed places still work"
  prun -- write "$P_PROJECT/ok.txt"
  expect_eq "$RC" 0 "write in the workdir: $OUT"
  prun -- write "$P_TFHOME/harness/codex/ok.txt"
  expect_eq "$RC" 0 "write in the harness home: $OUT"
}

for_each_principal attack
