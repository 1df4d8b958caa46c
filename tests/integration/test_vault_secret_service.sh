#!/usr/bin/env bash
# The Secret Service backend against a real gnome-keyring (scripts/with-services starts one):
# round trip, the item as secret-tool sees it, export/import across backends, and the clear errors
# for a service that is absent or locked. `auto` falls back to the file when none answers.
source "$(dirname "$0")/lib.sh"

[[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]] ||
  die "no session bus: run the tests through scripts/test or scripts/with-services"
command -v secret-tool >/dev/null || die "secret-tool (libsecret-tools) is missing: run scripts/setup"

mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "secret-service"\n' >"$TOKFENCE_HOME/config.toml"
# The keyring is shared by the whole test run: names of our own keep tests apart.
suffix=$(random_token 8 | tr 'A-Z' 'a-z')
P1="ss-$suffix-a"
P2="ss-$suffix-b"
EXTRA_CLEANUP='secret-tool clear xdg:schema org.tokfence.Key provider "$P1" 2>/dev/null; secret-tool clear xdg:schema org.tokfence.Key provider "$P2" 2>/dev/null'

log "add from stdin lands as one item under tokfence's schema"
add_canary_key "$P1"
expect_contains "$TF_OUT" "secret-service backend"
[[ ! -e "$TOKFENCE_HOME/vault.enc" ]] || die "the file backend was used"
# Compared in memory only: the key never reaches a file or the test's output.
[[ "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P1")" == "$CANARY" ]] || die "secret-tool does not see the key"
items=$(secret-tool search --all xdg:schema org.tokfence.Key provider "$P1" 2>&1 | grep -v '^secret = ')
expect_contains "$items" "label = tokfence: $P1"
expect_contains "$items" "attribute.provider = $P1"
expect_contains "$items" "attribute.added_at = "
expect_contains "$items" "attribute.rotated_at = 0"

log "refuse a second add, list, rotate"
tf_in "tfother-$(random_token 20)" vault add "$P1" -
expect_eq "$TF_RC" "1"
expect_contains "$TF_ERR" "already has a key: replace it with 'tokfence vault rotate $P1 -'"
tf_ok vault list --json
expect_eq "$(jq -r --arg p "$P1" '.[] | select(.provider==$p) | .backend' <<<"$TF_OUT")" "secret-service"
expect_eq "$(jq -r --arg p "$P1" '.[] | select(.provider==$p) | .fingerprint' <<<"$TF_OUT")" "...${CANARY: -4}"
NEW="tfrotated-$(random_token 30)"
tf_in "$NEW" vault rotate "$P1" -
[[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
[[ "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P1")" == "$NEW" ]] || die "rotation not stored"
expect_eq "$(secret-tool search --all xdg:schema org.tokfence.Key provider "$P1" 2>&1 | grep -c '^label = ')" "1" "one item after rotate"
tf_ok vault list --json
[[ $(jq -r --arg p "$P1" '.[] | select(.provider==$p) | .rotated_at' <<<"$TF_OUT") != null ]] || die "rotated_at not set"

log "export from the keyring, import into a file vault and back"
export TOKFENCE_EXPORT_PASSPHRASE="export-$(random_token 20)"
add_canary_key "$P2"
tf_ok vault export --output "$WORK/ss.tfbundle"
expect_contains "$TF_OUT" "$P1"
expect_contains "$TF_OUT" "$P2"
tf_ok vault remove "$P2"
[[ -z "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P2")" ]] || die "remove left the item"
tf_ok vault import "$WORK/ss.tfbundle"
expect_contains "$TF_OUT" "$P1: skipped"
expect_contains "$TF_OUT" "$P2: added"
[[ "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P2")" == "$CANARY" ]] || die "import did not store the key"

log "remove, then a provider not in the vault"
tf_ok vault remove "$P2"
tf vault remove "$P2"
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "tokfence: error: vault: no key for provider '$P2': see 'tokfence vault list'"

log "an import that fails part-way is undone: the keyring is as it was"
# The bundle holds P1 (the key of the export) and P2. P1 now gets another key, so the import's
# --force replace of it is visible; the next write (P2's add) is made to fail.
NEWER="tfnewer-$(random_token 30)"
tf_in "$NEWER" vault rotate "$P1" -
[[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
tf_ok vault list --json
before=$(jq -c --arg p "$P1" '.[] | select(.provider==$p) | [.added_at, .rotated_at]' <<<"$TF_OUT")
TOKFENCE_TEST_SS_FAIL_AFTER=1 tf vault import --force "$WORK/ss.tfbundle"
expect_eq "$TF_RC" "1" "import with a failing write"
expect_contains "$TF_ERR" "injected failure"
expect_contains "$TF_ERR" "nothing was imported"
[[ "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P1")" == "$NEWER" ]] ||
  die "the replaced key was not restored after the failed import"
[[ -z "$(secret-tool lookup xdg:schema org.tokfence.Key provider "$P2")" ]] || die "a failed import left an added key"
tf_ok vault list --json
expect_eq "$(jq -c --arg p "$P1" '.[] | select(.provider==$p) | [.added_at, .rotated_at]' <<<"$TF_OUT")" "$before" \
  "dates of the restored key"
expect_eq "$(secret-tool search --all xdg:schema org.tokfence.Key provider "$P1" 2>&1 | grep -c '^label = ')" "1" \
  "one item for the restored key"
# Without the fault the same import goes through.
tf_ok vault import --force "$WORK/ss.tfbundle"
expect_contains "$TF_OUT" "$P1: replaced"
expect_contains "$TF_OUT" "$P2: added"
tf_ok vault remove "$P2"

UNREACHABLE='tokfence: error: secret service: not reachable on the session bus: start a keyring daemon or set [vault] backend = "file"'

log "absent: the session bus address points nowhere"
DBUS_SESSION_BUS_ADDRESS="unix:path=$WORK/no-such-bus" tf vault list
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "$UNREACHABLE"
DBUS_SESSION_BUS_ADDRESS="unix:path=$WORK/no-such-bus" tf_in "$NEW" vault add "$P2" -
expect_eq "$TF_RC" "1"
expect_eq "$TF_ERR" "$UNREACHABLE"

log "absent: a session bus with no Secret Service on it (no D-Bus activation, no hang)"
set +e
timeout 60 dbus-run-session -- "$TOKFENCE_BIN" vault list >"$WORK/out/nobus.stdout" 2>"$WORK/out/nobus.stderr" </dev/null
rc=$?
set -e
[[ $rc -ne 124 ]] || die "vault list hung on a bus without a Secret Service"
expect_eq "$rc" "1"
expect_eq "$(grep -v '^dbus-daemon' "$WORK/out/nobus.stderr")" "$UNREACHABLE"

log "auto falls back to the file when no Secret Service answers"
printf '[vault]\nbackend = "auto"\n' >"$TOKFENCE_HOME/config.toml"
DBUS_SESSION_BUS_ADDRESS="unix:path=$WORK/no-such-bus" tf_in "$NEW" vault add "$P2" -
[[ $TF_RC -eq 0 ]] || die "auto add failed: $TF_ERR"
expect_contains "$TF_OUT" "file backend"
[[ -f "$TOKFENCE_HOME/vault.enc" ]] || die "auto did not use the file"
tf_ok vault list --json
expect_eq "$(jq -r --arg p "$P1" '.[] | select(.provider==$p) | .backend' <<<"$TF_OUT")" "secret-service" "auto uses the keyring when it answers"
rm -f "$TOKFENCE_HOME/vault.enc"
printf '[vault]\nbackend = "secret-service"\n' >"$TOKFENCE_HOME/config.toml"

log "locked: a private keyring whose login collection is locked"
# Locking the shared keyring would break tests running beside this one: use a keyring of our own.
mkdir -p "$WORK/keyring"
set +e
TOKFENCE_TEST_KEYRING_HOME="$WORK/keyring" P1="$P1" timeout 120 dbus-run-session -- bash "$SOURCE_DIR/scripts/keyring-session" bash -c '
  set -u
  printf "%s" "tflocked-key-value" | "$TOKFENCE_BIN" vault add "$P1" - >/dev/null 2>&1 || { echo "setup add failed" >&2; exit 90; }
  dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
    org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null || exit 91
  "$TOKFENCE_BIN" vault list; echo "rc=$?" >&2
  printf "%s" "tfother-key-value" | "$TOKFENCE_BIN" vault add other-provider -; echo "rc=$?" >&2
  "$TOKFENCE_BIN" vault remove "$P1"; echo "rc=$?" >&2
' >"$WORK/out/locked.stdout" 2>"$WORK/out/locked.stderr"
rc=$?
set -e
[[ $rc -eq 0 ]] || die "locked-keyring session failed ($rc): $(cat "$WORK/out/locked.stderr")"
locked=$(grep -v '^dbus-daemon' "$WORK/out/locked.stderr")
expect_eq "$locked" "$(printf 'tokfence: error: secret service: collection is locked: unlock your keyring\nrc=1\n%.0s' 1 2 3)"
