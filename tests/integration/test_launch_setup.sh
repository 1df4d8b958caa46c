#!/usr/bin/env bash
# tokfence setup openclaw: base URLs per API style, the models.providers snippet, and the checks
# daemon_reachable / provider_has_key with their exit codes.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config

# No daemon, no key: both checks fail, exit 1, and each names its fix.
tf setup openclaw --provider openai --test
expect_eq "$TF_RC" 1 "setup --test with nothing set up"
expect_contains "$TF_OUT" "FAIL  daemon_reachable: no daemon running: run 'tokfence start -d'"
expect_contains "$TF_OUT" "FAIL  provider_has_key: no key: run 'tokfence vault add openai -'"

add_canary_key anthropic
start_daemon

# Default provider: the first with a key (anthropic); its API has no /v1.
tf setup openclaw --test --json
expect_eq "$TF_RC" 0 "setup --test with daemon and key: $TF_OUT"
expect_eq "$(jq -r .provider <<<"$TF_OUT")" anthropic
expect_eq "$(jq -r .base_url <<<"$TF_OUT")" "$PROXY_URL/anthropic"
expect_eq "$(jq -r .api <<<"$TF_OUT")" anthropic-messages
expect_eq "$(jq -r '.models_providers.anthropic.apiKey' <<<"$TF_OUT")" tokfence-managed
(($(jq '.models_providers.anthropic.models | length' <<<"$TF_OUT") > 0)) || die "no models in the snippet"
expect_eq "$(jq -r '[.checks[] | select(.ok)] | length' <<<"$TF_OUT")" 2

tf_ok setup openclaw --provider openai --json
expect_eq "$(jq -r .base_url <<<"$TF_OUT")" "$PROXY_URL/openai/v1"
expect_eq "$(jq -r .api <<<"$TF_OUT")" openai-completions
tf_ok setup openclaw --provider google --json
expect_eq "$(jq -r .base_url <<<"$TF_OUT")" "$PROXY_URL/google/v1beta"

# A provider without a key fails only provider_has_key.
tf setup openclaw --provider openai --test
expect_eq "$TF_RC" 1
expect_contains "$TF_OUT" "ok    daemon_reachable"
expect_contains "$TF_OUT" "FAIL  provider_has_key"
expect_contains "$TF_OUT" '"baseUrl": "'"$PROXY_URL"'/openai/v1"'

tf setup openclaw --provider nosuch
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "tokfence: error: setup openclaw: unknown provider: nosuch"
