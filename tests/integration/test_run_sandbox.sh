#!/usr/bin/env bash
# `tokfence run` on Linux, with tokfence-probe as the "agent": it reaches the proxy at the
# daemon's own 127.0.0.1:<port> and gets a proxied reply (the fake upstream saw the real key, the
# log row carries the program's name); it cannot reach another loopback port, resolve names, or
# write outside the allowed paths; its environment holds the run's session token (ImmuneFence)
# and none of the parent's secrets.
source "$(dirname "$0")/lib.sh"
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

mkdir -p "$WORK/project" "$WORK/extra" "$WORK/outside"
# Secrets and side doors in the parent's environment that must not reach the child.
export OPENAI_API_KEY="$CANARY" ANTHROPIC_API_KEY="$CANARY" AWS_SECRET_ACCESS_KEY="$CANARY"
export SSH_AUTH_SOCK="$WORK/outside/ssh.sock" DOCKER_HOST="unix:///var/run/docker.sock" SOME_UNLISTED_VAR=1

probe() { tf run codex --command "$PROBE" --workdir "$WORK/project" --allow-write "$WORK/extra" -- "$@"; }
# The same, sending the run's session token (the agent's key, from its environment) as the key.
probe_keyed() {
  tf run codex --command /bin/sh --workdir "$WORK/project" --allow-write "$WORK/extra" -- \
    -c '"$0" "$1" "$2" "Authorization: Bearer $OPENAI_API_KEY"' "$PROBE" "$@"
}

log "the proxy is reachable at the same address, and answers with the real key upstream"
probe_keyed http-get "$PROXY_URL/openai/v1/models"
expect_eq "$TF_RC" "0" "proxied request from the sandbox: $TF_OUT $TF_ERR"
expect_contains "$TF_OUT" "ok: http-get $PROXY_URL/openai/v1/models: status 200"
expect_contains "$TF_OUT" '"object":"list"'
# The fake answers 200 only with the canary as the key: the proxy injected the real one.
last_auth_ok=$(curl -fsS "$FAKE_URL/__fake/requests" | jq --arg k "Bearer $CANARY" '.[-1].headers.authorization == $k')
expect_eq "$last_auth_ok" "true" "upstream got the real key"

log "nothing else on loopback, no DNS"
probe connect 127.0.0.1 "$FAKE_PORT"
expect_eq "$TF_RC" "1" "connect to another loopback port"
expect_contains "$TF_OUT" "fail: connect 127.0.0.1:$FAKE_PORT"
probe http-get "$FAKE_URL/__fake/stats"
expect_eq "$TF_RC" "1" "http to another loopback port"
probe resolve example.com
expect_eq "$TF_RC" "1" "name resolution"
expect_contains "$TF_OUT" "fail: resolve example.com"
# The daemon's own TCP port is the relay inside; its Unix sockets are hidden.
probe connect-unix "$PROXY_SOCKET"
expect_eq "$TF_RC" "1" "daemon's main proxy socket"

log "writes only to the workdir, --allow-write paths and a private /tmp"
probe write "$WORK/project/a.txt"
expect_eq "$TF_RC" "0" "write in workdir"
[[ -f "$WORK/project/a.txt" ]] || die "write in workdir did not land"
probe write "$WORK/extra/b.txt"
expect_eq "$TF_RC" "0" "write in --allow-write path"
probe write "$WORK/outside/c.txt"
expect_eq "$TF_RC" "1" "write outside"
[[ ! -e "$WORK/outside/c.txt" ]] || die "a write outside the allowed paths landed"
probe write "/etc/tokfence-run-test-$$"
expect_eq "$TF_RC" "1" "write to /etc"
marker="tokfence-private-tmp-$$-$RANDOM"
probe write "/tmp/$marker"
expect_eq "$TF_RC" "0" "write to private /tmp"
[[ ! -e "/tmp/$marker" ]] || die "the sandbox's /tmp is the host's"
probe read "$TOKFENCE_HOME/config.toml"
expect_eq "$TF_RC" "1" "tokfence home readable"

log "environment: allow-list + the harness's own variables"
probe env
expect_eq "$TF_RC" "0" "env"
expect_contains "$TF_OUT" "OPENAI_API_KEY=tfc1."
expect_contains "$TF_OUT" "CODEX_HOME=$TOKFENCE_HOME/harness/codex/codex-home"
expect_contains "$TF_OUT" "PATH="
# (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are there, as the session's decoys: the canary scan of
# every output shows the parent's value did not pass.)
for bad in TOKFENCE_ ANTHROPIC_API_KEY SSH_AUTH_SOCK DOCKER_HOST DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR SOME_UNLISTED_VAR; do
  if printf '%s\n' "$TF_OUT" | grep -q "^$bad"; then die "child environment has $bad"; fi
done
grep -rq "tokfence-managed" "$TOKFENCE_HOME/harness/codex" ||
  [[ "$(grep -r env_key "$TOKFENCE_HOME/harness/codex/codex-home/config.toml")" == *OPENAI_API_KEY* ]] ||
  die "codex config does not name the dummy key variable"

log "the run's proxy socket is gone afterwards"
left=$(find "$TOKFENCE_HOME/sockets" -name 'run-*' 2>/dev/null | wc -l)
expect_eq "$left" "0" "per-run socket dirs left behind"

log "bad input"
tf run nosuch --command "$PROBE"
expect_eq "$TF_RC" "1" "unknown program"
expect_contains "$TF_ERR" "tokfence: error: run: unknown program: 'nosuch'"
tf run codex --command "$WORK/project/missing"
expect_eq "$TF_RC" "1" "missing command"
expect_contains "$TF_ERR" "--command is not an executable file"
tf run codex --command "$PROBE" --workdir "$WORK/nope"
expect_contains "$TF_ERR" "--workdir: not an existing directory"
tf run codex --command "$PROBE" --workdir "$TOKFENCE_HOME"
expect_contains "$TF_ERR" "--workdir: $(realpath "$TOKFENCE_HOME") is inside the tokfence home"
tf run codex --command "$PROBE" --workdir "$(dirname "$TOKFENCE_HOME")"
expect_contains "$TF_ERR" "holds the tokfence home" "a workdir that holds the tokfence home"
ln -sfn "$WORK/project" "$WORK/project-link"
# A link another user could change (only root-only links, /home -> /var/home, are taken).
[[ $(id -u) -ne 0 ]] || chown -h 65534 "$WORK/project-link"
tf run codex --command "$PROBE" --workdir "$WORK/project-link"
expect_eq "$TF_RC" 1 "a workdir named through a symbolic link"
expect_contains "$TF_ERR" "--workdir: $WORK/project-link is reached through a symbolic link (it is $(realpath "$WORK/project")): give"
tf run codex --command "$PROBE" --allow-write "$TOKFENCE_HOME/harness"
expect_contains "$TF_ERR" "--allow-write: overlaps the tokfence home"
tf run codex --command "$PROBE" --allow-write "$WORK/nope"
expect_contains "$TF_ERR" "--allow-write: path does not exist"
tf run codex --command "$PROBE" --provider anthropic
expect_contains "$TF_ERR" "codex: provider not supported: anthropic"
tf run claude --command "$PROBE" -- env
expect_eq "$TF_RC" "1" "claude without an anthropic key"
expect_contains "$TF_ERR" "no key for provider 'anthropic': run 'tokfence vault add anthropic -'"
PATH=/usr/bin:/bin tf run opencode -- env
expect_contains "$TF_ERR" "opencode: command not found on PATH"

log "--no-sandbox warns and still goes through the proxy with the session token"
tf run codex --no-sandbox --command "$PROBE" --workdir "$WORK/project" -- env
expect_eq "$TF_RC" "0" "--no-sandbox run"
expect_contains "$TF_ERR" "WARNING: --no-sandbox"
expect_contains "$TF_OUT" "OPENAI_API_KEY=tfc1."
base=$(printf '%s\n' "$TF_OUT" | sed -n 's/^OPENAI_BASE_URL=//p')
[[ "$base" == http://127.0.0.1:*/openai/v1 ]] || die "no proxy base URL in --no-sandbox env: $base"
# Each run has its own relay port: the child reads it from its environment.
tf run codex --no-sandbox --command /bin/sh --workdir "$WORK/project" -- \
  -c '"$0" http-get "$OPENAI_BASE_URL/models" "Authorization: Bearer $OPENAI_API_KEY"' "$PROBE"
expect_eq "$TF_RC" "0" "--no-sandbox request via the run's relay: $TF_OUT"
# `stop` flushes the request log: both runs' requests are there, tagged with the program's name.
stop_daemon
expect_eq "$("$TOKFENCE_BIN" log --json | jq 'map(select(.caller_name == "codex")) | length')" "2" "rows tagged codex"
