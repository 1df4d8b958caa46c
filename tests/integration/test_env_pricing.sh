#!/usr/bin/env bash
# `tokfence pricing list`: the embedded table plus [pricing."<model>"] overrides, in USD per million
# tokens, as a table and as JSON, filtered by provider; bad input gets a clear error.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
cat >"$TOKFENCE_HOME/config.toml" <<'TOML'
[pricing."my-local-model"]
input = 1.5
output = 3
cache_read = 0.075

[pricing."gpt-4o"]
input = 9.25
output = 18.5
TOML

tf_ok pricing list --json
n=$(jq length <<<"$TF_OUT")
[[ $n -ge 20 ]] || die "the embedded table has only $n models"
for p in openai anthropic google; do
  [[ $(jq --arg p $p '[.[] | select(.provider == $p)] | length' <<<"$TF_OUT") -ge 2 ]] || die "no $p models priced"
done
expect_eq "$(jq -c '.[] | select(.model == "my-local-model") | [.input, .output, .cache_read, .cache_write]' <<<"$TF_OUT")" \
  "[1.5,3,0.075,0]" "a config-only model"
expect_eq "$(jq -c '[.[] | select(.model == "gpt-4o")][0] | [.input, .output]' <<<"$TF_OUT")" "[9.25,18.5]" \
  "config overrides the embedded price"

tf_ok pricing list
expect_contains "$(head -1 <<<"$TF_OUT")" "USD per million tokens"
expect_contains "$(sed -n 2p <<<"$TF_OUT")" "CACHE WRITE"
row=$(awk '$2 == "my-local-model"' <<<"$TF_OUT")
expect_eq "$(awk '{print $3, $4, $5, $6}' <<<"$row")" '$1.50 $3.00 $0.075 $0.00'

tf_ok pricing list --provider anthropic --json
[[ $(jq length <<<"$TF_OUT") -ge 2 ]] || die "no anthropic models"
expect_eq "$(jq -r '[.[] | select(.provider != "anthropic" and .provider != null)] | length' <<<"$TF_OUT")" 0 \
  "--provider anthropic shows only anthropic models"
expect_contains "$(jq -r '.[].model' <<<"$TF_OUT")" "claude"

tf pricing list --provider nosuch
[[ $TF_RC -ne 0 ]] || die "unknown provider accepted"
expect_contains "$TF_ERR" "tokfence: error: provider 'nosuch': unknown: run 'tokfence provider list'"
tf pricing list --provider 'BAD NAME'
[[ $TF_RC -ne 0 ]] || die "bad provider name accepted"
expect_contains "$TF_ERR" "provider name 'BAD NAME'"
tf pricing
[[ $TF_RC -ne 0 ]] || die "pricing without a subcommand accepted"

tf_ok pricing list --help
expect_contains "$TF_OUT" "Example"
