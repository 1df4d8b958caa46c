#!/usr/bin/env bash
# Attack: slowloris. A client inside the fence holds connections (and the daemon's descriptors)
# open forever at almost no cost: a chunked body trickled one byte per second (each byte used to
# re-arm the idle deadline), a head trickled the same way, and hundreds of sockets that never
# send a byte. With idle_timeout_seconds at 30, tokfence must still cut
#   - the trickled body by body_timeout_seconds (3 here) in total,
#   - the trickled head and the silent sockets by header_timeout_seconds (2 here),
# and serve a legitimate client while 300 silent sockets are open, even when started with a soft
# descriptor limit of 256 (the daemon raises it to the hard limit).
# Fails against a build without these deadlines (TOKFENCE_BIN=/tmp/orig/build/bin/tokfence).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
sed -i 's/^port = 0$/port = 0\nidle_timeout_seconds = 30\nheader_timeout_seconds = 2\nbody_timeout_seconds = 3/' \
  "$TOKFENCE_HOME/config.toml"
add_canary_key openai
HARD_LIMIT=$(ulimit -Hn)
[[ "$HARD_LIMIT" == unlimited || "$HARD_LIMIT" -ge 1024 ]] || skip "hard descriptor limit $HARD_LIMIT is below 1024"
ulimit -Sn 256  # what the daemon inherits; it must not stay at that
start_daemon
ulimit -Sn "$HARD_LIMIT"

# Seconds until the daemon closes a connection that trickles `first` and then one byte of `rest`
# per second; "open" when it was still open after 12 s.
trickle() {
  timeout 30 /usr/bin/python3 - "$PROXY_PORT" "$1" "$2" <<'PY'
import socket, sys, time
unescape = lambda a: a.encode().decode("unicode_escape").encode("latin-1")
port, first, rest = int(sys.argv[1]), unescape(sys.argv[2]), unescape(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(first.replace(b"HOSTPORT", b"127.0.0.1:%d" % port))
start = time.monotonic()
rest = rest * 100
for i in range(12):
    try:
        s.sendall(rest[i:i + 1])
    except OSError:
        print(round(time.monotonic() - start, 1)); sys.exit()
    s.settimeout(1.0)
    try:
        data = s.recv(4096)
        if data == b"" or data:  # closed, or an answer (then closed)
            print(round(time.monotonic() - start, 1)); sys.exit()
    except socket.timeout:
        pass
    except OSError:
        print(round(time.monotonic() - start, 1)); sys.exit()
print("open")
PY
}

# --- A chunked body, one byte per second.
secs=$(trickle 'POST /openai/v1/chat/completions HTTP/1.1\r\nHost: HOSTPORT\r\nTransfer-Encoding: chunked\r\n\r\n' '1\r\nx\r\n')
log "trickled chunked body: closed after ${secs}s"
[[ "$secs" != open ]] || die "a chunked body trickled one byte per second held the connection for 12 s (body_timeout_seconds = 3)"
awk -v s="$secs" 'BEGIN { exit !(s < 6.5) }' || die "trickled body cut after ${secs}s (body_timeout_seconds = 3)"

# --- A Content-Length body, one byte per second.
secs=$(trickle 'POST /openai/v1/chat/completions HTTP/1.1\r\nHost: HOSTPORT\r\nContent-Length: 1000\r\n\r\n' 'x')
log "trickled Content-Length body: closed after ${secs}s"
[[ "$secs" != open ]] || die "a body trickled one byte per second held the connection for 12 s"
awk -v s="$secs" 'BEGIN { exit !(s < 6.5) }' || die "trickled body cut after ${secs}s (body_timeout_seconds = 3)"

# --- A head, one byte per second.
secs=$(trickle 'POST /openai/v1/chat/completions HTTP/1.1\r\n' 'X-Slow: aaaaaaaaaa')
log "trickled head: closed after ${secs}s"
[[ "$secs" != open ]] || die "a head trickled one byte per second held the connection for 12 s (header_timeout_seconds = 2)"
awk -v s="$secs" 'BEGIN { exit !(s < 5.5) }' || die "trickled head cut after ${secs}s (header_timeout_seconds = 2)"

# --- 300 silent sockets; a legitimate client is served meanwhile; the silent ones are closed.
out=$(timeout 40 /usr/bin/python3 - "$PROXY_PORT" <<'PY'
import json, socket, sys, time
port = int(sys.argv[1])
idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
time.sleep(0.5)
body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
legit = socket.create_connection(("127.0.0.1", port), timeout=5)
legit.sendall(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % port +
              b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
reply = b""
try:
    while True:
        data = legit.recv(65536)
        if not data:
            break
        reply += data
except OSError as e:
    reply = reply or str(e).encode()
status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "none"
# The silent sockets: closed by the header deadline (2 s after their accept).
time.sleep(3.5)
closed = 0
for s in idle:
    s.settimeout(0.01)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass
    except OSError:
        closed += 1
print(status, closed)
PY
)
read -r status closed <<<"$out"
log "legitimate client beside 300 silent sockets: status $status; silent sockets closed after 4 s: $closed/300"
expect_eq "$status" 200 "a legitimate request while 300 silent sockets are open"
expect_eq "$closed" 300 "silent sockets closed by header_timeout_seconds"
curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}' >/dev/null ||
  die "daemon not serving at the end"

stop_daemon
scan_for_canary
log "ok"
