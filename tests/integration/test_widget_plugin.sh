#!/usr/bin/env bash
# The menu-bar plugin: `widget render` in the SwiftBar/xbar/Argos text format (status line, '---',
# budgets with progress bars, actions as bash=<binary> paramN=... terminal=false refresh=true), and
# `widget install|uninstall` into the plugin folder it finds (or --dir): mode 0755, a link planted
# at the destination replaced and never written through, a clear error when no folder exists.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config '[budget]' 'timezone = "UTC"'
add_canary_key openai
export HOME="$WORK/userhome"
mkdir -p "$HOME"
EXE=$(readlink -f "$TOKFENCE_BIN")

# --- render ------------------------------------------------------------------------------------
tf_ok widget render
expect_eq "$(head -1 <<<"$TF_OUT")" "Tokfence offline | color=#ef4444" "status line, no daemon"
expect_eq "$(sed -n 2p <<<"$TF_OUT")" "---" "separator after the status line"
expect_contains "$TF_OUT" "Start daemon | bash=\"$EXE\" param1=start param2=-d terminal=false refresh=true"

start_daemon
tf_ok budget set openai 1 daily
curl -sS --max-time 30 -o /dev/null -H 'authorization: Bearer dummy' -H 'x-fake-reasoning: 10000' \
  --data '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' "$PROXY_URL/openai/v1/chat/completions"
tf_ok widget render
expect_eq "$(head -1 <<<"$TF_OUT")" "Tokfence \$0.10 · 1 req | color=#16a34a" "status line with today's spend"
expect_contains "$TF_OUT" "Status: running (PID $(jq .pid "$TOKFENCE_HOME/daemon.json"))"
expect_contains "$TF_OUT" "openai (daily): \$0.10 / \$1.00 (10%) █░░░░░░░░░" "budget with a progress bar"
expect_contains "$TF_OUT" "Stop daemon | bash=\"$EXE\" param1=stop terminal=false refresh=true"
expect_contains "$TF_OUT" "Kill (refuse every request) | bash=\"$EXE\" param1=kill terminal=false refresh=true"
tf_ok kill
tf_ok widget render
expect_contains "$(head -1 <<<"$TF_OUT")" "Tokfence KILLED" "status line when killed"
expect_contains "$TF_OUT" "Unkill (let requests through again) | bash=\"$EXE\" param1=unkill terminal=false refresh=true"
tf_ok widget render --argos
expect_contains "$TF_OUT" "| bash=\"'$EXE' unkill\" terminal=false refresh=true" "Argos: the action as a command line"
tf_ok unkill
# Every line is either a separator or "text[ | params]"; no text line starts with '-' by accident.
while IFS= read -r line; do
  [[ $line != -* || $line == "---" || $line =~ ^--[^-] ]] || die "stray dash line: $line"
done <<<"$TF_OUT"

# --- install: no folder --------------------------------------------------------------------------
tf widget install
[[ $TF_RC -ne 0 ]] || die "install without any plugin folder succeeded"
expect_contains "$TF_ERR" "tokfence: error: widget: no menu-bar plugin folder found"
expect_contains "$TF_ERR" "$HOME/.config/argos"
expect_contains "$TF_ERR" "--dir DIR"
tf widget install --refresh 2 --dir "$HOME"
[[ $TF_RC -ne 0 ]] || die "--refresh 2 was accepted"
expect_contains "$TF_ERR" "--refresh 2: expected seconds from 5 to 86400"
tf widget install --binary relative/tokfence --dir "$HOME"
[[ $TF_RC -ne 0 ]] || die "a relative --binary was accepted"

# --- install into Argos, then SwiftBar (the first folder found) ---------------------------------
mkdir -p "$HOME/.config/argos"
tf_ok widget install
ARGOS="$HOME/.config/argos/tokfence.20s.sh"
expect_contains "$TF_OUT" "installed $ARGOS (Argos"
expect_eq "$(stat -c %a "$ARGOS")" 755 "plugin mode"
expect_contains "$(cat "$ARGOS")" "'$EXE' widget render --argos"
out=$(bash "$ARGOS")
expect_eq "$(head -1 <<<"$out")" "Tokfence \$0.10 · 1 req | color=#16a34a" "the installed script renders"
expect_contains "$out" "bash=\"'$EXE' kill\""
SWIFTBAR="$HOME/Library/Application Support/SwiftBar/Plugins"
mkdir -p "$SWIFTBAR"
tf_ok widget install --refresh 30
expect_eq "$(stat -c %a "$SWIFTBAR/tokfence.30s.sh")" 755 "SwiftBar plugin mode"
expect_contains "$(cat "$SWIFTBAR/tokfence.30s.sh")" "'$EXE' widget render"
expect_not_contains "$(cat "$SWIFTBAR/tokfence.30s.sh")" "--argos"
out=$(bash "$SWIFTBAR/tokfence.30s.sh")
expect_contains "$out" "bash=\"$EXE\" param1=kill terminal=false refresh=true"
# Reinstalling with another refresh replaces the old script.
tf_ok widget install --refresh 60
[[ ! -e "$SWIFTBAR/tokfence.30s.sh" && -x "$SWIFTBAR/tokfence.60s.sh" ]] || die "the 30 s plugin was not replaced"

# --- a link planted at the destination is replaced, never written through ------------------------
DIR="$WORK/plugins"
mkdir -p "$DIR"
echo "do not touch" >"$WORK/victim"
chmod 600 "$WORK/victim"
ln -s "$WORK/victim" "$DIR/tokfence.20s.sh"
tf_ok widget install --dir "$DIR"
expect_eq "$(cat "$WORK/victim")" "do not touch" "the link's target is unchanged"
expect_eq "$(stat -c %a "$WORK/victim")" 600 "the link's target mode is unchanged"
[[ -f "$DIR/tokfence.20s.sh" && ! -L "$DIR/tokfence.20s.sh" ]] || die "the planted link is still there"
tf_ok widget install --binary "$EXE" --dir "$DIR" --refresh 20
expect_contains "$(cat "$DIR/tokfence.20s.sh")" "export TOKFENCE_HOME='$TOKFENCE_HOME'"

# --- uninstall -----------------------------------------------------------------------------------
echo keep >"$DIR/other.sh"
tf_ok widget uninstall --dir "$DIR"
expect_contains "$TF_OUT" "removed $DIR/tokfence.20s.sh"
[[ ! -e "$DIR/tokfence.20s.sh" && -f "$DIR/other.sh" ]] || die "uninstall removed the wrong files"
tf_ok widget uninstall
expect_contains "$TF_OUT" "removed $ARGOS"
expect_contains "$TF_OUT" "removed $SWIFTBAR/tokfence.60s.sh"
[[ ! -e "$ARGOS" && ! -e "$SWIFTBAR/tokfence.60s.sh" ]] || die "uninstall left a plugin"
tf_ok widget uninstall
expect_contains "$TF_OUT" "no tokfence plugin installed"
