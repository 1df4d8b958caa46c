#!/usr/bin/env bash
# Escape class: links planted in the harness home. `tokfence run` writes the agent's config into
# TOKFENCE_HOME/harness/<program>/, which the sandboxed agent can write. Between two runs the agent can
# leave there, as the same user:
#   - symlinks at every temporary name the host might use (`config.toml.tmp<pid>` for every pid),
#   - its config directory (`claude-config`) replaced by a symlink to a directory of the user's,
#   - the config file itself replaced by a symlink or a hard link to a file of the user's.
# A host that writes by name then truncates, overwrites or chmods the user's file with the user's rights
# on the next `tokfence run`. This test plants all of that (directly, as the agent would have) and checks
# that the victims keep their bytes and mode: the run writes only inside the harness home, and refuses
# (naming the path and the fix) when a harness directory is a symlink.
#
# Proving it can fail: the control step writes through one planted link with plain `echo >` and sees the
# victim change. Against the pre-fix binary (TOKFENCE_BIN=<old build>) this script fails at
# "victim changed" (see the report of issue 14).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
add_canary_key anthropic
start_daemon
mkdir -p "$WORK/project"
cd "$WORK/project"

H="$TOKFENCE_HOME/harness"
V="$WORK/victim"
mkdir -p "$V/claude-real"
printf 'precious vault bytes\n' >"$V/vault.enc"
printf 'precious user file\n' >"$V/linked-file"
printf 'precious hard-linked file\n' >"$V/hard-file"
printf '{"user": "settings"}\n' >"$V/claude-real/settings.json"
printf '{"user": "claude.json"}\n' >"$V/claude-real/.claude.json"
chmod 0640 "$V/vault.enc" "$V/linked-file" "$V/hard-file"
chmod 0644 "$V/claude-real/settings.json" "$V/claude-real/.claude.json"
snapshot() { (cd "$V" && find . -type f -printf '%p %m\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(snapshot)

# A first run creates the harness homes, as in real use.
tf_ok run codex --command /bin/true
tf_ok run claude --command /bin/true
[[ -f $H/codex/codex-home/config.toml && -f $H/claude/claude-config/settings.json ]] || die "first runs wrote no config"

log "plant: config.toml.tmp<N> symlinks for every pid, config.toml as symlink, claude-config as symlink"
pid_max=$(cat /proc/sys/kernel/pid_max)
((pid_max <= 65536)) || pid_max=65536 # beyond that, the window from the last pid on
python3 - "$H/codex/codex-home" "$V/vault.enc" "$pid_max" "$(cat /proc/sys/kernel/ns_last_pid)" <<'EOF'
import os, sys
d, victim, pid_max, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pids = set(range(1, pid_max + 1)) | set(range(last, last + 20000))
for n in pids:
    for name in (f"config.toml.tmp{n}", f".config.toml.tmp{n}"):
        os.symlink(victim, os.path.join(d, name))
EOF
rm -f "$H/codex/codex-home/config.toml"
ln -s "$V/linked-file" "$H/codex/codex-home/config.toml"
mv "$H/claude/claude-config" "$H/claude/claude-config.old"
ln -s "$V/claude-real" "$H/claude/claude-config"
# opencode: its config as a hard link to a user file, its xdg dir as a symlink.
tf_ok run opencode --command /bin/true
rm -f "$H/opencode/opencode.json"
ln "$V/hard-file" "$H/opencode/opencode.json"

log "control: the planted links do reach the victims (this test can see damage)"
cp "$V/vault.enc" "$WORK/vault.saved"
echo damaged >"$H/codex/codex-home/config.toml.tmp$((pid_max / 2))"
[[ $(cat "$V/vault.enc") == damaged ]] || die "control: writing through a planted link did not reach the victim"
cp "$WORK/vault.saved" "$V/vault.enc"
chmod 0640 "$V/vault.enc"
expect_eq "$(snapshot)" "$before" "control: victim not restored"

log "codex: the run writes its config inside the harness home, through none of the links"
tf run codex --command /bin/true
log "codex run: rc=$TF_RC ${TF_ERR:0:300}"
expect_eq "$(snapshot)" "$before" "victim changed by 'tokfence run codex'"
expect_eq "$TF_RC" 0 "run codex with sprayed temp names: $TF_ERR"
[[ -f $H/codex/codex-home/config.toml && ! -L $H/codex/codex-home/config.toml ]] ||
  die "codex config.toml is not a regular file after the run"
grep -q 'model_provider = "tokfence"' "$H/codex/codex-home/config.toml" || die "codex config not written"
expect_eq "$(stat -c %a "$H/codex/codex-home/config.toml")" 600 "codex config mode"

log "claude: a symlinked config directory is refused with the path and the fix"
tf run claude --command /bin/true
expect_eq "$(snapshot)" "$before" "victim changed by 'tokfence run claude'"
[[ $TF_RC -ne 0 ]] || die "run claude with a symlinked claude-config did not refuse"
expect_contains "$TF_ERR" "tokfence: error: harness: $H/claude/claude-config: is a symlink"
expect_contains "$TF_ERR" "run again"
log "claude: once the user removes the link, the run works"
rm "$H/claude/claude-config"
tf_ok run claude --command /bin/true
[[ -d $H/claude/claude-config && ! -L $H/claude/claude-config ]] || die "claude-config not recreated as a directory"

log "opencode: a hard link at the config name is replaced, the other inode untouched"
tf run opencode --command /bin/true
expect_eq "$(snapshot)" "$before" "victim changed by 'tokfence run opencode'"
expect_eq "$TF_RC" 0 "run opencode: $TF_ERR"
expect_eq "$(stat -c %h "$V/hard-file")" 1 "hard link still shared"

log "a symlinked harness home itself, or one owned by another uid, is refused"
mv "$H/codex" "$H/codex.real"
ln -s "$V/claude-real" "$H/codex"
tf run codex --command /bin/true
expect_eq "$(snapshot)" "$before" "victim changed through a symlinked harness home"
[[ $TF_RC -ne 0 ]] || die "a symlinked harness home was used"
expect_contains "$TF_ERR" "$H/codex: is a symlink"
rm "$H/codex"
mv "$H/codex.real" "$H/codex"
if [[ $(id -u) -eq 0 ]]; then
  chown 65534:65534 "$H/codex/codex-home"
  tf run codex --command /bin/true
  [[ $TF_RC -ne 0 ]] || die "a harness directory owned by another uid was used"
  expect_contains "$TF_ERR" "codex-home: is owned by uid 65534"
  chown "$(id -u):$(id -g)" "$H/codex/codex-home"
fi
expect_eq "$(snapshot)" "$before" "victims changed"
