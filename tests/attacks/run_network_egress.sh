#!/usr/bin/env bash
# Escape class: network egress from `tokfence run` other than the proxy. The agent tries a raw
# TCP connect to another loopback port on the host, to the proxy's own port on another loopback
# address (127.0.0.2), bash's /dev/tcp, IPv6 ::1, a UDP datagram to a host listener, DNS to the
# resolver in /etc/resolv.conf, and ICMP through a ping socket. Each host listener is first shown
# reachable with --no-sandbox; inside, only the proxy answers (the sandbox's network namespace
# has nothing but its own `lo`, where the relay listens on the proxy's port).
#
# Traffic stays on this machine: every target is a loopback address, and the probe's resolve and
# ping refuse to send at all where a non-loopback interface is up (so only inside the sandbox).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

# A TCP listener on ADDR:PORT (PORT 0: any; the port is written to FILE), accepting for 10 min.
listen_tcp() {
  python3 -c '
import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64); s.settimeout(5)
open(sys.argv[3], "w").write(str(s.getsockname()[1]))
end = time.time() + 600
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except socket.timeout:
        pass
' "$1" "$2" "$3" &
  _pids_to_kill+=($!)
  wait_until "test -s '$3'"
}

# A UDP listener on 127.0.0.1 that appends every datagram it gets to FILE.port's sibling FILE.log.
listen_udp() {
  python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(5)
open(sys.argv[1] + ".port", "w").write(str(s.getsockname()[1]))
end = time.time() + 600
while time.time() < end:
    try:
        data, _ = s.recvfrom(2048)
        with open(sys.argv[1] + ".log", "a") as f:
            f.write(data.decode(errors="replace") + "\n")
    except socket.timeout:
        pass
' "$1" &
  _pids_to_kill+=($!)
  wait_until "test -s '$1.port'"
}

listen_tcp 127.0.0.1 0 "$WORK/tcp4.port"
TCP4=$(cat "$WORK/tcp4.port")
have_v6=""
if ip -6 addr show lo 2>/dev/null | grep -q '::1'; then
  listen_tcp ::1 0 "$WORK/tcp6.port"
  TCP6=$(cat "$WORK/tcp6.port")
  have_v6=1
fi
listen_udp "$WORK/udp"
UDP=$(cat "$WORK/udp.port")
touch "$WORK/udp.log"

log "the probe's ping works where ICMP is allowed (a network namespace of the test's own)"
if unshare --net sh -c "ip link set lo up && echo '0 2147483647' >/proc/sys/net/ipv4/ping_group_range &&
    '$PROBE' ping 127.0.0.1" >"$WORK/out/ping-control.out" 2>&1; then
  PING_CONTROL=1
else
  log "ping control could not run here: $(cat "$WORK/out/ping-control.out")"
  PING_CONTROL=""
fi
NAMESERVER=$(awk '$1 == "nameserver" {print $2; exit}' /etc/resolv.conf)

attack() {
  principal_setup "$1"
  # The proxy's port on another loopback address: same port, not the proxy.
  listen_tcp 127.0.0.2 "$P_PORT" "$WORK/$P_MODE-alias.port"

  log "[$P_MODE] unprotected: --no-sandbox reaches every host listener"
  nosb() { ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- "$@"; }
  nosb connect 127.0.0.1 "$TCP4"
  expect_eq "$RC" 0 "control: tcp 127.0.0.1:$TCP4: $OUT"
  nosb connect 127.0.0.2 "$P_PORT"
  expect_eq "$RC" 0 "control: tcp 127.0.0.2:$P_PORT: $OUT"
  if [[ -n $have_v6 ]]; then
    nosb connect ::1 "$TCP6"
    expect_eq "$RC" 0 "control: tcp [::1]:$TCP6: $OUT"
  fi
  ptf run codex --no-sandbox --command /bin/bash --workdir "$P_PROJECT" -- -c "echo hi >/dev/tcp/127.0.0.1/$TCP4"
  expect_eq "$RC" 0 "control: bash /dev/tcp: $ERR"
  nosb udp-send 127.0.0.1 "$UDP" "control-$P_MODE"
  wait_until "grep -q 'control-$P_MODE' '$WORK/udp.log'"

  log "[$P_MODE] sandboxed: none of them, only the proxy"
  prun -- connect 127.0.0.1 "$TCP4"
  expect_eq "$RC" 1 "tcp 127.0.0.1:$TCP4 from the sandbox: $OUT"
  prun -- connect 127.0.0.2 "$P_PORT"
  expect_eq "$RC" 1 "tcp 127.0.0.2:$P_PORT (the proxy's port, another address) from the sandbox: $OUT"
  if [[ -n $have_v6 ]]; then
    prun -- connect ::1 "$TCP6"
    expect_eq "$RC" 1 "tcp [::1]:$TCP6 from the sandbox: $OUT"
    prun -- connect ::1 "$P_PORT"
    expect_eq "$RC" 1 "tcp [::1]:$P_PORT from the sandbox: $OUT"
  fi
  ptf run codex --command /bin/bash --workdir "$P_PROJECT" -- -c "echo hi >/dev/tcp/127.0.0.1/$TCP4"
  expect_eq "$RC" 1 "bash /dev/tcp from the sandbox: $ERR"
  prun -- udp-send 127.0.0.1 "$UDP" "escaped-$P_MODE"
  sleep 0.5
  expect_not_contains "$(cat "$WORK/udp.log")" "escaped-$P_MODE" "a UDP datagram from the sandbox reached the host"
  prun -- resolve example.com
  expect_eq "$RC" 1 "DNS from the sandbox: $OUT"
  if [[ -n $NAMESERVER ]]; then
    prun -- ping "$NAMESERVER"
    expect_eq "$RC" 1 "ICMP to the resolver from the sandbox (2 = the probe saw a real interface): $OUT"
    [[ -z $PING_CONTROL ]] || log "[$P_MODE] (the same probe's ping works where ICMP is allowed)"
  fi
  prun_get_keyed "$P_URL/openai/v1/models"
  expect_eq "$RC" 0 "the proxy from the sandbox: $OUT $ERR"
  expect_contains "$OUT" "status 200"
}

for_each_principal attack
