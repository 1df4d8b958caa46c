#!/usr/bin/env bash
# Attack (review 15c C1): a process of the user's (not fenced: a fenced agent cannot reach the
# control socket) holds all 64 control connections, each pinging every few seconds. `tokfence
# status` and `tokfence stop` then failed with "control connection closed without an answer", and
# the daemon could not be stopped but by hand. Expected: the 65th connection is told why ("control:
# busy"), and `tokfence stop` stops the daemon anyway (SIGTERM to the pid that holds daemon.pid's
# lock and runs this tokfence), its log flushed as on any stop.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
start_daemon
daemon_pid=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
python3 - "$TOKFENCE_HOME/control.sock" "$WORK/flood.ready" <<'PY' &
import socket, sys, time
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b'{"op":"ping"}\n')
    s.recv(4096)
    held.append(s)
open(sys.argv[2], "w").write("ready\n")
for _ in range(60):  # bounded: at most 3 minutes
    time.sleep(3)
    for s in held:
        try:
            s.sendall(b'{"op":"ping"}\n'); s.recv(4096)
        except OSError:
            pass
PY
_pids_to_kill+=($!)
wait_until "test -s '$WORK/flood.ready'" 20 || die "the flood did not take the control connections"
tf status
expect_contains "$TF_ERR" "control: busy" "tokfence status says the control socket is busy"
tf stop
expect_eq "$TF_RC" 0 "tokfence stop with every control connection taken: $TF_ERR"
expect_contains "$TF_ERR" "sending SIGTERM to pid $daemon_pid"
expect_contains "$TF_OUT" "daemon stopped (pid $daemon_pid)"
! kill -0 "$daemon_pid" 2>/dev/null || die "the daemon still runs"
expect_contains "$(cat "$TOKFENCE_HOME/daemon.log")" "daemon stopped; request log flushed"
