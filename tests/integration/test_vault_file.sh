#!/usr/bin/env bash
# The encrypted-file vault through the real CLI: add (stdin and argv), list (table and JSON),
# rotate, remove, refusals, file modes. The canary key must never show up outside vault.enc.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
VAULT="$TOKFENCE_HOME/vault.enc"
KEY2="tfcanary2-$(random_token 30)"  # a second key; not scanned, so it is never printed either

log "an empty vault lists nothing and creates no file"
tf_ok vault list
expect_contains "$TF_OUT" "no keys in the vault (file backend)"
[[ ! -e "$VAULT" ]] || die "listing created vault.enc"

log "add from stdin (trailing newline stripped)"
tf_in "$CANARY"$'\n' vault add openai -
[[ $TF_RC -eq 0 ]] || die "vault add openai - failed: $TF_ERR"
expect_contains "$TF_OUT" "added the key of openai (...${CANARY: -4}, file backend)"
[[ -f "$VAULT" ]] || die "vault.enc not written"
expect_eq "$(stat -c %a "$VAULT")" "600" "vault.enc mode"
expect_eq "$(stat -c %a "$TOKFENCE_HOME")" "700" "home mode"
expect_eq "$(head -c 8 "$VAULT")" "TOKFENCE" "magic"
if grep -qaF -- "$CANARY" "$VAULT"; then die "key in plaintext in vault.enc"; fi

log "add refuses a provider that already has a key, naming rotate"
tf_in "$KEY2" vault add openai -
expect_eq "$TF_RC" "1" "exit code"
expect_eq "$TF_ERR" "tokfence: error: vault: provider 'openai' already has a key: replace it with 'tokfence vault rotate openai -'"

log "a key on argv works, with a warning"
tf_ok vault add groq "$KEY2"
expect_contains "$TF_ERR" "warning: a key given on the command line lands in your shell history"
expect_not_contains "$TF_ERR$TF_OUT" "$KEY2"

log "a key on argv is overwritten in the process's own command line before the vault is opened"
KEY3="tfargv-$(random_token 40)"
set +e
"$TOKFENCE_BIN" vault add cerebras "$KEY3" >"$WORK/out/argv.out" 2>"$WORK/out/argv.err" &
argv_pid=$!
set -e
# The warning comes after the scrub; Argon2id (about a second) keeps the process alive after it.
wait_until "grep -q 'warning: a key given on the command line' '$WORK/out/argv.err'"
cmdline=$(tr '\0' ' ' <"/proc/$argv_pid/cmdline" 2>/dev/null || true)
wait "$argv_pid" || die "vault add with the key on argv failed: $(cat "$WORK/out/argv.err")"
[[ -n "$cmdline" ]] || die "the process ended before its command line could be read (too fast to test)"
expect_not_contains "$cmdline" "$KEY3" "key in /proc/<pid>/cmdline"
expect_contains "$cmdline" "vault add cerebras ****" "the argument is overwritten in place"
tf_ok vault list --json
expect_eq "$(jq -r '.[] | select(.provider=="cerebras") | .fingerprint' <<<"$TF_OUT")" "...${KEY3: -4}" "the key itself was stored"
tf_ok vault remove cerebras

log "empty and malformed keys are refused"
tf_in $'  \n' vault add mistral -
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "tokfence: error: key for 'mistral': is empty: nothing was changed"
tf_in "two words" vault add mistral -
expect_eq "$TF_RC" "1"
expect_contains "$TF_ERR" "key for 'mistral': contains a space, control or non-ASCII character"

log "invalid provider names are refused with the rule"
tf_in "$KEY2" vault add "Open_AI" -
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "tokfence: error: provider name 'Open_AI': must match [a-z0-9][a-z0-9_-]{0,31}"

log "list: table and JSON, fingerprints only"
tf_ok vault list
expect_contains "$TF_OUT" "PROVIDER"
expect_contains "$TF_OUT" "openai"
expect_contains "$TF_OUT" "...${CANARY: -4}"
expect_contains "$TF_OUT" "groq"
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "groq,openai"
expect_eq "$(jq -r '.[1].backend' <<<"$TF_OUT")" "file"
expect_eq "$(jq -r '.[1].fingerprint' <<<"$TF_OUT")" "...${CANARY: -4}"
expect_eq "$(jq -r '.[1].rotated_at' <<<"$TF_OUT")" "null"
[[ $(jq -r '.[1].added_at' <<<"$TF_OUT") -gt 1700000000 ]] || die "added_at not a recent unix time"

log "rotate replaces the key and records when"
NEW="tfrotated-$(random_token 30)"
tf_in "$NEW" vault rotate openai -
[[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
tf_ok vault list --json
expect_eq "$(jq -r '.[] | select(.provider=="openai") | .fingerprint' <<<"$TF_OUT")" "...${NEW: -4}"
[[ $(jq -r '.[] | select(.provider=="openai") | .rotated_at' <<<"$TF_OUT") -gt 1700000000 ]] || die "rotated_at not set"
tf_in "$NEW" vault rotate anthropic -
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "tokfence: error: vault: no key for provider 'anthropic': add one with 'tokfence vault add anthropic -'"

log "remove"
tf_ok vault remove groq
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "openai"
expect_eq "$(stat -c %a "$VAULT")" "600" "vault.enc mode after rewrite"
ls "$TOKFENCE_HOME" | grep -q 'vault.enc.tmp-' && die "temporary file left behind"

log "--help explains each command with an example"
for c in add remove list rotate export import; do
  tf_ok vault "$c" --help
  expect_contains "$TF_OUT" "Example:"
done
