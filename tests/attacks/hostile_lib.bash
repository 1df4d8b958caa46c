# Shared by the attack tests against a hostile upstream (sourced after ../integration/lib.sh; not a
# test itself: the ctest glob takes *.sh only).
#
#   hostile_setup [sensors-off]   hostile_upstream.py as every provider's upstream, a daemon that
#                                 requires session tokens (tf-test priced), the canary key for
#                                 openai, and a session; sets TOKEN. sensors-off: every ImmuneFence
#                                 sensor off, so what is checked is what holds whatever the sensors
#                                 say (a vault key must never reach an agent).
hostile_setup() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/hostile_upstream.py" "$WORK/hostile.port" >"$WORK/hostile.log" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -s '$WORK/hostile.port'"
  FAKE_URL="http://127.0.0.1:$(cat "$WORK/hostile.port")"
  TOKFENCE_TEST_REQUIRE_TOKEN=true
  write_test_config '[pricing."tf-test"]' 'input = 1' 'output = 1'
  if [[ ${1:-} == sensors-off ]]; then
    sed -i 's/^require_token = true$/require_token = true\nsensors = []/' "$TOKFENCE_HOME/config.toml"
    grep -qx 'sensors = \[\]' "$TOKFENCE_HOME/config.toml" || die "config: sensors line not written"
  fi
  add_canary_key openai
  start_daemon
  tf_ok session new --name probe --json
  TOKEN=$(jq -r .token <<<"$TF_OUT")
}
