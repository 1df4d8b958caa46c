#!/usr/bin/env bash
# Escape class: reading secrets from `tokfence run`. The sandbox reads everything the user can read
# except a deny-list (docs/SANDBOX.md "What stays readable"); the list missed common credential
# stores (git's XDG credential store, ~/.pgpass, cargo, terraform, vault tokens, shell histories,
# browser profiles...), and run as root the sandbox's uid 0 is the host's, without capabilities but
# still the owner of root's 0600 files: /etc/shadow, /etc/gshadow, SSH host keys, /root (review 11a
# F3). Whatever the agent reads it can send out in a prompt.
#
# Each principal plants credential files in its home; unprotected (--no-sandbox) they are read,
# sandboxed none of them is. As root also /etc/shadow, /etc/gshadow, the SSH host keys and a file
# planted in /root; and a workdir below /root still works (it is mounted back).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

STORES=(.config/git/credentials .git-credentials .pgpass .cargo/credentials.toml .terraform.d/credentials.tfrc.json
  .vault-token .config/rclone/rclone.conf .m2/settings.xml .gem/credentials .config/hub .bash_history .zsh_history
  .local/share/fish/fish_history .mozilla/firefox/profile/logins.json .config/google-chrome/Default/Cookies
  .config/chromium/Default/Cookies .kube/config .docker/config.json .netrc)

# Prints "READ <path>" for each readable file of $P_PROJECT/paths.txt holding the marker, run as
# the agent ($1: --no-sandbox or nothing). Sets RC OUT ERR.
read_all() {
  ptf run codex "$@" --command /bin/sh --workdir "$P_PROJECT" -- -c \
    'while IFS= read -r f; do if grep -qs -e "$0" -e "^root:" "$f"; then echo "READ $f"; fi; done <paths.txt; echo done' "$MARK"
}

attack() {
  principal_setup "$1"
  MARK="secret-marker-$(random_token 16)"
  : >"$P_PROJECT/paths.txt"
  local rel
  for rel in "${STORES[@]}"; do
    mkdir -p "$(dirname "$P_HOME/$rel")"
    printf 'password=%s\n' "$MARK" >"$P_HOME/$rel"
    chmod 600 "$P_HOME/$rel"
    printf '%s\n' "$P_HOME/$rel" >>"$P_PROJECT/paths.txt"
  done
  local expected=${#STORES[@]}
  if [[ $P_MODE == root ]]; then
    ROOT_PLANT=$(mktemp /root/.tokfence-attack-secret-XXXXXX)
    EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }rm -f '$ROOT_PLANT'"
    printf 'password=%s\n' "$MARK" >"$ROOT_PLANT"
    # A host key of our own beside any real ones (sshd's name pattern; removed at exit).
    [[ -d /etc/ssh ]] || skip "no /etc/ssh on this machine"
    HOST_KEY=/etc/ssh/ssh_host_tokfencetest${RANDOM}_key
    EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }rm -f '$HOST_KEY'"
    printf 'password=%s\n' "$MARK" >"$HOST_KEY"
    chmod 600 "$HOST_KEY"
    printf '%s\n' /etc/shadow /etc/gshadow "$ROOT_PLANT" "$HOST_KEY" >>"$P_PROJECT/paths.txt"
    expected=$((expected + 4))
  fi
  [[ $P_MODE == user ]] && chown -R "$USER_ID:$USER_ID" "$P_HOME" "$P_PROJECT"

  log "[$P_MODE] unprotected: --no-sandbox reads every planted store"
  read_all --no-sandbox
  expect_eq "$RC" 0 "control run: $ERR"
  expect_eq "$(grep -c '^READ ' <<<"$OUT")" "$expected" "control: stores readable unfenced: $OUT"

  log "[$P_MODE] sandboxed: none of them"
  read_all
  expect_eq "$RC" 0 "sandboxed run: $ERR"
  expect_contains "$OUT" "done"
  expect_eq "$(grep -c '^READ ' <<<"$OUT" || true)" 0 "secrets readable inside the fence: $OUT"
  if [[ $P_MODE == root ]]; then
    ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c \
      'for k in /etc/ssh/ssh_host_*_key; do [ -s "$k" ] && echo "KEY $k"; done; echo done'
    expect_eq "$RC" 0 "host keys: $ERR"
    expect_not_contains "$OUT" "KEY " "an SSH host private key has content inside the fence"

    log "[root] a workdir below /root is mounted back, writable; /root's other entries stay hidden"
    local rootwd
    rootwd=$(mktemp -d /root/.tokfence-attack-wd-XXXXXX)
    EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }rm -rf '$rootwd'"
    ptf run codex --command /bin/sh --workdir "$rootwd" -- -c \
      'echo written >"$PWD/out.txt" && echo "PWD $PWD"; cat "$0" 2>/dev/null || echo "no $0"' "$ROOT_PLANT"
    expect_eq "$RC" 0 "run with a workdir below /root: $OUT $ERR"
    expect_eq "$(cat "$rootwd/out.txt")" written "the workdir below /root was not writable"
    expect_contains "$OUT" "no $ROOT_PLANT"
    expect_not_contains "$OUT" "$MARK" "a file in /root read with a workdir below /root"
  fi
}

for_each_principal attack
