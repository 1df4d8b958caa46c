#!/usr/bin/env bash
# Escape class: traps where `tokfence run` puts a session's decoys and its token (ImmuneFence,
# issue 19). Two places could be booby-trapped:
#  1. the user's HOME, where the decoys appear inside the sandbox: a ~/.aws, ~/.config or ~/.env
#     that is a symlink to somewhere else (the user's own dotfile set-up, or something an earlier
#     unconfined tool left). A host that planted decoys by path there would write through the link,
#     into a real directory of the user's;
#  2. the harness home, which the agent can write: the agent leaves symlinks where the host writes
#     the config that holds the next run's token (opencode.json, claude-config/.claude.json), and
#     after reading its token puts a symlink where the post-run scrub looks. A host that writes or
#     scrubs by path writes the token (or rewrites a file) through the link.
# Checked: every victim keeps its bytes; inside, ~/.env is the decoy while the linked ~/.aws is not
# planted (a note says so); no token is left anywhere under TOKFENCE_HOME, and the agent's own copy
# of its token in the harness home is scrubbed.
#
# Proving it can fail: the control steps write through the same kinds of links with plain
# `printf >` and see a victim change.
source "$(dirname "$0")/../integration/lib.sh"
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

V="$WORK/victim"
UHOME="$WORK/uhome"
mkdir -p "$V/aws" "$V/config" "$UHOME" "$WORK/project"
printf 'VICTIM-AWS\n' >"$V/aws/credentials"
printf 'VICTIM-ENV\n' >"$V/env"
printf 'VICTIM-CFG\n' >"$V/cfg"
printf 'VICTIM-CLAUDE\n' >"$V/claude"
ln -s "$V/aws" "$UHOME/.aws"
ln -s "$V/env" "$UHOME/.env"
ln -s "$V/config" "$UHOME/.config"
victims() { (cd "$V" && find . -printf '%p %y %m %s\n' | sort && find . -type f -exec sha256sum {} + | sort); }
export HOME="$UHOME"

log "control: writing by path follows the links"
cp -a "$V" "$WORK/vcopy"
mkdir -p "$WORK/ucopy"
ln -s "$WORK/vcopy/env" "$WORK/ucopy/.env"
printf 'decoy\n' >"$WORK/ucopy/.env"
[[ "$(cat "$WORK/vcopy/env")" == decoy ]] || die "control: the link at ~/.env was not followed; the trap is not live"
rm -rf "$WORK/vcopy" "$WORK/ucopy"
before=$(victims)

log "1: decoys under a HOME full of links"
AGENT1="$(cat <<'EOF'
cat ~/.env; echo "R env $?"
cat ~/.aws/credentials; echo "R aws $?"
test -e ~/.config/gh/hosts.yml; echo "R gh $?"
EOF
)"
tf run codex --command /bin/sh --workdir "$WORK/project" -- -c "$AGENT1"
expect_eq "$TF_RC" 0 "run with a linked HOME: $TF_ERR"
expect_contains "$TF_OUT" "OPENAI_API_KEY=sk-proj-" "~/.env inside is the decoy"
expect_contains "$TF_OUT" "R env 0"
expect_not_contains "$TF_OUT" "VICTIM" "a victim's content reached the sandbox"
expect_contains "$TF_ERR" "decoy ~/.aws/credentials not planted: $UHOME/.aws is a symbolic link"
expect_contains "$TF_ERR" "decoy ~/.config/gh/hosts.yml not planted: $UHOME/.config is a symbolic link"
[[ "$(victims)" == "$before" ]] || die "a victim behind a HOME link changed"
[[ -L "$UHOME/.aws" && -L "$UHOME/.env" && -L "$UHOME/.config" ]] || die "the links in HOME were replaced"
expect_eq "$(ls -A "$UHOME" | sort | tr '\n' ' ')" ".aws .config .env " "entries created in the host's HOME"

log "2: the agent booby-traps the harness home for the next run and for the scrub"
H="$TOKFENCE_HOME/harness/opencode"
AGENT2="$(cat <<EOF
H='$H'; V='$V'
EOF
)
$(cat <<'EOF'
# Its token, copied into its own state (the scrub must find it) ...
mkdir -p "$H/xdg/data/agent" && printf 'key=%s\n' "$OPENCODE_KEY" >"$H/xdg/data/agent/leak.txt"
# ... and links where the host writes next time, and where the scrub looks now.
rm -f "$H/opencode.json" && ln -s "$V/cfg" "$H/opencode.json"
mkdir -p "$H/xdg/state" && ln -s "$V/claude" "$H/xdg/state/token-copy.txt"
echo "R planted $?"
EOF
)"
# opencode keeps its key only in its config: read it from there, as a real agent could.
AGENT2="OPENCODE_KEY=\$(sed -n 's/.*\"apiKey\": \"\\([^\"]*\\)\".*/\\1/p' \"\$OPENCODE_CONFIG\")
$AGENT2"
tf run opencode --command /bin/sh --workdir "$WORK/project" -- -c "$AGENT2"
expect_eq "$TF_RC" 0 "run 2: $TF_ERR"
expect_contains "$TF_OUT" "R planted 0"
[[ -L "$H/opencode.json" ]] || die "the agent's link is not in place: the trap did not get planted"
[[ "$(victims)" == "$before" ]] || die "the scrub after run 2 wrote through a planted link"
leak=$(cat "$H/xdg/data/agent/leak.txt")
[[ $leak == "key=tokfence-managed" ]] || die "the agent's copy of its token was not scrubbed (got ${#leak} bytes, not the placeholder)"

log "3: the next run renders over the links, not through them"
tf run opencode --command /bin/sh --workdir "$WORK/project" -- -c 'grep -c tfc1. "$OPENCODE_CONFIG"'
expect_eq "$TF_RC" 0 "run 3: $TF_ERR"
expect_eq "$TF_OUT" "1" "run 3's config holds its token"
[[ -f "$H/opencode.json" && ! -L "$H/opencode.json" ]] || die "the link at opencode.json was not replaced by a file"
[[ "$(victims)" == "$before" ]] || die "a victim changed through a link in the harness home"

log "no token anywhere under TOKFENCE_HOME"
hits=$(grep -rlaE 'tfc1\.[A-Za-z0-9_-]{8}' "$TOKFENCE_HOME" 2>/dev/null || true)
[[ -z $hits ]] || die "a session token left under TOKFENCE_HOME: $hits"
