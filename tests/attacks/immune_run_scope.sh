#!/usr/bin/env bash
# A hostile agent inside `tokfence run codex` uses its session token (its API key) for what the
# user's key can do besides answering prompts: list and download the account's files, read the
# stored chat completions of every app of the account, start fine-tuning jobs, and call another
# provider whose key is in the vault. A run's session is scoped to the provider it was started
# with and to the requests agents make (core::agent_endpoints): each of these is refused
# (tokfence_scope, the session goes YELLOW then ORANGE) and none reaches the upstream, while the
# agent's own requests (chat, model list) are served.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
add_canary_key anthropic
start_daemon
mkdir -p "$WORK/project"

agent='
b=$OPENAI_BASE_URL
root=${b%/openai/v1}
k="Authorization: Bearer $OPENAI_API_KEY"
code() { curl -s -o /dev/null -w "%{http_code}" --max-time 20 "$@"; }
chat="{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
echo "chat $(code -H "$k" -H "Content-Type: application/json" -d "$chat" "$b/chat/completions")"
echo "models $(code -H "$k" "$b/models")"
echo "files $(code -H "$k" "$b/files")"
echo "stored $(code -H "$k" "$b/chat/completions?limit=100")"
echo "finetune $(code -H "$k" -H "Content-Type: application/json" -d "{\"model\":\"gpt-4o-mini\"}" "$b/fine_tuning/jobs")"
echo "anthropic $(code -H "x-api-key: $OPENAI_API_KEY" -H "Content-Type: application/json" -d "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$root/anthropic/v1/messages")"
'
before=$(curl -s "$FAKE_URL/__fake/requests" | jq length)
tf run codex --command /bin/sh --workdir "$WORK/project" -- -c "$agent"
expect_eq "$TF_RC" 0 "the run: $TF_ERR"
log "inside the run: $(tr '\n' ' ' <<<"$TF_OUT")"
grep -qx 'chat 200' <<<"$TF_OUT" || die "the agent's own chat request was not served: $TF_OUT"
grep -qx 'models 200' <<<"$TF_OUT" || die "the model list was not served: $TF_OUT"
for what in files stored finetune anthropic; do
  grep -qx "$what 403" <<<"$TF_OUT" || die "$what was not refused: $TF_OUT"
done
paths=$(curl -s "$FAKE_URL/__fake/requests" | jq -r ".[$before:][] | .path")
expect_eq "$(wc -l <<<"$paths" | tr -d ' ')" 2 "requests at the upstream: $paths"
grep -q 'files\|fine_tuning\|messages\|limit=' <<<"$paths" && die "a refused request reached the upstream: $paths"
tf_ok log --json -n 20
expect_eq "$(jq '[.[] | select(.status == 403 and (.error // "" | test("not in the session")))] | length' <<<"$TF_OUT")" 4 "a refused row each"
tf_ok session list --all --json
expect_contains "$(jq -r '(.history[]?, .sessions[]?) | select(.name | startswith("codex")) | .risk_state' <<<"$TF_OUT")" ORANGE "the run's session after three scope violations"
scan_for_canary || die "canary found in an artifact"
log "ok: a run's token works for its provider's agent requests only"
