#!/usr/bin/env bash
# Attack: memory exhaustion by declared body length. A client inside the fence sends only request
# heads that declare `Content-Length: 64 MiB` (the default max_body_bytes) on 8 connections and
# then stays silent. A proxy that allocates the declared length up front gives away 512 MiB of
# resident memory for ~1 KB of traffic; tokfence grows a body's buffer as bytes arrive, so its
# RSS must grow by less than 16 MiB. Then: bytes really sent count against
# max_inflight_body_bytes (all connections together): past it, a clear 503, and the daemon serves on.
# Fails against a build that pre-allocates (TOKFENCE_BIN=/tmp/orig/build/bin/tokfence: +512 MiB).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
sed -i 's/^port = 0$/port = 0\nmax_inflight_body_bytes = 8388608/' "$TOKFENCE_HOME/config.toml"
add_canary_key openai
start_daemon
DAEMON_PID=$(tr -dc 0-9 <"$TOKFENCE_HOME/daemon.pid")
[[ -n "$DAEMON_PID" && -r /proc/$DAEMON_PID/status ]] || die "no daemon pid"

# --- 8 heads declaring 64 MiB each, held open while the daemon's RSS is read.
out=$(timeout 60 /usr/bin/python3 - "$PROXY_PORT" "$DAEMON_PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def status(field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
before_rss, before_hwm = status("VmRSS"), status("VmHWM")
head = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
        b"Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n{\"model\":")
conns = []
for _ in range(8):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(head)
    conns.append(s)
time.sleep(2)  # the daemon has read every head (and allocated, if it does so up front)
after_rss, after_hwm = status("VmRSS"), status("VmHWM")
print(before_rss, after_rss, before_hwm, after_hwm)
for s in conns:
    s.close()
PY
)
read -r before_rss after_rss before_hwm after_hwm <<<"$out"
grown=$((after_rss - before_rss))
log "daemon VmRSS ${before_rss} kB -> ${after_rss} kB (+${grown} kB), VmHWM ${before_hwm} kB -> ${after_hwm} kB"
((grown < 16384)) || die "8 silent 64 MiB heads grew the daemon's RSS by ${grown} kB (limit 16384 kB): bodies are allocated before they arrive"
((after_hwm - before_hwm < 16384)) || die "VmHWM grew by $((after_hwm - before_hwm)) kB"
curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}' >/dev/null ||
  die "daemon not serving after the heads"

# --- Bytes really sent are capped across connections: 6 MiB held on one, 6 MiB more on another.
out=$(timeout 60 /usr/bin/python3 - "$PROXY_PORT" <<'PY'
import json, select, socket, sys, time
port = int(sys.argv[1])
head = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port +
        b"Content-Type: application/json\r\nContent-Length: 67108864\r\n\r\n")
first = socket.create_connection(("127.0.0.1", port), timeout=20)
first.sendall(head)
time.sleep(0.2)
first.sendall(b"x" * (6 << 20))
time.sleep(0.5)  # read by the daemon and held
second = socket.create_connection(("127.0.0.1", port), timeout=20)
second.sendall(head)
time.sleep(0.2)
# 64 KiB at a time, each read by the daemon before the next: when the daemon refuses, nothing
# the client sent is left unread (which would turn its close into a reset that loses the answer).
reply = b""
for _ in range(64):
    if select.select([second], [], [], 0.05)[0]:
        break
    second.sendall(b"y" * 65536)
second.settimeout(10)
try:
    while True:
        data = second.recv(65536)
        if not data:
            break
        reply += data
except OSError:
    pass
first.close()
status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "none"
body = reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in reply else b"{}"
print(status, json.loads(body or b"{}").get("error", {}).get("type", "-"))
PY
)
read -r status type <<<"$out"
expect_eq "$status" 503 "a body that passes max_inflight_body_bytes across connections"
expect_eq "$type" tokfence_overloaded "its error type"
curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}' >/dev/null ||
  die "daemon not serving after the in-flight cap"

stop_daemon
scan_for_canary
log "ok"
