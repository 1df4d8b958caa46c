#!/usr/bin/env bash
# Issue 8, harness side: with the Secret Service backend holding the real key, a program run by
# `tokfence run` cannot reach tokfence's control plane, the keyring, Docker or agent sockets, and
# finds no secret or socket variable in its environment. Each probe is first shown to work
# outside the sandbox, so a failure inside means "blocked", not "broken probe".
if [[ -z "${DBUS_SESSION_BUS_ADDRESS:-}" && -z "${TOKFENCE_ISOLATION_REEXEC:-}" ]]; then
  # The keyring must not be skipped: start one (scripts/test normally already did).
  export TOKFENCE_ISOLATION_REEXEC=1 TOKFENCE_BUILD_DIR="${BUILD_DIR:?run through ctest}"
  exec "${SOURCE_DIR:?run through ctest}/scripts/with-services" bash "$0" "$@"
fi
export TOKFENCE_TEST_BACKEND=secret-service
source "$(dirname "$0")/lib.sh"
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"
[[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ]] || die "no session bus even under scripts/with-services"
command -v secret-tool >/dev/null || die "secret-tool missing (scripts/setup installs libsecret-tools)"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon
mkdir -p "$WORK/project"
# A vault file and an agent socket variable, so the probes have something real to aim at.
printf 'not really a vault, but it must stay unreadable\n' >"$TOKFENCE_HOME/vault.enc"
chmod 600 "$TOKFENCE_HOME/vault.enc"
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); import time; time.sleep(600)" \
  "$WORK/agent.sock" &
_pids_to_kill+=($!)
wait_until "test -S '$WORK/agent.sock'"
export SSH_AUTH_SOCK="$WORK/agent.sock"
export TOKFENCE_VAULT_PASSPHRASE TOKFENCE_HOME

inside() { tf run codex --command "$PROBE" --workdir "$WORK/project" -- "$@"; }

log "session bus (Secret Service)"
"$PROBE" dbus-session "$DBUS_SESSION_BUS_ADDRESS" >"$WORK/out/dbus-outside.out" ||
  die "control: probe cannot reach the session bus outside the sandbox"
inside dbus-session "$DBUS_SESSION_BUS_ADDRESS"
expect_eq "$TF_RC" "1" "session bus reachable from the sandbox: $TF_OUT"
inside dbus-session
expect_eq "$TF_RC" "1" "default session bus (/run/user/<uid>/bus) reachable from the sandbox"

log "secret-tool lookup of the key"
found=$(secret-tool lookup provider openai 2>/dev/null || true)
[[ "$found" == "$CANARY" ]] || die "control: secret-tool outside does not find the key"
unset found
tf run codex --command /bin/sh --workdir "$WORK/project" -- -c \
  "DBUS_SESSION_BUS_ADDRESS='$DBUS_SESSION_BUS_ADDRESS' secret-tool lookup provider openai"
[[ $TF_RC -ne 0 ]] || die "secret-tool lookup succeeded inside the sandbox"
expect_not_contains "$TF_OUT" "$CANARY" "key read from the keyring inside the sandbox"

log "every socket under TOKFENCE_HOME, the agent socket, the keyring's runtime dir, Docker"
sockets=$(find "$TOKFENCE_HOME" "${XDG_RUNTIME_DIR:-/nonexistent}" -type s 2>/dev/null || true)
[[ "$sockets" == *control.sock* ]] || die "control: no control socket found under $TOKFENCE_HOME"
for s in $sockets "$WORK/agent.sock" /var/run/docker.sock /run/docker.sock; do
  [[ -S "$s" ]] || continue
  "$PROBE" connect-unix "$s" >/dev/null || continue  # only sockets that answer outside prove anything
  inside connect-unix "$s"
  expect_eq "$TF_RC" "1" "socket reachable from the sandbox: $s"
done
if docker info >/dev/null 2>&1; then
  inside connect-unix /var/run/docker.sock
  expect_eq "$TF_RC" "1" "docker socket"
fi

log "files under TOKFENCE_HOME (vault.enc, config, request log) are unreadable"
while IFS= read -r f; do
  [[ "$f" == "$TOKFENCE_HOME/harness/codex/"* ]] && continue  # the harness's own home is meant to be visible
  inside read "$f"
  expect_eq "$TF_RC" "1" "readable from the sandbox: $f"
done < <(find "$TOKFENCE_HOME" -maxdepth 2 -type f)
inside read "$TOKFENCE_HOME/vault.enc"
expect_eq "$TF_RC" "1" "vault.enc"

log "environment"
inside env
expect_eq "$TF_RC" "0" "env"
while IFS= read -r line; do
  name=${line%%=*}
  case "$name" in
    TOKFENCE_* | SSH_AUTH_SOCK | GPG_AGENT_INFO | DBUS_SESSION_BUS_ADDRESS | DOCKER_HOST | XDG_RUNTIME_DIR | GNOME_KEYRING_CONTROL)
      die "child environment has $name" ;;
  esac
  # Key variables hold the run's session token, or are the session's decoys (ImmuneFence).
  if [[ "$name" == *_KEY || "$name" == *_TOKEN ]]; then
    [[ "${line#*=}" == tfc1.* || $name == AWS_SECRET_ACCESS_KEY || $name == GH_TOKEN ]] ||
      die "child environment has a key variable that is neither the session token nor a decoy: $name"
  fi
done <<<"$TF_OUT"

log "the relay's socket serves proxy routes only, never control requests"
# The program cannot open the socket itself (no AF_UNIX sockets inside): it goes through the relay.
inside unix-send /run/tokfence-proxy/proxy.sock '{"op":"ping"}\n'
expect_eq "$TF_RC" "1" "the run's proxy socket opened directly from the sandbox"
inside tcp-send 127.0.0.1 "$PROXY_PORT" '{"op":"ping"}\n{"op":"unkill","provider":"openai"}\n'
expect_not_contains "$TF_OUT" '"ok":true' "control answered through the proxy socket"
expect_not_contains "$TF_OUT" '"ok": true' "control answered through the proxy socket"
expect_contains "$TF_OUT" "HTTP/1.1 400" "control request through the proxy socket not refused as bad HTTP"
tf run codex --command /bin/sh --workdir "$WORK/project" -- -c \
  '"$0" tcp-send 127.0.0.1 "$1" "GET /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer $OPENAI_API_KEY\r\nConnection: close\r\n\r\n"' \
  "$PROBE" "$PROXY_PORT"
expect_contains "$TF_OUT" "HTTP/1.1 200" "proxy route through the same socket"
