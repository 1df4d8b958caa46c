#!/usr/bin/env bash
# End to end with the real agent CLIs (npm @openai/codex, @anthropic-ai/claude-code, opencode-ai,
# installed by scripts/install-agent-clis): one non-interactive turn of each through
# `tokfence run`, sandboxed, against the fake upstream. The fake must see the real key (it answers
# 401 to anything else), the request log must name the program, and no canary may appear
# anywhere. Skips (77) only when none of the CLIs is installed; a missing one is reported.
source "$(dirname "$0")/lib.sh"

bin=""
for d in "$BUILD_DIR/agent-clis" "$SOURCE_DIR/build/agent-clis"; do
  [[ -d "$d/node_modules/.bin" ]] && { bin="$d/node_modules/.bin"; break; }
done
[[ -n "$bin" ]] || skip "agent CLIs not installed: run scripts/install-agent-clis"
command -v node >/dev/null || skip "node not installed"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
add_canary_key anthropic
start_daemon
mkdir -p "$WORK/project"
cd "$WORK/project"
# The real keys sit in the parent's environment too: they must not reach the agents.
export OPENAI_API_KEY="$CANARY" ANTHROPIC_API_KEY="$CANARY"

# Rows logged for `caller` whose request reached the fake with the real key (status 200).
rows_for() {
  "$TOKFENCE_BIN" log --json | jq --arg c "$1" '[.[] | select(.caller_name == $c and .status == 200)] | length'
}
fake_requests() { curl -fsS "$FAKE_URL/__fake/requests" | jq --arg p "$1" '[.[] | select(.path | test($p))] | length'; }

ran=0
ran_names=()
if [[ -x "$bin/codex" ]]; then
  log "codex exec"
  before=$(fake_requests '/responses$')
  tf run codex --command "$bin/codex" -- exec --skip-git-repo-check --ephemeral \
    --dangerously-bypass-approvals-and-sandbox "ping"
  [[ $TF_RC -eq 0 ]] || die "codex exec exited $TF_RC: $TF_ERR"
  expect_contains "$TF_OUT$TF_ERR" "pong" "codex printed the fake's reply"
  expect_not_contains "$TF_ERR" "unrecognized configuration" "codex config has keys codex does not know"
  [[ $(fake_requests '/responses$') -gt $before ]] || die "codex request did not reach the fake upstream"
  ran=$((ran + 1)); ran_names+=(codex)
else
  log "codex not installed: not run"
fi

if [[ -x "$bin/claude" ]]; then
  log "claude -p"
  before=$(fake_requests '/messages$')
  tf run claude --command "$bin/claude" -- -p "ping"
  [[ $TF_RC -eq 0 ]] || die "claude -p exited $TF_RC: $TF_OUT $TF_ERR"
  expect_contains "$TF_OUT" "pong" "claude printed the fake's reply"
  [[ $(fake_requests '/messages$') -gt $before ]] || die "claude request did not reach the fake upstream"
  ran=$((ran + 1)); ran_names+=(claude)
else
  log "claude not installed: not run"
fi

if [[ -x "$bin/opencode" ]]; then
  log "opencode run"
  before=$(fake_requests '/(responses|chat/completions)$')
  tf run opencode --command "$bin/opencode" -- run "ping"
  [[ $TF_RC -eq 0 ]] || die "opencode run exited $TF_RC: $TF_OUT $TF_ERR"
  expect_contains "$TF_OUT" "pong" "opencode printed the fake's reply"
  [[ $(fake_requests '/(responses|chat/completions)$') -gt $before ]] || die "opencode request did not reach the fake upstream"
  ran=$((ran + 1)); ran_names+=(opencode)
else
  log "opencode not installed: not run"
fi

((ran > 0)) || skip "no agent CLI installed"
# ImmuneFence: each run was a session of its own, and a real agent's ordinary turn (its system
# prompt, tool definitions, the user's message) left it GREEN.
tf session list --all --json
[[ $TF_RC -eq 0 ]] || die "session list: $TF_ERR"
for name in "${ran_names[@]}"; do
  states=$(jq -r --arg n "$name" '[.history[] | select(.kind == "run" and (.name | startswith($n)))] | map(.risk_state) | unique | join(",")' <<<"$TF_OUT")
  expect_eq "$states" GREEN "risk state of $name's run session(s)"
done
# `stop` flushes the request log: then every program must have its rows, under its own name.
stop_daemon
for name in "${ran_names[@]}"; do
  [[ $(rows_for "$name") -ge 1 ]] || die "no request logged with caller '$name'"
done
# Every request the fake recorded carried the real key (it refuses others with 401, which the
# agents would have reported as failures above); none carried the dummy.
dummy_seen=$(curl -fsS "$FAKE_URL/__fake/requests" | jq '[.[] | select((.headers.authorization // "") + (.headers["x-api-key"] // "") | test("tokfence-managed"))] | length')
expect_eq "$dummy_seen" "0" "dummy key reached the upstream"
