#!/usr/bin/env bash
# Secrets bound to hosts (`vault add NAME - --host H`), on the file backend and on a real Secret
# Service (scripts/with-services starts one): the hosts are stored, listed (text and --json), kept by
# a rotation without --host, replaced by one with --host, carried through export and import, with
# the position of the binding (`--in path`: stored with the hosts, kept and carried alike); a bad
# host is refused with the rule and the vault stays as it was; a bound secret is no provider key
# (`watch` does not count it). The secret's value (the run's random canary) is in no output.
source "$(dirname "$0")/lib.sh"

[[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]] ||
  die "no session bus: run the tests through scripts/test or scripts/with-services"
command -v secret-tool >/dev/null || die "secret-tool (libsecret-tools) is missing: run scripts/setup"

export TOKFENCE_EXPORT_PASSPHRASE="export-$(random_token 20)"
# The keyring is shared by the whole test run: names of our own keep tests apart.
suffix=$(random_token 8 | tr 'A-Z' 'a-z')
NAME="tg-$suffix"
PROVIDER="pk-$suffix"
BAD_ITEM="bad-$suffix"
EXTRA_CLEANUP='for n in "$NAME" "$PROVIDER" "$BAD_ITEM"; do secret-tool clear xdg:schema org.tokfence.Key provider "$n" 2>/dev/null; done'
# Values made at run time: the bound secret ends as $CANARY (scanned by lib.sh); FIRST is its value
# before the rotation, checked the same way below.
FIRST="tffirst-$(random_token 40)"
PROVIDER_KEY="tfprovider-$(random_token 40)"
HOSTS_JSON='["api.telegram.org","uploads.example.org"]'

use_backend() {  # BACKEND: a fresh home of its own
  export TOKFENCE_HOME="$WORK/home-$1"
  mkdir -p "$TOKFENCE_HOME"
  printf '[vault]\nbackend = "%s"\n' "$1" >"$TOKFENCE_HOME/config.toml"
}
hosts_of() {  # NAME: the hosts `vault list --json` shows, as compact JSON
  tf_ok vault list --json
  jq -c --arg p "$1" '.[] | select(.provider==$p) | .hosts' <<<"$TF_OUT"
}
mine() {  # `vault list --json`, only this test's entries (other tests share the keyring)
  tf_ok vault list --json
  jq -c --arg a "$NAME" --arg b "$PROVIDER" --arg c "$NAME-x" '[.[] | select(.provider==$a or .provider==$b or .provider==$c)]' <<<"$TF_OUT"
}
in_of() {  # NAME: the position `vault list --json` shows ("header", "path", null for a provider key)
  tf_ok vault list --json
  jq -c --arg p "$1" '.[] | select(.provider==$p) | .in' <<<"$TF_OUT"
}
fingerprint_of() {
  tf_ok vault list --json
  jq -r --arg p "$1" '.[] | select(.provider==$p) | .fingerprint' <<<"$TF_OUT"
}

scenario() {
  local backend=$1
  use_backend "$backend"

  log "$backend: add a provider key and a secret bound to two hosts"
  tf_in "$PROVIDER_KEY" vault add "$PROVIDER" -
  [[ $TF_RC -eq 0 ]] || die "add failed: $TF_ERR"
  tf_in "$FIRST" vault add "$NAME" - --host api.telegram.org --host uploads.example.org --host api.telegram.org
  [[ $TF_RC -eq 0 ]] || die "add --host failed: $TF_ERR"
  expect_eq "$TF_OUT" "added the secret of $NAME (...${FIRST: -4}, $backend backend): sent only to api.telegram.org, uploads.example.org, in place of tokfence-secret:$NAME"

  log "$backend: list shows the hosts (text and --json), '-' for a provider key"
  tf_ok vault list
  expect_contains "$(head -1 <<<"$TF_OUT")" "HOSTS"
  line=$(grep -E "^$NAME " <<<"$TF_OUT") || die "no line for $NAME in: $TF_OUT"
  [[ "$line" == *" ...${FIRST: -4} "*"api.telegram.org, uploads.example.org" ]] || die "hosts not listed: $line"
  line=$(grep -E "^$PROVIDER " <<<"$TF_OUT") || die "no line for $PROVIDER in: $TF_OUT"
  [[ "$line" == *" -" ]] || die "a provider key is not listed with '-': $line"
  expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON" "--json hosts"
  expect_eq "$(hosts_of "$PROVIDER")" "[]" "--json hosts of a provider key"

  log "$backend: rotate keeps the hosts; rotate --host replaces them"
  tf_in "$CANARY" vault rotate "$NAME" -
  [[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
  expect_contains "$TF_OUT" "rotated the secret of $NAME (...${CANARY: -4}, $backend backend): sent only to api.telegram.org, uploads.example.org"
  expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON" "hosts after rotate"
  expect_eq "$(fingerprint_of "$NAME")" "...${CANARY: -4}"
  tf_in "$CANARY" vault rotate "$NAME" - --host api.telegram.org
  [[ $TF_RC -eq 0 ]] || die "rotate --host failed: $TF_ERR"
  expect_eq "$(hosts_of "$NAME")" '["api.telegram.org"]' "hosts after rotate --host"
  tf_in "$CANARY" vault rotate "$NAME" - --host api.telegram.org --host uploads.example.org
  [[ $TF_RC -eq 0 ]] || die "rotate --host failed: $TF_ERR"
  expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON"
  expect_eq "$(in_of "$NAME")" '"header"' "the default position"
  expect_eq "$(in_of "$PROVIDER")" null "a provider key's position"

  log "$backend: --in path is stored with the hosts, kept by a rotation without --host"
  tf_in "$CANARY" vault rotate "$NAME" - --in path
  expect_eq "$TF_RC" "1" "--in without --host"
  expect_contains "$TF_ERR" "--in goes with --host: nothing was changed"
  tf_in "$CANARY" vault rotate "$NAME" - --host api.telegram.org --host uploads.example.org --in path
  [[ $TF_RC -eq 0 ]] || die "rotate --in path failed: $TF_ERR"
  expect_contains "$TF_OUT" "in the URL path too"
  expect_eq "$(in_of "$NAME")" '"path"' "position after --in path"
  tf_in "$CANARY" vault rotate "$NAME" -
  [[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
  expect_eq "$(in_of "$NAME")" '"path"' "position after a rotation without --host"
  tf_ok vault list
  [[ "$(grep -E "^$NAME " <<<"$TF_OUT")" == *"uploads.example.org (in path)" ]] || die "position not listed: $TF_OUT"

  log "$backend: bad hosts are refused with the rule, and the vault stays as it was"
  local before
  before=$(mine)
  [[ $backend != file ]] || cp "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before"
  local rule="a host is a lower-case DNS name with at least one dot"
  local bad want
  while IFS='|' read -r bad want; do
    for cmd in "add $NAME-x" "rotate $NAME"; do
      # shellcheck disable=SC2086  # cmd is two words on purpose
      tf_in "$CANARY" vault $cmd - --host api.telegram.org --host "$bad"
      expect_eq "$TF_RC" "1" "vault $cmd --host '$bad'"
      expect_eq "$(printf '%s\n' "$TF_ERR" | wc -l)" "1" "one-line error"
      expect_contains "$TF_ERR" "tokfence: error: --host '$bad': $want"
      expect_contains "$TF_ERR" ": nothing was changed"
    done
  done <<EOF
API.Telegram.org|has upper-case letters: write it lower-case: 'api.telegram.org'
api.telegram.org:443|has a port: give the name alone: 'api.telegram.org'
127.0.0.1|is an IP address: $rule
[::1]|is an IP address: $rule
*.github.io|is a wildcard: bind the secret to each exact host it is for, e.g. --host github.io
a..b|has an empty label: $rule
localhost|has no dot: $rule
api.telegram.org.|ends with '.': drop the trailing dot: 'api.telegram.org'
EOF
  expect_eq "$(mine)" "$before" "the vault after refused hosts"
  if [[ $backend == file ]]; then
    cmp -s "$TOKFENCE_HOME/vault.enc" "$WORK/vault.enc.before" || die "vault.enc changed by a refused host"
  fi

  log "$backend: export and import keep the hosts"
  tf_ok vault export --output "$WORK/$backend.tfbundle"
  expect_contains "$TF_OUT" "$NAME"
  if grep -qaF -- "api.telegram.org" "$WORK/$backend.tfbundle"; then die "hosts in plaintext in the bundle"; fi
  tf_ok vault remove "$NAME"
  tf_ok vault import "$WORK/$backend.tfbundle"
  expect_contains "$TF_OUT" "$NAME: added"
  expect_contains "$TF_OUT" "$PROVIDER: skipped"
  expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON" "hosts after import"
  expect_eq "$(in_of "$NAME")" '"path"' "position after import"
  expect_eq "$(hosts_of "$PROVIDER")" "[]" "a provider key stays one after import"
  expect_eq "$(fingerprint_of "$NAME")" "...${CANARY: -4}" "the imported secret"
  # A forced import over a provider key of the same name makes it the bound secret again.
  tf_ok vault remove "$NAME"
  tf_in "tfplain-$(random_token 30)" vault add "$NAME" -
  [[ $TF_RC -eq 0 ]] || die "add failed: $TF_ERR"
  expect_eq "$(hosts_of "$NAME")" "[]"
  tf_ok vault import --force "$WORK/$backend.tfbundle"
  expect_contains "$TF_OUT" "$NAME: replaced"
  expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON" "hosts after import --force"
}

scenario file

# Into another backend: the file vault's bundle lands in the keyring with its hosts.
scenario secret-service
log "secret-service: the item carries a hosts attribute; a provider key's item has none"
[[ "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$NAME")" == "$CANARY" ]] || die "secret-tool does not see the secret"
items=$(secret-tool search --all xdg:schema org.tokfence.Key provider "$NAME" 2>&1 | grep -v '^secret = ')
expect_contains "$items" "attribute.hosts = api.telegram.org,uploads.example.org"
expect_contains "$items" "attribute.in = path"
items=$(secret-tool search --all xdg:schema org.tokfence.Key provider "$PROVIDER" 2>&1 | grep -v '^secret = ')
expect_contains "$items" "attribute.provider = $PROVIDER"
expect_not_contains "$items" "attribute.hosts"

log "secret-service: an item whose hosts attribute is damaged is refused, never read as a provider key"
printf '%s' "tfdamaged-$(random_token 30)" |
  secret-tool store --label "tokfence: $BAD_ITEM" xdg:schema org.tokfence.Key provider "$BAD_ITEM" added_at 1 rotated_at 0 hosts 'api.telegram.org,A..b'
tf vault list
expect_eq "$TF_RC" "1"
expect_contains "$TF_ERR" "tokfence: error: secret service: the item of '$BAD_ITEM' has a bad hosts attribute: host 'A..b': "
expect_contains "$TF_ERR" "remove it with 'tokfence vault remove $BAD_ITEM'"
tf_ok vault remove "$BAD_ITEM"
tf_ok vault list

log "secret-service: the file backend's bundle imported into the keyring keeps its hosts"
tf_ok vault remove "$NAME"
tf_ok vault import "$WORK/file.tfbundle"
expect_contains "$TF_OUT" "$NAME: added"
expect_eq "$(hosts_of "$NAME")" "$HOSTS_JSON" "hosts across backends"
expect_eq "$(in_of "$NAME")" '"path"' "position across backends"

log "secret-service: an item stored before positions existed (no 'in') goes in credential fields only"
tf_ok vault remove "$NAME"
printf '%s' "$CANARY" |
  secret-tool store --label "tokfence: $NAME" xdg:schema org.tokfence.Key provider "$NAME" added_at 1 rotated_at 0 hosts 'api.telegram.org'
expect_eq "$(hosts_of "$NAME")" '["api.telegram.org"]' "an old item's hosts"
expect_eq "$(in_of "$NAME")" '"header"' "an old item's position"

log "a secret bound to hosts is no provider key: watch finds none to watch"
export TOKFENCE_HOME="$WORK/home-watch"
mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
tf_in "$CANARY" vault add openai - --host api.telegram.org
[[ $TF_RC -eq 0 ]] || die "add failed: $TF_ERR"
tf watch --once
expect_eq "$TF_RC" "1" "watch with only a bound secret"
expect_contains "$TF_ERR" "watch: no provider keys in the vault to watch"

# lib.sh scans for $CANARY on exit; the value before the rotation gets the same scan here.
hits=$(grep -rlaF -- "$FIRST" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)' || true)
[[ -z "$hits" ]] || die "the bound secret's first value found in: $hits"
