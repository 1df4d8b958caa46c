# Shared by tests/attacks/budget_*.sh (sourced after ../integration/lib.sh; not a test itself).
#
# The set-up every budget attack starts from: a daemon in front of fake_upstream, a $2 daily budget
# on openai, and model tf-test priced at $1000 per million tokens ($0.001 a token), so one request
# of a few thousand tokens costs more than the whole budget. An attack sends ATTACK_TRIES requests
# that together are worth several times the budget; the budget must stop them after (at most) the
# one request that may start alone, and every admitted request's log row must carry a cost > 0.

ATTACK_TRIES=10
BUDGET_USD=2
PRICE_LINES=('[pricing."tf-test"]' 'input = 1000' 'output = 1000')
OPENAI_PROVIDER_LINES=()
BUDGET_PROVIDER=openai  # whose key the set-up adds and whose budget it sets

# budget_setup [CONFIG LINES...]: fake upstream, config, key, daemon, budget.
budget_setup() {
  [[ -n ${FAKE_URL:-} ]] || start_fake_upstream
  write_test_config '[budget]' 'timezone = "UTC"' "${PRICE_LINES[@]}" "$@"
  # Lines for [providers.openai], which write_test_config already opened (TOML allows a table once).
  local line
  for line in "${OPENAI_PROVIDER_LINES[@]}"; do
    sed -i "/^\[providers\.openai\]\$/a $line" "$TOKFENCE_HOME/config.toml"
  done
  if [[ ! -s "$TOKFENCE_HOME/vault.enc" ]]; then
    add_canary_key "$BUDGET_PROVIDER"
  fi
  start_daemon
  tf_ok budget set "$BUDGET_PROVIDER" "$BUDGET_USD" daily
}

# session_budget_setup NAME USD: fake upstream, tf-test priced as above, a key, a daemon that wants
# session tokens, and a session NAME with a daily budget of its own of USD and no other budget;
# its token in TOKEN.
session_budget_setup() {
  TOKFENCE_TEST_REQUIRE_TOKEN=true
  start_fake_upstream
  write_test_config "${PRICE_LINES[@]}"
  add_canary_key openai
  start_daemon
  tf_ok session new --name "$1" --budget "$2" --json
  TOKEN=$(jq -r .token <<<"$TF_OUT")
}

# attack_loop NAME CMD...: runs CMD (which sets CODE and BODY) ATTACK_TRIES times; counts PASSED
# (2xx) and REFUSED (tokfence's 429/403), and records the refusal types.
attack_loop() {
  local name=$1
  shift
  PASSED=0 REFUSED=0 REFUSAL_TYPES=""
  for i in $(seq 1 "$ATTACK_TRIES"); do
    "$@"
    if [[ $CODE == 2* ]]; then
      PASSED=$((PASSED + 1))
    elif [[ $CODE == 429 || $CODE == 403 || $CODE == 400 ]] && jq -e '.error.type | startswith("tokfence_")' "$BODY" >/dev/null 2>&1; then
      REFUSED=$((REFUSED + 1))
      REFUSAL_TYPES+="$(jq -r .error.type "$BODY") "
    fi
  done
  log "$name: $PASSED of $ATTACK_TRIES passed, $REFUSED refused ($REFUSAL_TYPES)"
}

# Rows of the request log for one path suffix, as a JSON array (after the daemon wrote them).
log_rows() {
  tf_ok log --json -n 1000
  jq -c --arg p "$1" '[.[] | select(.path | endswith($p))]' <<<"$TF_OUT"
}

# expect_budget_held ROWS_JSON: at most one request past the budget was admitted, something was
# refused, and every admitted (2xx) row carries a cost above zero.
expect_budget_held() {
  local rows=$1
  ((PASSED <= 2)) || die "$PASSED of $ATTACK_TRIES requests worth more than the \$$BUDGET_USD budget passed"
  ((REFUSED >= 1)) || die "the budget refused nothing"
  local unpaid
  unpaid=$(jq '[.[] | select(.status >= 200 and .status < 300) | select(.cost_pico == null or .cost_pico <= 0)] | length' <<<"$rows")
  expect_eq "$unpaid" 0 "admitted requests logged without a cost"
  tf_ok budget status --json
  local spent
  spent=$(jq --arg scope "$BUDGET_PROVIDER" '.budgets[] | select(.scope == $scope) | .spent_pico' <<<"$TF_OUT")
  ((spent > 0)) || die "budget spent is $spent after admitted requests"
}
