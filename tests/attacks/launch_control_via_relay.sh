#!/usr/bin/env bash
# Escape class: a tokfence-relay (which only ever carries agent traffic: a container's dashboard, a
# sandbox's proxy) is made to connect to TOKFENCE_HOME/control.sock. Its peer credentials are the
# user's own, in the host's namespaces, so the uid and namespace checks pass: whoever talks to the
# relay's TCP port could then kill the daemon or clear budgets. The control socket also refuses a
# peer whose executable is tokfence-relay, with a clear error, and the CLI keeps working.
#
# Unprotected set-up first: the same forwarding done by a program that is not tokfence-relay (a
# small Python forwarder) IS served, so the check below is what stops the relay.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
start_daemon
control="$TOKFENCE_HOME/control.sock"

# Sends one control request through TCP port $1; prints the reply.
send_request() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    s.sendall(sys.argv[2].encode() + b"\n")
    print(s.recv(4096).decode(errors="replace"))
except OSError as e:
    print("connection error:", e)
PY
}
killed() {
  tf_ok status --json
  jq -r .controls.killed <<<"$TF_OUT"
}

# --- unprotected: a forwarder that is not tokfence-relay
python3 - "$control" "$WORK/fwd.port" <<'PY' &
import os, socket, sys, threading, time
target, port_file = sys.argv[1], sys.argv[2]
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4); l.settimeout(1)
open(port_file + ".tmp", "w").write(str(l.getsockname()[1])); os.rename(port_file + ".tmp", port_file)
def pump(a, b):
    try:
        while (data := a.recv(65536)):
            b.sendall(data)
    except OSError:
        pass
end = time.time() + 300
while time.time() < end:
    try: c, _ = l.accept()
    except OSError: continue
    u = socket.socket(socket.AF_UNIX); u.connect(target)
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
PY
_pids_to_kill+=($!)
wait_until "test -s '$WORK/fwd.port'"
reply=$(send_request "$(cat "$WORK/fwd.port")" '{"op":"kill"}')
expect_contains "$reply" '"ok":true' "kill through a plain forwarder (the unprotected case must work)"
expect_eq "$(killed)" true "kill switch after the plain forwarder"
tf_ok unkill
expect_eq "$(killed)" false "unkill from the CLI"

# --- tokfence-relay pointed at the control socket
"$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unix:$control" --ready-file "$WORK/relay.ready" \
  >"$WORK/relay.log" 2>&1 &
_pids_to_kill+=($!)
wait_until "test -s '$WORK/relay.ready'"
relay_port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$WORK/relay.ready")
for op in kill budget_clear ping; do
  reply=$(send_request "$relay_port" "{\"op\":\"$op\",\"provider\":\"openai\"}")
  expect_contains "$reply" '"ok":false' "$op through tokfence-relay"
  expect_contains "$reply" "control: refused: peer (pid " "$op through tokfence-relay"
  expect_contains "$reply" "is tokfence-relay" "$op through tokfence-relay: the reason"
done
expect_eq "$(killed)" false "kill switch after requests through the relay"

# The CLI still works over the same socket.
tf_ok kill
expect_eq "$(killed)" true "kill from the CLI"
tf_ok unkill
expect_eq "$(killed)" false "unkill from the CLI"
