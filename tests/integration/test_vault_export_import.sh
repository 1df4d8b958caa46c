#!/usr/bin/env bash
# Export bundles: written encrypted under their own passphrase, imported into another home with a
# report per provider (added / skipped / replaced with --force), and refused when wrong.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
export TOKFENCE_EXPORT_PASSPHRASE="export-$(random_token 20)"
BUNDLE="$WORK/keys.tfbundle"
KEY2="tfsecond-$(random_token 30)"

add_canary_key openai
tf_in "$KEY2" vault add anthropic -
[[ $TF_RC -eq 0 ]] || die "add failed: $TF_ERR"

log "export to a file: mode 0600, encrypted, a bundle"
tf_ok vault export --output "$BUNDLE"
expect_eq "$TF_OUT" "exported 2 key(s) to $BUNDLE: anthropic, openai"
expect_eq "$(stat -c %a "$BUNDLE")" "600" "bundle mode"
expect_eq "$(head -c 8 "$BUNDLE")" "TOKFENCE" "bundle magic"
if grep -qaF -- "$CANARY" "$BUNDLE"; then die "key in plaintext in the bundle"; fi

log "export to stdout"
"$TOKFENCE_BIN" vault export >"$WORK/stdout.tfbundle" 2>"$WORK/out/export-stdout.stderr" </dev/null || die "export to stdout failed"
expect_eq "$(head -c 8 "$WORK/stdout.tfbundle")" "TOKFENCE"
expect_contains "$(cat "$WORK/out/export-stdout.stderr")" "exported 2 key(s): anthropic, openai"

log "import into a fresh home: everything added, with its dates"
tf_ok vault list --json
orig_added=$(jq -r '.[] | select(.provider=="openai") | .added_at' <<<"$TF_OUT")
export TOKFENCE_HOME="$WORK/home2"
mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
export TOKFENCE_VAULT_PASSPHRASE="other-vault-$(random_token 20)"
tf_ok vault import "$BUNDLE"
expect_eq "$TF_OUT" $'anthropic: added\nopenai: added'
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider + " " + .fingerprint) | join(",")' <<<"$TF_OUT")" "anthropic ...${KEY2: -4},openai ...${CANARY: -4}"
expect_eq "$(jq -r '.[] | select(.provider=="openai") | .added_at' <<<"$TF_OUT")" "$orig_added" "added_at kept"

log "import again: skipped without --force"
NEW="tflocal-$(random_token 30)"
tf_in "$NEW" vault rotate openai -
[[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
tf_in "tfgroq-$(random_token 30)" vault add groq -
cp "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before"
tf_ok vault import "$BUNDLE"
expect_eq "$TF_OUT" $'anthropic: skipped (already in the vault; --force replaces it)\nopenai: skipped (already in the vault; --force replaces it)'
cmp -s "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before" || die "an all-skipped import rewrote the vault"
tf_ok vault list --json
expect_eq "$(jq -r '.[] | select(.provider=="openai") | .fingerprint' <<<"$TF_OUT")" "...${NEW: -4}"

log "import --force: replaced, and keys not in the bundle stay"
tf_ok vault import "$BUNDLE" --force
expect_eq "$TF_OUT" $'anthropic: replaced\nopenai: replaced'
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider + " " + .fingerprint) | join(",")' <<<"$TF_OUT")" \
  "anthropic ...${KEY2: -4},groq $(jq -r '.[] | select(.provider=="groq") | .fingerprint' <<<"$TF_OUT"),openai ...${CANARY: -4}"
[[ $(jq -r '.[] | select(.provider=="openai") | .rotated_at' <<<"$TF_OUT") != null ]] || die "replacement not dated"

log "bad bundles: wrong passphrase, tampered, truncated, a vault file, a foreign file"
cp "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before"
refused() {
  local want=$1
  shift
  tf "$@"
  [[ $TF_RC -ne 0 ]] || die "'$*' succeeded"
  expect_eq "$(printf '%s\n' "$TF_ERR" | wc -l)" "1" "one-line error"
  expect_contains "$TF_ERR" "tokfence: error: $want"
  cmp -s "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before" || die "vault changed by '$*'"
}
TOKFENCE_EXPORT_PASSPHRASE="wrong" refused "export bundle: wrong passphrase: $BUNDLE" vault import "$BUNDLE"
cp "$BUNDLE" "$WORK/tampered.tfbundle"
size=$(stat -c %s "$BUNDLE")
printf 'X' | dd of="$WORK/tampered.tfbundle" bs=1 seek=$((size - 3)) conv=notrunc status=none
cmp -s "$BUNDLE" "$WORK/tampered.tfbundle" && printf 'Y' | dd of="$WORK/tampered.tfbundle" bs=1 seek=$((size - 3)) conv=notrunc status=none
refused "export bundle: authentication failed, the file was tampered with or damaged: $WORK/tampered.tfbundle" vault import "$WORK/tampered.tfbundle"
head -c 100 "$BUNDLE" >"$WORK/short.tfbundle"
refused "export bundle: truncated (100 of $size bytes): $WORK/short.tfbundle" vault import "$WORK/short.tfbundle"
refused "export bundle: this is a vault file, not an export bundle: $WORK/vault.enc.before" vault import "$WORK/vault.enc.before"
printf 'hello\n' >"$WORK/foreign.txt"
refused "export bundle: not a tokfence file (bad magic): $WORK/foreign.txt" vault import "$WORK/foreign.txt"

log "export of an empty vault is refused"
export TOKFENCE_HOME="$WORK/home3"
mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
tf vault export --output "$WORK/empty.tfbundle"
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "tokfence: error: vault export: the vault is empty: nothing to export"
[[ ! -e "$WORK/empty.tfbundle" ]] || die "empty bundle written"
