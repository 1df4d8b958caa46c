#!/usr/bin/env bash
# Attack: an agent spends through an endpoint whose cost is not reported in a usage field (image
# generation, batches, fine-tuning, audio, file uploads): tokfence forwarded it, logged no cost, and
# 10 such requests passed a $2 budget. Expected: while a budget applies only endpoints on the
# provider's allow-list are forwarded (chat/completions, responses, messages, embeddings, model
# listings, count_tokens, and [providers.X] budget_allowed_paths); the rest are refused with an
# error naming the setting, and never reach the upstream.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

i=0
unmetered_endpoint() {
  local paths=(/v1/images/generations /v1/batches /v1/fine_tuning/jobs /v1/audio/speech /v1/files)
  local path=${paths[$((i % ${#paths[@]}))]}
  i=$((i + 1))
  BODY="$WORK/out/unmetered.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    --data '{"model":"tf-test","prompt":"a very expensive picture","n":10}' "$PROXY_URL/openai$path")
}
curl -fsS -X DELETE "$FAKE_URL/__fake/requests" >/dev/null
attack_loop "unmetered endpoints" unmetered_endpoint
reached=$(curl -fsS "$FAKE_URL/__fake/requests" | jq '[.[] | select(.path | test("images|batches|fine_tuning|audio|files"))] | length')
expect_eq "$reached" 0 "requests to unmetered endpoints reached the upstream"
expect_eq "$REFUSED" "$ATTACK_TRIES"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unmetered_endpoint
expect_contains "$(jq -r .error.message "$BODY")" "budget_allowed_paths"

# The allow-list still lets the metered and free endpoints through.
CODE=$(curl -sS -o "$WORK/out/models.b" -w '%{http_code}' "$PROXY_URL/openai/v1/models")
expect_eq "$CODE" 200 "model listing"
CODE=$(curl -sS -o "$WORK/out/chat.b" -w '%{http_code}' -H 'content-type: application/json' \
  --data '{"model":"tf-test","max_tokens":5,"messages":[]}' "$PROXY_URL/openai/v1/chat/completions")
expect_eq "$CODE" 200 "chat completions"

# An endpoint the user allows is forwarded, and charged (here no usage comes back: the estimate).
stop_daemon
OPENAI_PROVIDER_LINES=('budget_allowed_paths = ["/v1/images/generations"]')
budget_setup
CODE=$(curl -sS -o "$WORK/out/img.b" -w '%{http_code}' -H 'content-type: application/json' \
  --data '{"model":"tf-test","prompt":"x","max_tokens":100}' "$PROXY_URL/openai/v1/images/generations")
expect_eq "$CODE" 404 "forwarded (the fake has no images endpoint)"
rows=$(log_rows /v1/images/generations)
expect_eq "$(jq -r '.[-1].cost_source' <<<"$rows")" none "a provider error is not billed"
