#!/usr/bin/env bash
# `tokfence watch --auto-revoke`: an alert revokes the provider, loudly, and the next request
# through the proxy gets 403 tokfence_provider_revoked. With a daemon running the revoke goes
# through its control socket (effective at once); with none it is written to the database the way
# `tokfence revoke` does, and the daemon refuses the provider from its next start.
# Real parts: the daemon, the vault, the request log; fakes only for the provider APIs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config '[notifications]' 'desktop = false'
ADMIN_KEY="tfadminkey-$(random_token 40)"
export WATCH_EXPECT_KEY="$ADMIN_KEY"
start_fake_usage_api USAGE --expect-key-env WATCH_EXPECT_KEY
vault_add openai "$CANARY"
vault_add openai-admin "$ADMIN_KEY"
start_daemon

chat() { # prints the HTTP status of one proxied chat request; the body lands in $WORK/chat.json
  curl -sS --max-time 20 -o "$WORK/chat.json" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
    -H 'content-type: application/json' -H 'authorization: Bearer tokfence-dummy' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
}

# A real proxied request lands in the request log; the provider reports it too.
expect_eq "$(chat)" 200 "proxied request before the alert"
wait_until "test \"\$(sqlite3 '$WATCH_DB' 'SELECT count(*) FROM requests' 2>/dev/null)\" -ge 1" 20
in=$(jq '.usage.prompt_tokens' "$WORK/chat.json")
out=$(jq '.usage.completion_tokens' "$WORK/chat.json")
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$(now_s),\"input_tokens\":$in,\"output_tokens\":$out}"

# Agreement: no alert, nothing revoked.
tf watch --once --auto-revoke --usage-endpoint "openai=$USAGE"
expect_eq "$TF_RC" 0 "no alert while the provider agrees: $TF_ERR"
expect_not_contains "$TF_ERR" "REVOKED"
expect_eq "$(chat)" 200 "still open"

# Someone else used the key 2 hours ago: alert, and the provider is revoked through the daemon.
fake_post "$USAGE" /__fake/usage "{\"api\":\"openai\",\"ts\":$(ago_s 7200),\"requests\":40,\"input_tokens\":90000,\"output_tokens\":9000,\"cost_usd\":2.5}"
tf watch --once --auto-revoke --usage-endpoint "openai=$USAGE"
expect_eq "$TF_RC" 2 "alert"
expect_contains "$TF_OUT" "ALERT openai:"
expect_contains "$TF_ERR" "tokfence: REVOKED provider 'openai' after a possible key leak"
expect_contains "$TF_OUT" "tokfence revoked 'openai' (through the running daemon"
expect_eq "$(chat)" 403 "the next proxied request is refused"
expect_eq "$(jq -r '.error.type' "$WORK/chat.json")" tokfence_provider_revoked
expect_eq "$(sqlite3 "$WATCH_DB" 'SELECT count(*) FROM watch_alerts WHERE revoked = 1')" 3 "alerts stored as revoked"
tf_ok watch --history
expect_contains "$TF_OUT" "REVOKED"

# No daemon: the revoke is written to the database and applies when the daemon starts.
tf_ok restore openai
expect_eq "$(chat)" 200 "restored"
stop_daemon
wait_until "! test -e '$TOKFENCE_HOME/daemon.json'" 20
tf watch --once --auto-revoke --usage-endpoint "openai=$USAGE"
expect_eq "$TF_RC" 2
expect_contains "$TF_ERR" "tokfence: REVOKED provider 'openai'"
expect_contains "$TF_OUT" "in the database: no daemon runs"
start_daemon
expect_eq "$(chat)" 403 "the daemon starts with the provider revoked"
expect_eq "$(jq -r '.error.type' "$WORK/chat.json")" tokfence_provider_revoked
