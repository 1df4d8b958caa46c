#!/usr/bin/env bash
# Memory as the weapon (docs/EGRESS.md, "Inspected hosts"): answers from a host with bound secrets
# are read whole (up to 8 MiB) and checked before the agent gets a byte. A hostile agent opens 20
# connections to the bound host, asks each for an 8 MB answer, and reads none of it: without a
# limit the daemon holds every answer (measured ~25 MiB a connection, 500 MiB here, growing with
# every connection up to the listener's cap). All such answers together may hold at most 64 MiB:
# the connections past it get 503 busy at once. The daemon's resident memory must stay within
# 64 MiB + 96 MiB of slack of where it started.
source "$(dirname "$0")/egress_lib.bash"
egress_setup '{"allow":["api.telegram.org"],"secrets":["bot"]}' '[egress]' "extra_ca_file = \"$WORK/cert.pem\""
bind_secret bot api.telegram.org
DAEMON_PID=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status"; }

log "control: one 8 MB answer from the bound host arrives whole"
as_agent api.telegram.org:443 'GET /blob?n=8000000 HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n'
[[ $STATUS == "HTTP/1.1 200"* ]] || die "one 8 MB answer: $STATUS"
expect_eq "$(( ${#REPLY} >= 8000000 ))" 1 "the whole answer was relayed (${#REPLY} bytes)"

before=$(rss_kib)
log "20 connections ask for 8 MB each and read nothing (daemon RSS before: $before KiB)"
result=$($PY - "$RELAY_PORT" "$TOKFENCE_HOME/egress-ca.pem" 20 "$DAEMON_PID" <<'PY'
import socket, ssl, sys, time
port, ca, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
held, codes = [], []
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that does not read
    s.settimeout(15)
    s.connect(("127.0.0.1", port))
    s.sendall(b"CONNECT api.telegram.org:443 HTTP/1.1\r\nHost: api.telegram.org:443\r\n\r\n")
    got = b""
    for _ in range(100):
        if b"\r\n\r\n" in got: break
        got += s.recv(4096)
    t = ctx.wrap_socket(s, server_hostname="api.telegram.org")
    t.sendall(b"GET /blob?n=8000000 HTTP/1.1\r\nHost: api.telegram.org\r\n\r\n")
    first = t.recv(64)
    codes.append(first.split(b" ")[1].decode() if first.count(b" ") else "none")
    held.append(t)
time.sleep(3)
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
print(" ".join(codes), rss)
for t in held: t.close()
PY
)
codes=${result% *}
after=${result##* }
log "answers: $codes; daemon RSS with them held: $after KiB"
grep -qw 503 <<<"$codes" || die "no connection was turned away: $codes"
grep -qw 200 <<<"$codes" || die "no connection was served: $codes"
(( after - before < (64 + 96) * 1024 )) || die "the daemon grew by $(( (after - before) / 1024 )) MiB (limit 64 MiB + slack)"
rows=$(egress_rows)
expect_eq "$(jq '[.[] | select(.rule == "busy")] | length >= 1' <<<"$rows")" true "a row with rule busy"
