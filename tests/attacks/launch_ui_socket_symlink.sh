#!/usr/bin/env bash
# Escape class: the container replaces its dashboard socket (ui.sock, in the one socket directory it
# may write) with a symlink to a HOST socket, so that the host-side dashboard relay, which runs with
# the user's rights, connects there instead: /var/run/docker.sock would give the dashboard port the
# Docker API (host root); TOKFENCE_HOME/control.sock would let it run kill/unkill/budget_clear.
#
#  1. Unprotected: a relay started the old way (`--forward tcp:...=unix:<ui dir>/ui.sock`, a connect
#     by path) against the planted symlink DOES reach a marker server standing in for docker.sock.
#  2. tokfence launch: the same plant, as the container's user and as root inside the container, and
#     the dashboard port reaches neither the marker server nor the control socket (the daemon is not
#     killed); a real socket of another owner (root in the container) is refused too.
#  3. Even the old-way relay pointed at control.sock is refused by the control socket (defence in
#     depth), and `launch stop` removes the directory without following the links.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfu-$RUN_ID"
marker_sock="$WORK/fake-docker.sock"
hits="$WORK/marker.hits"
start_marker_server "$marker_sock" "$hits"
# The marker server answers a direct connection, so "not reached" below means something.
"$PROBE_BIN" connect-unix "$marker_sock" >/dev/null || die "marker server does not answer"
# The server writes its mark after accepting: waited for, not raced (it failed once under load).
wait_until "grep -q REACHED '$hits'" || die "marker server does not record connections"
: >"$hits"

# port, relay_log and the container's user (as root: an id no host account has, docs/LAUNCH.md).
launch_ui_stub "$name"
ui_dir=$(launch_ui_dir "$name")

# Replaces ui.sock inside the container (as user $1) with a symlink to host path $2.
plant_link() {
  docker exec -u "$1" "$name" /bin/sh -c "rm -f /run/tokfence-ui/ui.sock && ln -s '$2' /run/tokfence-ui/ui.sock" ||
    die "could not plant the symlink as $1 (the attack needs it)"
  [[ -L $ui_dir/ui.sock ]] || die "planted symlink not visible on the host"
}
# Sends a kill request through TCP port $1; prints whatever comes back.
send_kill() {
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    s.sendall(b'{"op":"kill"}\n')
    print(s.recv(4096).decode(errors="replace"))
except OSError as e:
    print("connection error:", e)
PY
}
expect_not_killed() {
  tf_ok status --json
  expect_eq "$(jq -r .controls.killed <<<"$TF_OUT")" false "$1: kill switch"
}
# Starts a relay the OLD way: connect by path through the ui directory (as launch did before).
old_relay_port=""
start_old_relay() {
  rm -f "$WORK/old.ready"
  exec {old_dir_fd}<"$ui_dir"
  "$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unix:/proc/self/fd/$old_dir_fd/ui.sock" \
    --ready-file "$WORK/old.ready" >"$WORK/old-relay.log" 2>&1 &
  old_relay_pid=$!
  _pids_to_kill+=($old_relay_pid)
  exec {old_dir_fd}<&-
  wait_until "test -s '$WORK/old.ready'"
  old_relay_port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$WORK/old.ready")
}

# --- 1. the attack against the unprotected set-up
plant_link "$cuid" "$marker_sock"
start_old_relay
curl -sS -m 3 "http://127.0.0.1:$old_relay_port/" >"$WORK/old.curl" 2>&1 || true
grep -q REACHED "$hits" || die "unprotected relay did not reach the marker server: the attack set-up is broken"
log "unprotected: the old by-path relay followed ui.sock -> fake docker.sock (as expected)"
kill "$old_relay_pid"
: >"$hits"

# --- 2. tokfence launch: the dashboard relay, as the container's user
curl -sS -m 3 "http://127.0.0.1:$port/" >"$WORK/new.curl" 2>&1 || true
[[ ! -s $hits ]] || die "the dashboard port reached the fake docker.sock through the planted symlink"
expect_not_contains "$(cat "$WORK/new.curl")" "MARKER-SERVER" "dashboard reply"
wait_until "grep -q 'refused: .*ui.sock: is a symlink' '$relay_log'"

plant_link "$cuid" "$TOKFENCE_HOME/control.sock"
reply=$(send_kill "$port")
expect_not_contains "$reply" '"ok":true' "kill through the dashboard port (user)"
expect_not_killed "control.sock symlink planted by the container user"

# As root inside the container (no capabilities, like every process there): the container user
# opens its directory to everyone first, so root can plant too.
docker exec -u "$cuid" "$name" chmod 0777 /run/tokfence-ui
plant_link 0 "$marker_sock"
curl -sS -m 3 "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
[[ ! -s $hits ]] || die "the dashboard port reached the fake docker.sock (root's symlink)"
plant_link 0 "$TOKFENCE_HOME/control.sock"
reply=$(send_kill "$port")
expect_not_contains "$reply" '"ok":true' "kill through the dashboard port (root)"
expect_not_killed "control.sock symlink planted by root"

# A real socket, but root's (not the container user's): refused by the owner check.
docker exec -u 0 "$name" rm -f /run/tokfence-ui/ui.sock
docker exec -d -u 0 "$name" /tokfence/relay --forward unix:/run/tokfence-ui/ui.sock=tcp:127.0.0.1:18789
wait_until "test -S '$ui_dir/ui.sock'"
expect_eq "$(stat -c %u "$ui_dir/ui.sock")" 0 "root's socket owner"
out=$(curl -sS -m 3 "http://127.0.0.1:$port/" 2>&1 || true)
expect_not_contains "$out" "hello-ui" "socket of another owner"
wait_until "grep -q 'refused: .*ui.sock: owned by uid 0, expected uid $cuid' '$relay_log'"

# --- 3. defence in depth: a relay that does follow the link is refused by the control socket
plant_link 0 "$TOKFENCE_HOME/control.sock"
start_old_relay
reply=$(send_kill "$old_relay_port")
expect_contains "$reply" "control: refused: peer" "control socket reached through an old relay"
expect_contains "$reply" "is tokfence-relay" "control socket refusal names the relay"
expect_not_killed "control.sock reached by the old relay"
kill "$old_relay_pid"

# `launch stop` removes ui/ by a walk that never follows the links planted there.
plant_link 0 "$marker_sock"
tf_ok launch stop --name "$name"
expect_nothing_left "$name"
[[ -S $marker_sock ]] || die "launch stop removed the symlink's target"
[[ -S $TOKFENCE_HOME/control.sock ]] || die "launch stop removed the control socket"
tf_ok status
