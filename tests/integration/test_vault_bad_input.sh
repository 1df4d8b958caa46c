#!/usr/bin/env bash
# Every bad input of the vault gets a one-line error and a non-zero exit, and vault.enc stays
# byte-for-byte as it was: wrong passphrase, truncated, tampered, foreign, unknown version,
# provider not in the vault, unwritable home, no passphrase at all.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
VAULT="$TOKFENCE_HOME/vault.enc"
GOOD="$WORK/vault.enc.good"

add_canary_key openai
cp "$VAULT" "$GOOD"
size=$(stat -c %s "$GOOD")

# expect_refused "<error prefix>" args...: fails, one line, vault unchanged. Tries a read (list)
# and a write (add) unless told otherwise through READ_ONLY=1.
expect_refused() {
  local want=$1
  shift
  local before="$WORK/vault.enc.before"
  cp "$VAULT" "$before"
  tf_in "tfother-$(random_token 20)" "$@"
  [[ $TF_RC -ne 0 ]] || die "'$*' succeeded on bad input"
  expect_eq "$(printf '%s\n' "$TF_ERR" | wc -l)" "1" "one-line error for '$*'"
  expect_contains "$TF_ERR" "tokfence: error: $want" "error for '$*'"
  cmp -s "$VAULT" "$before" || die "vault.enc changed by '$*'"
}
# Puts `file` in place as vault.enc, then checks list, get-like add and remove all refuse it.
with_vault() {
  local want=$1 file=$2
  cp "$file" "$VAULT"
  expect_refused "$want" vault list
  expect_refused "$want" vault add anthropic -
  expect_refused "$want" vault remove openai
}

log "wrong passphrase"
TOKFENCE_VAULT_PASSPHRASE="not-the-passphrase" expect_refused "vault: wrong passphrase: $VAULT" vault list
TOKFENCE_VAULT_PASSPHRASE="not-the-passphrase" expect_refused "vault: wrong passphrase: $VAULT" vault add groq -
TOKFENCE_VAULT_PASSPHRASE="not-the-passphrase" expect_refused "vault: wrong passphrase: $VAULT" vault rotate openai -

log "truncated"
head -c $((size - 5)) "$GOOD" >"$WORK/vault.enc.trunc1"
with_vault "vault: truncated ($((size - 5)) of $size bytes): $VAULT" "$WORK/vault.enc.trunc1"
head -c 40 "$GOOD" >"$WORK/vault.enc.trunc2"
with_vault "vault: truncated (40 bytes" "$WORK/vault.enc.trunc2"
: >"$WORK/vault.enc.empty"
with_vault "vault: not a tokfence file (bad magic): $VAULT" "$WORK/vault.enc.empty"

log "tampered: one ciphertext bit flipped fails the GCM tag"
cp "$GOOD" "$WORK/vault.enc.tampered"
byte=$(od -An -tu1 -j 80 -N 1 "$GOOD" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$WORK/vault.enc.tampered" bs=1 seek=80 conv=notrunc status=none
cmp -s "$GOOD" "$WORK/vault.enc.tampered" && die "tampering did not change the file"
with_vault "vault: authentication failed, the file was tampered with or damaged: $VAULT" "$WORK/vault.enc.tampered"

log "foreign file"
printf '{"openai": {"key": "plaintext"}}\n' >"$WORK/vault.enc.foreign"
with_vault "vault: not a tokfence file (bad magic): $VAULT" "$WORK/vault.enc.foreign"

log "unknown format version"
cp "$GOOD" "$WORK/vault.enc.v7"
printf '\000\007' | dd of="$WORK/vault.enc.v7" bs=1 seek=8 conv=notrunc status=none
with_vault "vault: unsupported format version 7 (this tokfence reads version 1): $VAULT: upgrade tokfence" "$WORK/vault.enc.v7"

cp "$GOOD" "$VAULT"
log "provider not in the vault"
expect_refused "vault: no key for provider 'mistral': see 'tokfence vault list'" vault remove mistral
expect_refused "vault: no key for provider 'mistral': add one with 'tokfence vault add mistral -'" vault rotate mistral -

log "no passphrase and no terminal"
(
  unset TOKFENCE_VAULT_PASSPHRASE
  # setsid: no controlling terminal, so /dev/tty cannot be opened even when ctest runs in one.
  cp "$VAULT" "$WORK/vault.enc.before"
  set +e
  setsid -w "$TOKFENCE_BIN" vault list >"$WORK/out/nopass.stdout" 2>"$WORK/out/nopass.stderr" </dev/null
  rc=$?
  set -e
  [[ $rc -ne 0 ]] || die "list without passphrase succeeded"
  expect_eq "$(cat "$WORK/out/nopass.stderr")" \
    "tokfence: error: vault passphrase: none given and no terminal to ask on: set TOKFENCE_VAULT_PASSPHRASE"
  cmp -s "$VAULT" "$WORK/vault.enc.before" || die "vault changed"
)
TOKFENCE_VAULT_PASSPHRASE="" expect_refused "vault passphrase: TOKFENCE_VAULT_PASSPHRASE is empty" vault list

log "unwritable home (read-only bind mount in a private mount namespace)"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"
cp "$VAULT" "$WORK/vault.enc.before"
unshare_flags=(-m)
[[ $(id -u) -eq 0 ]] || unshare_flags=(-r -m)
set +e
printf '%s' "tfother-$(random_token 20)" | unshare "${unshare_flags[@]}" bash -c '
  mount --bind "$TOKFENCE_HOME" "$TOKFENCE_HOME" && mount -o remount,bind,ro "$TOKFENCE_HOME" || exit 99
  exec "$TOKFENCE_BIN" vault add anthropic -' >"$WORK/out/ro.stdout" 2>"$WORK/out/ro.stderr"
rc=$?
set -e
[[ $rc -ne 99 ]] || die "could not make the home read-only"
[[ $rc -ne 0 ]] || die "add into a read-only home succeeded"
err=$(cat "$WORK/out/ro.stderr")
expect_eq "$(printf '%s\n' "$err" | wc -l)" "1" "one-line error"
expect_eq "$err" "tokfence: error: vault: cannot write in the tokfence home: $TOKFENCE_HOME/vault.lock: Read-only file system: make TOKFENCE_HOME writable"
cmp -s "$VAULT" "$WORK/vault.enc.before" || die "vault changed"

log "the vault still opens after all of that"
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "openai"
