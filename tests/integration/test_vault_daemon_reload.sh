#!/usr/bin/env bash
# A running daemon picks up vault changes: add, rotate, remove and import each ask it to reload
# its keys over the control socket (the daemon log records each reload).
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
expect_not_contains "$TF_ERR" "daemon" "no daemon runs yet: nothing to tell"
start_daemon

log "add while the daemon runs: it reloads"
tf_in "tfgroq-$(random_token 30)" vault add groq -
[[ $TF_RC -eq 0 ]] || die "add failed: $TF_ERR"
expect_contains "$TF_ERR" "tokfence: the running daemon reloaded its keys"
wait_until "grep -q 'keys reloaded: 2 provider(s)' '$TOKFENCE_HOME/daemon.log'"

log "rotate and remove: reloads again"
tf_in "tfrotated-$(random_token 30)" vault rotate groq -
[[ $TF_RC -eq 0 ]] || die "rotate failed: $TF_ERR"
expect_contains "$TF_ERR" "tokfence: the running daemon reloaded its keys"
tf_ok vault remove groq
expect_contains "$TF_ERR" "tokfence: the running daemon reloaded its keys"
wait_until "grep -q 'keys reloaded: 1 provider(s)' '$TOKFENCE_HOME/daemon.log'"

log "import that changes something: reloads; one that skips everything: nothing to tell"
export TOKFENCE_EXPORT_PASSPHRASE="export-$(random_token 20)"
tf_ok vault export --output "$WORK/keys.tfbundle"
tf_ok vault import "$WORK/keys.tfbundle"
expect_eq "$TF_OUT" "openai: skipped (already in the vault; --force replaces it)"
expect_not_contains "$TF_ERR" "reloaded"
tf_ok vault import "$WORK/keys.tfbundle" --force
expect_eq "$TF_OUT" "openai: replaced"
expect_contains "$TF_ERR" "tokfence: the running daemon reloaded its keys"
