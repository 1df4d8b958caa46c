# Shared by the ImmuneFence attack tests that open run-like sockets through the control socket
# (sourced after ../integration/lib.sh; not a test itself: the ctest glob takes *.sh only).
#
#   open_socket NAME   a socket at $WORK/sock-NAME/proxy.sock (caller NAME) with a run session and
#                      decoys, as `tokfence run` opens its own; the reply in $WORK/out/NAME.json
#   token_of NAME      that session's token (the agent's API key)
#   decoy_of NAME      the first of its decoy values (a planted file's credential)
#   agent_setup        fake upstream, a daemon requiring tokens, the canary key, and socket
#                      "agent"; sets TOKEN and DECOY
open_socket() {
  mkdir -p "$WORK/sock-$1"
  ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/sock-$1/proxy.sock\",\"caller\":\"$1\",\"mode\":384,\"session\":{\"kind\":\"run\",\"decoys\":true}}" \
    >"$WORK/out/$1.json"
  [[ $(jq -r .ok "$WORK/out/$1.json") == true ]] || die "open_proxy_socket $1: $(jq -c 'del(.session.token)' "$WORK/out/$1.json")"
}
token_of() { jq -r .session.token "$WORK/out/$1.json"; }
decoy_of() { jq -r '.session.decoys.values[0]' "$WORK/out/$1.json"; }

agent_setup() {
  TOKFENCE_TEST_REQUIRE_TOKEN=true
  start_fake_upstream
  write_test_config
  add_canary_key openai
  start_daemon
  open_socket agent
  TOKEN=$(token_of agent)
  DECOY=$(decoy_of agent)
}
