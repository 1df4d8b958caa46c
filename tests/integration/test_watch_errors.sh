#!/usr/bin/env bash
# Failures of one provider's usage API (401, 403, malformed JSON, a wrong shape, a redirect, a
# dead port) are reported for that provider and never stop the others; 401/403 name the admin key
# to add. Bad command-line input gets a clear error and changes nothing. No key in any output.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../fake_usage_api/helpers.sh"

start_fake_usage_api GOOD
start_fake_usage_api BAD
watch_config
vault_add openai "$CANARY"          # no admin key yet: the proxy key is tried
vault_add anthropic-admin "$CANARY"
vault_add mistral "$CANARY"
ts=$(ago_s 3600)
fake_post "$GOOD" /__fake/usage "{\"api\":\"simple\",\"ts\":$ts,\"input_tokens\":10,\"output_tokens\":1}"
local_row mistral $((ts * 1000)) 200 10 1 100

run_with_bad_openai() {
  tf watch --once --usage-endpoint "openai=$BAD" --usage-endpoint "anthropic=$BAD" \
    --usage-endpoint "mistral=$GOOD/simple/usage" "$@"
}

# 401 on the proxy key: says it lacks the admin scope and which key to add.
fake_post "$BAD" /__fake/set '{"mode":"unauthorized"}'
run_with_bad_openai
expect_eq "$TF_RC" 3 "a provider that cannot be checked exits 3"
expect_contains "$TF_ERR" "openai: the usage api refused the key 'openai' (http 401): it lacks the admin scope"
expect_contains "$TF_ERR" "tokfence vault add openai-admin -"
expect_contains "$TF_ERR" "anthropic: the usage api refused the key 'anthropic-admin' (http 401)"
expect_contains "$TF_ERR" "tokfence vault rotate anthropic-admin -"
expect_contains "$(grep -E '^  mistral ' <<<"$TF_OUT")" " ok " "the other provider is still checked"

# 403 (a key without the usage scope), with the admin key now present.
vault_add openai-admin "tfadminkey-$(random_token 40)"
fake_post "$BAD" /__fake/set '{"mode":"forbidden"}'
run_with_bad_openai --provider openai --provider mistral
expect_eq "$TF_RC" 3
expect_contains "$TF_ERR" "openai: the usage api refused the key 'openai-admin' (http 403)"
expect_contains "$TF_ERR" "missing scopes: api.usage.read"

# Malformed JSON, and valid JSON of the wrong shape.
fake_post "$BAD" /__fake/set '{"mode":"malformed"}'
run_with_bad_openai
expect_eq "$TF_RC" 3
expect_contains "$TF_ERR" "openai: malformed response from $BAD/v1/organization/usage/completions: not json"
expect_contains "$TF_ERR" "anthropic: malformed response from $BAD/v1/organizations/usage_report/messages"
expect_not_contains "$TF_ERR" "start_time=" "urls are reported without their query"
expect_contains "$(grep -E '^  mistral ' <<<"$TF_OUT")" " ok "
fake_post "$BAD" /__fake/set '{"mode":"wrong_shape"}'
run_with_bad_openai --provider openai
expect_eq "$TF_RC" 3
expect_contains "$TF_ERR" "openai: malformed response from"
expect_contains "$TF_ERR" "a bucket"

# A redirect is never followed (the key only goes to the endpoint itself).
fake_post "$BAD" /__fake/set '{"mode":"redirect"}'
run_with_bad_openai --provider openai
expect_eq "$TF_RC" 3
expect_contains "$TF_ERR" "http 302 redirect not followed"

# A 500 and a dead port: per provider, with the JSON output still complete.
fake_post "$BAD" /__fake/set '{"mode":"server_error"}'
tf watch --once --json --usage-endpoint "openai=$BAD" --usage-endpoint "anthropic=http://127.0.0.1:9" \
  --usage-endpoint "mistral=$GOOD/simple/usage"
expect_eq "$TF_RC" 3
expect_eq "$(jq -r '.providers[] | select(.provider=="openai") | .status' <<<"$TF_OUT")" error
expect_contains "$(jq -r '.providers[] | select(.provider=="openai") | .error' <<<"$TF_OUT")" "http 500"
expect_contains "$(jq -r '.providers[] | select(.provider=="anthropic") | .error' <<<"$TF_OUT")" "127.0.0.1"
expect_eq "$(jq -r '.providers[] | select(.provider=="mistral") | .status' <<<"$TF_OUT")" ok
expect_eq "$(jq .errors <<<"$TF_OUT")" 2

# Continuous mode keeps going past errors: both iterations run and report.
tf watch --interval 1s --max-iterations 2 --json --usage-endpoint "openai=$BAD" --provider openai
expect_eq "$TF_RC" 3
expect_eq "$(wc -l <<<"$TF_OUT")" 2 "two iterations despite the error"
expect_eq "$(jq -s '[.[].iteration] | join(",")' -r <<<"$TF_OUT")" "1,2"

# A provider without a built-in usage API and no --usage-endpoint is skipped, saying what to pass.
tf watch --once --provider mistral
expect_contains "$TF_ERR" "no usage api is built in for this provider: pass --usage-endpoint mistral=URL"

# A provider with no key in the vault.
tf watch --once --provider groq --usage-endpoint "groq=$GOOD/simple/usage"
expect_eq "$TF_RC" 3
expect_contains "$TF_ERR" "groq: no key in the vault to read usage with: run 'tokfence vault add groq-admin -'"

# Bad input: clear errors, exit 1, nothing stored.
bad() {
  tf watch --once "$@"
  [[ $TF_RC -eq 1 ]] || die "watch $* exited $TF_RC, expected 1: $TF_ERR"
}
bad --period 3x
expect_contains "$TF_ERR" "tokfence: error: --period: duration '3x': expected a number with s, m, h or d"
bad --period 40d
expect_contains "$TF_ERR" "--period: at most 31d"
bad --interval 0s
expect_contains "$TF_ERR" "--interval: must be at least 1s"
bad --settle 2h --period 1h
expect_contains "$TF_ERR" "--settle (2h) must be shorter than --period (1h)"
bad --idle-window 5m
expect_contains "$TF_ERR" "--idle-window (5m) must be longer than --settle (10m)"
bad --threshold-usd lots
expect_contains "$TF_ERR" "--threshold-usd: expected a dollar amount like 0.50: lots"
bad --threshold-tokens=-5
expect_contains "$TF_ERR" "--threshold-tokens: must not be negative"
bad --provider nosuch
expect_contains "$TF_ERR" "--provider: unknown provider 'nosuch'"
bad --provider 'Bad/Name'
expect_contains "$TF_ERR" "must match"
bad --usage-endpoint "mistral=http://usage.example.com/v1/usage?token=abc"
expect_contains "$TF_ERR" "plain http is allowed only to a loopback host"
expect_not_contains "$TF_ERR" "token=abc" "the query is not echoed"
bad --usage-endpoint "mistral=https://user:hunter2@usage.example.com/"
expect_contains "$TF_ERR" "credentials in the url are refused"
expect_not_contains "$TF_ERR" "hunter2"
bad --usage-endpoint "no-equals-sign"
expect_contains "$TF_ERR" "expected PROVIDER=URL"
bad --usage-endpoint "nosuch=https://usage.example.com/"
expect_contains "$TF_ERR" "unknown provider 'nosuch'"
[[ ! -e "$WATCH_DB" ]] || [[ "$(sqlite3 "$WATCH_DB" "SELECT count(*) FROM sqlite_master WHERE name='watch_alerts'")" == 0 ]] ||
  die "errors must not store alerts"
