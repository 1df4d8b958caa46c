#!/usr/bin/env bash
# tokfence-relay: TCP->Unix and Unix->TCP forwarding with half-close, the ready file, running a
# command (exit codes, signals forwarded, orphans reaped as PID 1), listeners not inherited by the
# child, and clear errors for bad forward specs.
source "$(dirname "$0")/lib.sh"
RELAY=${TOKFENCE_RELAY_BIN:?}
[[ -x "$RELAY" ]] || die "tokfence-relay not built: $RELAY"
command -v python3 >/dev/null || die "python3 is needed (scripts/setup installs it)"

# An echo server that answers "echo:<everything received until EOF>" - it only answers after the
# client half-closes, so it proves the relay propagates the half-close.
cat >"$WORK/echo_server.py" <<'EOF'
import os, socket, sys, threading
kind, where, ready = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "unix":
    s = socket.socket(socket.AF_UNIX); s.bind(where)
else:
    s = socket.socket(); s.bind(("127.0.0.1", 0))
s.listen(16)
with open(ready + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]) if kind == "tcp" else where)
os.rename(ready + ".tmp", ready)
def handle(c):
    data = b""
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
    c.sendall(b"echo:" + data); c.close()
for _ in range(50):
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
EOF
cat >"$WORK/client.py" <<'EOF'
import socket, sys
kind, where, payload = sys.argv[1], sys.argv[2], sys.argv[3].encode()
if payload.startswith(b"@big:"): payload = b"x" * int(payload[5:])
if kind == "unix":
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(where)
else:
    s = socket.create_connection(("127.0.0.1", int(where)), timeout=10)
s.sendall(payload); s.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = s.recv(65536)
    if not d: break
    out += d
sys.stdout.write(out.decode())
EOF

python3 "$WORK/echo_server.py" unix "$WORK/up.sock" "$WORK/up.ready" &
_pids_to_kill+=($!)
python3 "$WORK/echo_server.py" tcp - "$WORK/tcp.ready" &
_pids_to_kill+=($!)
wait_until "test -s '$WORK/up.ready' && test -s '$WORK/tcp.ready'"
TCP_UP=$(cat "$WORK/tcp.ready")

log "relay without a command: both directions"
"$RELAY" --forward "tcp:127.0.0.1:0=unix:$WORK/up.sock" --forward "unix:$WORK/back.sock=tcp:127.0.0.1:$TCP_UP" \
  --ready-file "$WORK/relay.ready" 2>"$WORK/relay.err" &
RELAY_PID=$!
_pids_to_kill+=($RELAY_PID)
wait_until "test -s '$WORK/relay.ready'"
expect_eq "$(wc -l <"$WORK/relay.ready")" "2" "ready file lists every forward"
port=$(sed -nE '1s/^tcp:127\.0\.0\.1:([0-9]+)=unix:.*/\1/p' "$WORK/relay.ready")
[[ -n "$port" && "$port" != 0 ]] || die "ready file does not name the tcp port: $(cat "$WORK/relay.ready")"
expect_eq "$(python3 "$WORK/client.py" tcp "$port" hello-tcp)" "echo:hello-tcp" "tcp -> unix"
expect_eq "$(stat -c %a "$WORK/back.sock")" "666" "unix listener mode"
expect_eq "$(python3 "$WORK/client.py" unix "$WORK/back.sock" hello-unix)" "echo:hello-unix" "unix -> tcp"
expect_eq "$(python3 "$WORK/client.py" tcp "$port" @big:300000 | wc -c)" "$((300000 + 5))" "large payload"
kill -TERM $RELAY_PID
set +e; wait $RELAY_PID; rc=$?; set -e
expect_eq "$rc" "0" "relay exits 0 on SIGTERM"
[[ ! -e "$WORK/back.sock" ]] || die "unix listener socket left behind after exit"

log "stale socket file is replaced; a non-socket is not"
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$WORK/stale.sock"
"$RELAY" --forward "unix:$WORK/stale.sock=tcp:127.0.0.1:$TCP_UP" --ready-file "$WORK/stale.ready" &
p=$!
_pids_to_kill+=($p)
wait_until "test -s '$WORK/stale.ready'"
expect_eq "$(python3 "$WORK/client.py" unix "$WORK/stale.sock" x)" "echo:x" "stale socket replaced"
kill -TERM $p; wait $p || true
echo data >"$WORK/regular"
set +e; "$RELAY" --forward "unix:$WORK/regular=tcp:127.0.0.1:$TCP_UP" 2>"$WORK/regular.err"; rc=$?; set -e
expect_eq "$rc" "1" "refuses to replace a regular file"
expect_contains "$(cat "$WORK/regular.err")" "not a socket"
expect_eq "$(cat "$WORK/regular")" "data" "regular file untouched"

log "command: exit codes"
set +e
"$RELAY" -- sh -c 'exit 7'; rc=$?
expect_eq "$rc" "7" "child exit code"
"$RELAY" -- sh -c 'kill -KILL $$'; rc=$?
expect_eq "$rc" "137" "killed child -> 128+9"
"$RELAY" -- "$WORK/does-not-exist" 2>"$WORK/noexist.err"; rc=$?
set -e
expect_eq "$rc" "127" "missing command"
expect_contains "$(cat "$WORK/noexist.err")" "cannot run"

log "command: relays while the child runs; listeners are not inherited"
set +e
out=$("$RELAY" --forward "tcp:127.0.0.1:0=unix:$WORK/up.sock" --ready-file "$WORK/c.ready" -- \
  bash -c 'p=$(sed -nE "1s/^tcp:127\.0\.0\.1:([0-9]+)=.*/\1/p" "$1"); python3 "$2" tcp "$p" inside;
           echo; n=0; for f in /proc/$$/fd/*; do [[ $(readlink "$f") == socket:* ]] && n=$((n+1)); done; echo "sockets=$n"; exit 5' \
  _ "$WORK/c.ready" "$WORK/client.py")
rc=$?
set -e
expect_eq "$rc" "5" "exit code with forwards"
expect_contains "$out" "echo:inside"
expect_contains "$out" "sockets=0" "child inherited a socket"

log "command: signals are forwarded"
for sig in TERM INT HUP QUIT USR1 USR2; do
  rm -f "$WORK/sig.ready"
  "$RELAY" -- bash -c "trap 'exit 42' $sig; touch '$WORK/sig.ready'; while :; do sleep 0.05; done" &
  p=$!
  wait_until "test -e '$WORK/sig.ready'"
  kill -s "$sig" $p
  set +e; wait $p; rc=$?; set -e
  expect_eq "$rc" "42" "SIG$sig forwarded"
done

log "command: as PID 1 it reaps orphans and its exit ends the namespace"
if unshare --pid --fork --mount-proc true 2>/dev/null; then
  marker="tfrelaymarker$(random_token 8)"
  set +e
  out=$(unshare --pid --fork --mount-proc "$RELAY" -- bash -c "
    (bash -c 'exit 0' &)             # orphan that exits: must be reaped, not left a zombie
    (exec -a $marker sleep 300 &)    # orphan that keeps running: dies with PID 1
    sleep 0.5
    ps -eo stat= | grep -c '^Z' || true
    exit 3")
  rc=$?
  set -e
  expect_eq "$rc" "3" "exit code as PID 1"
  expect_eq "$out" "0" "zombies under the relay"
  set +e; pgrep -f "$marker" >/dev/null; found=$?; set -e
  expect_eq "$found" "1" "orphan survived the relay's namespace"
else
  log "unshare --pid not permitted here: PID 1 part not run"
fi

log "bad input"
for spec in "bogus" "tcp:127.0.0.1:80=tcp:127.0.0.1:81" "tcp:localhost:1=unix:/x" "tcp:127.0.0.1:99999=unix:/x" \
  "unix:relative.sock=tcp:127.0.0.1:1" "udp:1=unix:/x" "unix:/x.sock=tcp:127.0.0.1:0"; do
  set +e; "$RELAY" --forward "$spec" 2>"$WORK/bad.err"; rc=$?; set -e
  expect_eq "$rc" "2" "bad spec $spec"
  expect_contains "$(cat "$WORK/bad.err")" "tokfence-relay: error: forward:"
done
set +e; "$RELAY" 2>"$WORK/bad.err"; rc=$?; set -e
expect_eq "$rc" "2" "no arguments"
set +e; "$RELAY" --forward "tcp:127.0.0.1:0=unix:$WORK/up.sock" --frobnicate 2>"$WORK/bad.err"; rc=$?; set -e
expect_contains "$(cat "$WORK/bad.err")" "unknown argument: --frobnicate"
