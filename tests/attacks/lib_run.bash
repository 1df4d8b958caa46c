# Shared set-up for the `tokfence run` attack tests (tests/attacks/run_*.sh). Source it after
# ../integration/lib.sh. Not a test itself (the ctest glob takes *.sh only).
#
# Each attack runs once per principal: `root` (the test's own uid, usually root: the sandbox gets
# no help from being root, its namespaces map 0 to 0 without capabilities) and `user` (uid 65534
# via setpriv, its own daemon, vault and home: the way people run it). The user principal is
# skipped, with a log line, where this machine cannot switch users or lacks unprivileged user
# namespaces.
#
#   principal_setup root|user   sets P_MODE P_UID P_BASE P_TFHOME P_HOME P_PROJECT P_PORT P_URL
#                               P_DAEMON_PID and starts that principal's daemon (the fake
#                               upstream is shared)
#   ptf ARGS...                 tokfence ARGS as the principal, clean environment (HOME=$P_HOME);
#                               sets RC OUT ERR; TRUN_PRE='shell code' runs first in the same
#                               shell (e.g. 'exec 7<file;'), so tokfence inherits what it sets up
#   prun ARGS...                ptf run codex --command tokfence-probe --workdir $P_PROJECT ARGS
#   prun_get_keyed URL          the probe's http-get URL with the run's session token as the key
#   as_principal CMD...         a plain command as the principal
#   for_each_principal FUNC     FUNC root, then FUNC user (when possible)
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"
USER_ID=65534
chmod 755 "$WORK"

as_user() { setpriv --reuid "$USER_ID" --regid "$USER_ID" --clear-groups "$@"; }
as_principal() {
  if [[ $P_MODE == user ]]; then as_user "$@"; else "$@"; fi
}

user_principal_unavailable() {
  [[ $(id -u) -eq 0 ]] || { echo "not root, cannot switch users"; return 0; }
  command -v setpriv >/dev/null || { echo "setpriv missing"; return 0; }
  as_user unshare --user --map-root-user true 2>/dev/null || { echo "no unprivileged user namespaces"; return 0; }
  local bin
  for bin in "$TOKFENCE_BIN" "$PROBE" "$BUILD_DIR/bin/tokfence-relay"; do
    as_user test -x "$bin" || { echo "build tree not reachable by uid $USER_ID"; return 0; }
  done
  return 1
}

_fake_started=""
principal_setup() {
  P_MODE=$1
  if [[ -z $_fake_started ]]; then
    start_fake_upstream --require-key "$CANARY"
    _fake_started=1
  fi
  # Short names: a run's socket path (TOKFENCE_HOME/sockets/run-PID-N/proxy.sock) must fit
  # in sun_path (108 bytes).
  P_BASE="$WORK/${P_MODE:0:1}"
  P_HOME="$P_BASE/home"
  P_PROJECT="$P_BASE/project"
  mkdir -p "$P_HOME" "$P_PROJECT" "$P_BASE/outside"
  if [[ $P_MODE == root ]]; then
    P_UID=$(id -u)
    P_TFHOME="$TOKFENCE_HOME"
    write_test_config
    add_canary_key openai
    start_daemon
    P_PORT=$PROXY_PORT
  else
    P_UID=$USER_ID
    P_TFHOME="$P_BASE/t"
    mkdir -p "$P_TFHOME"
    chmod 700 "$P_TFHOME"
    printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[immunefence]\nrequire_token = false\n\n[providers.openai]\nupstream = "%s"\n' \
      "$FAKE_URL" >"$P_TFHOME/config.toml"
    chown -R "$USER_ID:$USER_ID" "$P_BASE"
    printf '%s' "$CANARY" >"$WORK/key.in"
    chown "$USER_ID" "$WORK/key.in"
    TRUN_STDIN="$WORK/key.in" ptf vault add openai -
    rm -f "$WORK/key.in"
    [[ $RC -eq 0 ]] || die "vault add as uid $USER_ID: $ERR"
    ptf start -d
    [[ $RC -eq 0 ]] || die "start -d as uid $USER_ID: $ERR"
    wait_until "test -s '$P_TFHOME/daemon.json'"
    P_PORT=$(jq -r .port "$P_TFHOME/daemon.json")
    EXTRA_CLEANUP="${EXTRA_CLEANUP:+$EXTRA_CLEANUP; }P_MODE=user P_TFHOME='$P_TFHOME' P_HOME='$P_HOME' ptf stop"
  fi
  P_URL="http://127.0.0.1:$P_PORT"
  # The daemon answers only its own uid on TCP: ask as the principal.
  wait_until "as_principal curl -fsS '$P_URL/__tokfence/health'"
  P_DAEMON_PID=$(jq -r .pid "$P_TFHOME/daemon.json")
  log "principal $P_MODE (uid $P_UID): daemon $P_DAEMON_PID on $P_URL"
}

_ptf_seq=0
ptf() {
  _ptf_seq=$((_ptf_seq + 1))
  local o="$WORK/out/$P_MODE-$_ptf_seq.stdout" e="$WORK/out/$P_MODE-$_ptf_seq.stderr"
  set +e
  as_principal env -i HOME="$P_HOME" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$P_TFHOME" \
    TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" TOKFENCE_TEST_BACKEND=file \
    bash -c "${TRUN_PRE:-} exec \"\$0\" \"\$@\"" "$TOKFENCE_BIN" "$@" \
    <"${TRUN_STDIN:-/dev/null}" >"$o" 2>"$e"
  RC=$?
  set -e
  OUT=$(cat "$o")
  ERR=$(cat "$e")
}

prun() { ptf run codex --command "$PROBE" --workdir "$P_PROJECT" "$@"; }
# prun http-get URL, sending the run's session token (the agent's key, from its environment) as the
# key: the run's socket accepts nothing else (ImmuneFence).
prun_get_keyed() {
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- \
    -c '"$0" http-get "$1" "Authorization: Bearer $OPENAI_API_KEY"' "$PROBE" "$1"
}

for_each_principal() {
  local why
  "$1" root
  if why=$(user_principal_unavailable); then
    log "principal user skipped: $why"
  else
    "$1" user
  fi
}
