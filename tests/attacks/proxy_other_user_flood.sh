#!/usr/bin/env bash
# Another local user cannot use the proxy (proxy_other_uid), but it could still harm the user who
# runs it through the TCP listener, which every user can reach:
#  - connection cap: its idle connections took places under max_connections_per_listener until
#    header_timeout_seconds (the uid check came only after the head), so enough of them shut the
#    user's own agents out (503 tokfence_overloaded);
#  - request-log flood: every refused request was a row in the user's tokfence.db, with a caller
#    name of the other user's choosing (X-Tokfence-Caller): 112 MB in 15 s;
#  - forward-proxy requests (CONNECT, absolute form) skipped the uid check and planted egress rows
#    ("denied ... (main listener)") in the user's audit trail.
# Now the uid is checked at accept, before a place is taken and before a byte is read: another
# user's connection gets 403 tokfence_forbidden_peer and is closed, no row is written, and the
# daemon's log gets one line a minute at most. Fails on the previous binary (every part).
# Needs root (to become uid 65534 with setpriv).
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root to run a client as another uid"
command -v setpriv >/dev/null || skip "setpriv (util-linux) not installed"
command -v sqlite3 >/dev/null || skip "sqlite3 not installed"
OTHER=65534
as_other() { (cd / && setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups "$@"); }
as_other true || skip "setpriv cannot switch to uid $OTHER here"

start_fake_upstream
write_test_config
# A small per-listener cap, and idle connections held for a minute: 60 of them are then enough.
sed -i 's/^port = 0$/port = 0\nheader_timeout_seconds = 60\nmax_connections_per_listener = 30/' "$TOKFENCE_HOME/config.toml"
add_canary_key openai
start_daemon

body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
url="$PROXY_URL/openai/v1/chat/completions"
own_request() { curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$url" -d "$body" 2>/dev/null || true; }
rows() {
  tf_ok log --json -n 1  # the daemon flushes its rows first
  sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests"
}
problems=()
problem() {
  log "FINDING: $*"
  problems+=("$*")
}

expect_eq "$(own_request)" 200 "the daemon's own user before the attack"

log "uid $OTHER holds 60 idle TCP connections (re-opening each one closed) for at most 30 s"
as_other /usr/bin/python3 - "$PROXY_PORT" 60 30 <<'PY' >"$WORK/out/hold.log" 2>&1 &
import selectors, socket, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sel = selectors.DefaultSelector()
def opened():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
for _ in range(n):
    opened()
print("holding", n, flush=True)
end, reopened = time.time() + seconds, 0
while time.time() < end and reopened < 20000:
    for key, _ in sel.select(timeout=0.5):
        try:
            data = key.fileobj.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            sel.unregister(key.fileobj)
            key.fileobj.close()
            try:
                opened()
                reopened += 1
            except OSError:
                pass
print("done, re-opened", reopened, flush=True)
PY
HOLDER=$!
_pids_to_kill+=($HOLDER)
wait_until "grep -q holding '$WORK/out/hold.log'" 20
codes=""
for _ in 1 2 3; do
  codes+="$(own_request) "
  sleep 0.5
done
log "the daemon's own user while uid $OTHER holds connections: $codes"
[[ $codes == "200 200 200 " ]] || problem "uid $OTHER's idle connections shut the user out: $codes"
kill "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
rows_before=$(rows)

log "uid $OTHER sends 600 requests (256-byte X-Tokfence-Caller), then CONNECT and absolute-form requests"
as_other /usr/bin/python3 - "$PROXY_PORT" <<'PY' >"$WORK/out/flood.txt" 2>&1
import socket, sys, threading, time
port = int(sys.argv[1])
req = (f"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Tokfence-Caller: planted-"
       + "A" * 240 + "\r\nContent-Length: 2\r\n\r\n{}").encode()
def exchange(payload):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(payload)
        data = b""
        while len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode("latin-1")
    except OSError as e:
        return "error " + str(e)
counts = {"sent": 0, "refused": 0}
lock = threading.Lock()
def flood():
    for _ in range(75):
        answer = exchange(req)
        with lock:
            counts["sent"] += 0 if answer.startswith("error") and "reset" not in answer else 1
            counts["refused"] += 1 if "tokfence_forbidden_peer" in answer else 0
threads = [threading.Thread(target=flood) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
# Answered 403, or closed at once past the few answers the daemon writes at a time.
print("sent", counts["sent"], "refused", counts["refused"])
time.sleep(0.5)  # the refused connections of the flood are closed by now
for line in ("CONNECT exfil-to-evil.example:443 HTTP/1.1\r\nHost: exfil-to-evil.example:443\r\n\r\n",
             "GET http://planted.example/x HTTP/1.1\r\nHost: planted.example\r\n\r\n"):
    print("forward:", exchange(line.encode()).replace("\r\n", " | "))
PY
cat "$WORK/out/flood.txt" >&2
read -r sent refused < <(awk '/^sent/ {print $2, $4}' "$WORK/out/flood.txt")
((sent == 600 && refused >= 1)) || die "the flood did not run: $sent of 600 requests sent, $refused refused as tokfence_forbidden_peer"
grep -c '^forward:.*HTTP/1.1 403 .*tokfence_forbidden_peer' "$WORK/out/flood.txt" | grep -qx 2 ||
  problem "uid $OTHER's CONNECT / absolute-form requests were not refused as a foreign peer: $(grep '^forward:' "$WORK/out/flood.txt" | cut -c1-300)"

rows_after=$(rows)
log "request-log rows: $rows_before before, $rows_after after uid $OTHER's requests"
[[ $rows_after == "$rows_before" ]] || problem "uid $OTHER wrote $((rows_after - rows_before)) rows into the user's request log"
planted=$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests WHERE caller_name LIKE 'planted-%'")
[[ $planted == 0 ]] || problem "$planted rows name the caller uid $OTHER chose"
tf_ok log --egress --json -n 1000
egress_rows=$(jq length <<<"$TF_OUT")
[[ $egress_rows == 0 ]] || problem "uid $OTHER planted $egress_rows egress rows: $(jq -c '[.[] | {host, decision, rule}]' <<<"$TF_OUT")"

# The refusals are counted in the daemon's log, one line a minute at most (this test takes less
# than two minutes), naming the uid.
lines=$(grep -c 'TCP connection(s) of other local users' "$TOKFENCE_HOME/daemon.log" || true)
log "daemon.log lines about other users' connections: $lines"
if [[ $lines -lt 1 || $lines -gt 2 ]]; then
  problem "expected one or two daemon-log lines counting the refusals, found $lines"
else
  expect_contains "$(grep 'TCP connection(s) of other local users' "$TOKFENCE_HOME/daemon.log" | head -1)" "uid $OTHER" "the log line"
fi

expect_eq "$(own_request)" 200 "the daemon's own user after the attack"
((${#problems[@]} == 0)) || die "$(printf '%s; ' "${problems[@]}")"
stop_daemon
log "ok"
