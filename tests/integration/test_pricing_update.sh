#!/usr/bin/env bash
# `tokfence pricing update --from FILE` (LiteLLM's model_prices_and_context_window.json format):
# a bad file is a clear error and changes nothing; a good one is written to
# $TOKFENCE_HOME/pricing-overrides.json (0600), the command reports added/changed/unchanged, and the
# running daemon prices the next request with it (a model it refused for lack of a price while a
# budget applies now passes and is charged). `pricing list --unknown` lists the log's unpriced models.
source "$(dirname "$0")/lib.sh"

SAMPLE="$SOURCE_DIR/tests/pricing/litellm_sample.json"
OVERRIDES="$TOKFENCE_HOME/pricing-overrides.json"
start_fake_upstream
write_test_config '[budget]' 'timezone = "UTC"'
add_canary_key openai
start_daemon
tf_ok budget set openai 100 daily

req() {
  BODY="$WORK/out/req.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    --data "{\"model\":\"$1\",\"max_tokens\":5,\"messages\":[]}" "$PROXY_URL/openai/v1/chat/completions")
}

# Before: no price, so the budget refuses it; the log remembers the name.
req tf-litellm-model
expect_eq "$CODE" 403
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unknown_cost
tf_ok pricing list --unknown
expect_contains "$TF_OUT" "tf-litellm-model"
tf_ok pricing list --unknown --json
expect_eq "$(jq -r '.[0].model' <<<"$TF_OUT")" tf-litellm-model

# Bad files: a clear error, nothing written.
printf '{"gpt-4o": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-6}}' >"$WORK/bad.json"
tf pricing update --from "$WORK/bad.json"
expect_eq "$TF_RC" 1 "bad price"
expect_contains "$TF_ERR" 'tokfence: error: '
expect_contains "$TF_ERR" 'entry "gpt-4o": input_cost_per_token must be a number'
expect_contains "$TF_ERR" "nothing changed"
printf 'not json' >"$WORK/bad2.json"
tf pricing update --from "$WORK/bad2.json"
expect_eq "$TF_RC" 1 "not JSON"
expect_contains "$TF_ERR" "not valid JSON"
tf pricing update --from "$WORK/missing.json"
expect_eq "$TF_RC" 1 "missing file"
[[ ! -e "$OVERRIDES" ]] || die "a bad file wrote $OVERRIDES"

# A good file.
tf_ok pricing update --from "$SAMPLE"
expect_contains "$TF_OUT" "6 model price(s)"
expect_contains "$TF_OUT" "added 4, changed 1, unchanged 1"
expect_contains "$TF_OUT" "changed: openai/gpt-4o: input \$2.50"
expect_contains "$TF_OUT" "-> input \$3.00"
expect_contains "$TF_OUT" "added: openai/tf-litellm-model"
expect_contains "$TF_OUT" "the running daemon uses the new prices"
expect_eq "$(stat -c %a "$OVERRIDES")" 600 "override table mode"
grep -q 'tokfence: pricing reloaded' "$TOKFENCE_HOME/daemon.log" || grep -q 'pricing reloaded' "$TOKFENCE_HOME/daemon.log" ||
  die "the daemon did not log the reload"

# The running daemon uses it at once: $2 / $8 per million tokens.
req tf-litellm-model
expect_eq "$CODE" 200 "priced now"
input=$(jq .usage.prompt_tokens "$BODY")
output=$(jq .usage.completion_tokens "$BODY")
tf_ok log --json -n 1
expect_eq "$(jq '.[0].cost_pico' <<<"$TF_OUT")" $((input * 2000000 + output * 8000000)) "cost at the updated price"
expect_eq "$(jq -r '.[0].cost_source' <<<"$TF_OUT")" usage
tf_ok pricing list --unknown
expect_contains "$TF_OUT" "every model in the request log has a price"
tf_ok pricing list --provider openai --json
expect_eq "$(jq '.[] | select(.model == "gpt-4o") | .input' <<<"$TF_OUT")" 3 "gpt-4o's updated input price"

# A bad update later keeps the table in force, byte for byte.
before=$(sha256sum <"$OVERRIDES")
tf pricing update --from "$WORK/bad.json"
expect_eq "$TF_RC" 1
expect_eq "$(sha256sum <"$OVERRIDES")" "$before" "a bad update changed the table"

# Unchanged on a second run; read again after a restart.
tf_ok pricing update --from "$SAMPLE"
expect_contains "$TF_OUT" "added 0, changed 0, unchanged 6"
stop_daemon
start_daemon
req tf-litellm-model
expect_eq "$CODE" 200 "priced after a restart"
