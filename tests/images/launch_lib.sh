# Shared set-up for the launch tests (sourced after lib.sh): the probe test image, a provider key,
# and helpers to check that a launch left nothing behind.

PROBE_BIN="$BUILD_DIR/bin/tokfence-probe"
[[ -x $PROBE_BIN ]] || die "tokfence-probe not built: $PROBE_BIN"
[[ -x ${TOKFENCE_RELAY_BIN:-} ]] || die "tokfence-relay not built: ${TOKFENCE_RELAY_BIN:-}"
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/test starts one)"
TEST_IMAGE=$("$SOURCE_DIR/scripts/build-test-image" "$PROBE_BIN") || die "could not build the test image"
# Container names are global to the engine: make them unique per run.
RUN_ID=$(random_token 6 | tr 'A-Z' 'a-z')

# Fake upstream, config, the canary as openai's key.
launch_test_setup() {
  start_fake_upstream
  write_test_config "$@"
  tf_in "$CANARY" vault add openai -
  [[ $TF_RC -eq 0 ]] || die "vault add failed: $TF_ERR"
}

# No container, socket directory or config of launch $1 is left.
expect_nothing_left() {
  local name=$1 left
  left=$(docker ps -aq --filter "label=org.tokfence.launch=$name")
  [[ -z $left ]] || die "container of launch $name left behind: $left"
  [[ ! -e $TOKFENCE_HOME/sockets/launch-$name ]] || die "socket directory of $name left behind"
  [[ ! -e $TOKFENCE_HOME/openclaw/$name/openclaw.json ]] || die "config of $name left behind"
  [[ ! -e $TOKFENCE_HOME/openclaw/$name/launch.json ]] || die "state file of $name left behind"
}

# Removes every container this test's home may have left (runs at exit).
launch_cleanup() {
  local ids
  ids=$(docker ps -aq --filter "label=org.tokfence.home=$TOKFENCE_HOME" 2>/dev/null || true)
  [[ -n $ids ]] && docker rm -f $ids >/dev/null 2>&1 || true
}
EXTRA_CLEANUP="launch_cleanup${EXTRA_CLEANUP:+; $EXTRA_CLEANUP}"
