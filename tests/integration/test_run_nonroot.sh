#!/usr/bin/env bash
# `tokfence run` as an ordinary user, the way people run it: the daemon, the vault and the
# sandboxed agent all belong to an unprivileged uid (65534 here), so the sandbox gets no help
# from root. The probe inside reaches the proxy and gets a proxied reply with the real key
# upstream; it cannot reach another loopback port, write outside its workdir, read the tokfence
# home, or regain privileges (no capabilities, no_new_privs, not dumpable into root's hands).
#
# Needs root only to become the other user (setpriv); skipped where unprivileged user
# namespaces are switched off.
source "$(dirname "$0")/lib.sh"
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"
[[ $(id -u) -eq 0 ]] || skip "needs root to switch to an unprivileged user"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
USER_ID=65534
as_user() { setpriv --reuid "$USER_ID" --regid "$USER_ID" --clear-groups "$@"; }
as_user unshare --user --map-root-user true 2>/dev/null ||
  skip "unprivileged user namespaces are disabled here (kernel.unprivileged_userns_clone / user.max_user_namespaces)"

# The user can reach the binaries (the build tree may sit under a root-only directory).
for bin in "$TOKFENCE_BIN" "$PROBE" "$BUILD_DIR/bin/tokfence-relay"; do
  as_user test -x "$bin" || skip "the build tree is not readable by uid $USER_ID: $bin"
done

start_fake_upstream --require-key "$CANARY"

# The user's own tree: home, project, a place outside.
U="$WORK/user"
mkdir -p "$U/home" "$U/tokfence" "$U/project" "$U/outside"
chmod 755 "$WORK"
chown -R "$USER_ID:$USER_ID" "$U"
chmod 700 "$U/tokfence"
cat >"$U/tokfence/config.toml" <<EOF
[daemon]
port = 0

[vault]
backend = "file"

[providers.openai]
upstream = "$FAKE_URL"
EOF
chown "$USER_ID:$USER_ID" "$U/tokfence/config.toml"

# Runs tokfence as the user with a clean environment; output kept for the canary scan.
# Sets RC, OUT, ERR.
n=0
user_tf() {
  n=$((n + 1))
  set +e
  as_user env -i HOME="$U/home" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$U/tokfence" \
    TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" "$TOKFENCE_BIN" "$@" \
    <"${USER_STDIN:-/dev/null}" >"$WORK/out/user-$n.out" 2>"$WORK/out/user-$n.err"
  RC=$?
  set -e
  OUT=$(cat "$WORK/out/user-$n.out")
  ERR=$(cat "$WORK/out/user-$n.err")
}
stop_user_daemon() { [[ -f "$U/tokfence/daemon.json" ]] && user_tf stop; return 0; }
# lib.sh's EXIT trap runs this before its own cleanup and canary scan.
EXTRA_CLEANUP='stop_user_daemon'

printf '%s' "$CANARY" >"$WORK/key.in"
USER_STDIN="$WORK/key.in" user_tf vault add openai -
rm -f "$WORK/key.in"
expect_eq "$RC" 0 "vault add as the user: $ERR"
user_tf start -d
expect_eq "$RC" 0 "start -d as the user: $ERR"
wait_until "test -s '$U/tokfence/daemon.json'"
port=$(jq -r .port "$U/tokfence/daemon.json")
url="http://127.0.0.1:$port"
# As the user: the TCP listener serves only its own user's processes (root's curl gets 403).
wait_until "as_user curl -fsS '$url/__tokfence/health'"
daemon_pid=$(jq -r .pid "$U/tokfence/daemon.json")
expect_eq "$(stat -c %u "/proc/$daemon_pid")" "$USER_ID" "daemon runs as the user"

probe() { user_tf run codex --command "$PROBE" --workdir "$U/project" -- "$@"; }

log "proxied request from the sandbox, real key upstream"
# The run's session token (the agent's key, from its environment) as the key.
user_tf run codex --command /bin/sh --workdir "$U/project" -- \
  -c '"$0" http-get "$1" "Authorization: Bearer $OPENAI_API_KEY"' "$PROBE" "$url/openai/v1/models"
expect_eq "$RC" 0 "proxied request as the user: $OUT $ERR"
expect_contains "$OUT" "ok: http-get $url/openai/v1/models: status 200"
expect_eq "$(curl -fsS "$FAKE_URL/__fake/requests" | jq --arg k "Bearer $CANARY" '.[-1].headers.authorization == $k')" \
  true "upstream got the real key"

log "no other loopback port, no writes outside, no tokfence home"
probe connect 127.0.0.1 "$FAKE_PORT"
expect_eq "$RC" 1 "connect to another loopback port"
probe write "$U/project/ok.txt"
expect_eq "$RC" 0 "write in the workdir"
probe write "$U/outside/no.txt"
expect_eq "$RC" 1 "write outside the workdir"
[[ ! -e "$U/outside/no.txt" ]] || die "a write outside the workdir landed"
probe write "$U/home/no.txt"
expect_eq "$RC" 1 "write to the user's home"
probe read "$U/tokfence/config.toml"
expect_eq "$RC" 1 "tokfence home readable from the sandbox"
probe connect-unix "$U/tokfence/control.sock"
expect_eq "$RC" 1 "control socket from the sandbox"

log "no privileges inside: capabilities, no_new_privs"
user_tf run codex --command /bin/cat --workdir "$U/project" -- /proc/self/status
expect_eq "$RC" 0 "cat /proc/self/status in the sandbox: $ERR"
for field in CapEff CapPrm CapBnd CapAmb; do
  value=$(sed -n "s/^$field:[[:space:]]*//p" <<<"$OUT" | head -1)
  expect_eq "$value" "0000000000000000" "$field inside the sandbox"
done
expect_eq "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' <<<"$OUT" | head -1)" "1" "no_new_privs inside the sandbox"

user_tf stop
expect_eq "$RC" 0 "stop as the user: $ERR"
expect_eq "$(as_user env -i TOKFENCE_HOME="$U/tokfence" "$TOKFENCE_BIN" log --json | jq 'map(select(.caller_name == "codex")) | length')" \
  1 "the sandboxed request is logged as codex"
scan_for_canary
log "ok"
