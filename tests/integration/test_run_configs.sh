#!/usr/bin/env bash
# The native configs `tokfence run` writes are valid for their programs: codex's config.toml
# parses (python3 tomllib) and selects the tokfence provider on the proxy with the key's variable
# (holding the run's session token) and the Responses API, with phone-home features off; claude
# gets its base URL, the token as its key and no non-essential traffic; opencode's JSON has exactly one provider, on the proxy, and
# no models fetch. The environment the program sees points at the same files.
source "$(dirname "$0")/lib.sh"
python3 -c 'import tomllib' 2>/dev/null || die "python3 >= 3.11 (tomllib) is needed"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
add_canary_key anthropic
# No daemon yet: the first run starts it.
mkdir -p "$WORK/project"
cd "$WORK/project"

envvar() { printf '%s\n' "$TF_OUT" | sed -n "s/^$1=//p"; }

log "codex"
[[ ! -e "$TOKFENCE_HOME/daemon.json" ]] || die "a daemon is already running"
tf run codex --command /usr/bin/env
[[ $TF_RC -eq 0 ]] || die "run codex failed: $TF_ERR"
[[ -s "$TOKFENCE_HOME/daemon.json" ]] || die "tokfence run did not start the daemon"
PROXY_PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
codex_home=$(envvar CODEX_HOME)
expect_eq "$codex_home" "$TOKFENCE_HOME/harness/codex/codex-home"
python3 - "$codex_home/config.toml" "$PROXY_PORT" "$TF_OUT" <<'EOF'
import sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
port, env = sys.argv[2], dict(l.split("=", 1) for l in sys.argv[3].splitlines() if "=" in l)
p = cfg["model_providers"][cfg["model_provider"]]
assert cfg["model_provider"] == "tokfence", cfg
assert p["base_url"] == f"http://127.0.0.1:{port}/openai/v1", p
assert p["wire_api"] == "responses", p
assert env[p["env_key"]].startswith("tfc1."), p["env_key"]
assert cfg["analytics"]["enabled"] is False
assert cfg["features"]["plugins"] is False
assert cfg["check_for_update_on_startup"] is False
EOF

log "claude"
tf run claude --command /usr/bin/env
[[ $TF_RC -eq 0 ]] || die "run claude failed: $TF_ERR"
expect_eq "$(envvar ANTHROPIC_BASE_URL)" "http://127.0.0.1:$PROXY_PORT/anthropic"
[[ "$(envvar ANTHROPIC_API_KEY)" == tfc1.* ]] || die "claude's key is not the session token"
expect_eq "$(envvar CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC)" "1"
claude_dir=$(envvar CLAUDE_CONFIG_DIR)
expect_eq "$claude_dir" "$TOKFENCE_HOME/harness/claude/claude-config"
expect_eq "$(jq -r '.env.ANTHROPIC_BASE_URL' "$claude_dir/settings.json")" "http://127.0.0.1:$PROXY_PORT/anthropic"
expect_eq "$(jq -r '.env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC' "$claude_dir/settings.json")" "1"
expect_eq "$(jq -r '.hasCompletedOnboarding' "$claude_dir/.claude.json")" "true"
if [[ $(id -u) -eq 0 ]]; then expect_eq "$(envvar IS_SANDBOX)" "1"; fi

log "opencode (openai, then anthropic)"
tf run opencode --command /usr/bin/env
[[ $TF_RC -eq 0 ]] || die "run opencode failed: $TF_ERR"
oc=$(envvar OPENCODE_CONFIG)
expect_eq "$(envvar OPENCODE_DISABLE_MODELS_FETCH)" "1"
expect_eq "$(jq -r '.provider | keys | join(",")' "$oc")" "tokfence"
expect_eq "$(jq -r '.provider.tokfence.options.baseURL' "$oc")" "http://127.0.0.1:$PROXY_PORT/openai/v1"
# After the run the token is scrubbed from the config (it held it while the run lasted).
expect_eq "$(jq -r '.provider.tokfence.options.apiKey' "$oc")" "tokfence-managed"
model=$(jq -r '.model' "$oc")
[[ "$model" == tokfence/* ]] || die "opencode model not on the tokfence provider: $model"
expect_eq "$(jq -r --arg m "${model#tokfence/}" '.provider.tokfence.models | has($m)' "$oc")" "true"
[[ -d "$(dirname "$oc")/node_modules" ]] || die "no node_modules next to the opencode config (it would npm install)"
tf run opencode --provider anthropic --model claude-haiku-4-5 --command /usr/bin/env
[[ $TF_RC -eq 0 ]] || die "run opencode --provider anthropic failed: $TF_ERR"
expect_eq "$(jq -r '.provider.tokfence.options.baseURL' "$oc")" "http://127.0.0.1:$PROXY_PORT/anthropic/v1"
expect_eq "$(jq -r '.model' "$oc")" "tokfence/claude-haiku-4-5"

log "bad model name"
tf run opencode --model 'x"y' --command /usr/bin/env
expect_eq "$TF_RC" "1" "bad model"
expect_contains "$TF_ERR" "opencode: bad model name"

log "after the runs no harness file holds a session token, only the placeholder"
hits=$(grep -rlE 'tfc1\.[A-Za-z0-9_-]{8}' "$TOKFENCE_HOME/harness" || true)
[[ -z $hits ]] || die "a session token left in the harness home: $hits"
grep -rl "tokfence-managed" "$TOKFENCE_HOME/harness" >/dev/null || die "dummy key not in any harness file"
