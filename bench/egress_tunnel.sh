#!/usr/bin/env bash
# The forward proxy's cost (docs/EGRESS.md): throughput of one CONNECT tunnel against a direct
# connection, and the time a new tunnel adds before the first byte.
#
#   bench/egress_tunnel.sh [--build DIR] [--mb N] [--rounds R] [--connects N] [--relay]
#
#  1. N MB (default 100) from a loopback source, read by a client (a) directly over TCP and (b)
#     through a CONNECT tunnel on a per-agent socket of the daemon (with --relay: through
#     tokfence-relay's TCP port, as inside a sandbox). Rounds alternate direct, tunnel; the
#     medians and their ratio are printed.
#  2. time to first byte over `--connects` (default 200) new connections, one at a time: connect,
#     send a request, first response byte (direct); connect, CONNECT, 200, request, first byte
#     (tunnel). Median and p90 of each and the median's difference: what a tunnel adds. The
#     destination name is mapped in [egress.resolve], so no DNS is in it (the issue's target
#     excludes DNS).
# Everything stays on 127.0.0.1; every wait is bounded; the temp dir and processes go at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build MB=100 ROUNDS=3 CONNECTS=200 VIA_RELAY=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --mb) MB=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --connects) CONNECTS=$2; shift 2 ;;
    --relay) VIA_RELAY=1; shift ;;
    *) echo "usage: bench/egress_tunnel.sh [--build DIR] [--mb N] [--rounds R] [--connects N] [--relay]" >&2; exit 2 ;;
  esac
done
[[ $MB =~ ^[0-9]+$ && $MB -ge 1 && $MB -le 10000 ]] || { echo "egress_tunnel: --mb: 1..10000" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "egress_tunnel: --rounds: 1..20" >&2; exit 2; }
[[ $CONNECTS =~ ^[0-9]+$ && $CONNECTS -ge 10 && $CONNECTS -le 10000 ]] || { echo "egress_tunnel: --connects: 10..10000" >&2; exit 2; }
BENCH_NAME=egress_tunnel
source "$ROOT/bench/lib.sh"
TF=$BUILD/bin/tokfence RELAY=$BUILD/bin/tokfence-relay
[[ -x $TF ]] || die "not built: $TF"
((VIA_RELAY == 0)) || [[ -x $RELAY ]] || die "not built: $RELAY"

TMP=$(mktemp -d /tmp/tf-egress-bench.XXXXXX)
pids=()
cleanup() {
  [[ -f $TMP/home/daemon.json ]] && TOKFENCE_HOME=$TMP/home "$TF" stop >/dev/null 2>&1 || true
  stop_pids "${pids[@]}"
  rm -rf "$TMP"
}
trap cleanup EXIT

# The source: answers any request head with N bytes from memory (one sendall: kernel speed).
cat >"$TMP/source.py" <<'PY'
import os, socket, sys, threading
size, port_file = int(sys.argv[1]), sys.argv[2]
payload = b"x" * size
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
open(port_file + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(port_file + ".tmp", port_file)
threading.Timer(1800, lambda: os._exit(0)).start()
def serve(c):
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d: return
            data += d
        want = size if b"/big" in data.split(b"\r\n", 1)[0] else 1
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % want + payload[:want])
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
# The client: direct or through the tunnel; prints seconds for the big read, or the TTFB list.
cat >"$TMP/client.py" <<'PY'
import socket, statistics, sys, time
mode, what, target, dest_port, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def connect():
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(target)
    else:
        s = socket.create_connection(("127.0.0.1", int(target)), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "tunnel":
        s.sendall(b"CONNECT bench.example:%d HTTP/1.1\r\nHost: bench.example:%d\r\n\r\n" % (dest_port, dest_port))
        got = b""
        while b"\r\n\r\n" not in got:
            d = s.recv(4096)
            if not d: raise SystemExit("tunnel refused: %r" % got)
            got += d
        if not got.startswith(b"HTTP/1.1 200"): raise SystemExit("tunnel refused: %r" % got)
    return s
if what == "big":
    t0 = time.perf_counter()
    s = connect()
    s.sendall(b"GET /big HTTP/1.1\r\nHost: b\r\n\r\n")
    n, buf = 0, bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if not k: break
        n += k
    print("%.4f %d" % (time.perf_counter() - t0, n))
else:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        s = connect()
        s.sendall(b"GET /small HTTP/1.1\r\nHost: b\r\n\r\n")
        s.recv(1)
        out.append((time.perf_counter() - t0) * 1000)
        s.close()
    out.sort()
    print("%.3f %.3f" % (statistics.median(out), out[int(len(out) * 0.9)]))
PY

log "source: $MB MB"
python3 "$TMP/source.py" $((MB * 1000 * 1000)) "$TMP/source.port" &
pids+=($!)
wait_until "test -s $TMP/source.port"
SRC=$(cat "$TMP/source.port")

export TOKFENCE_HOME=$TMP/home TOKFENCE_TEST_BACKEND=file TOKFENCE_VAULT_PASSPHRASE=bench-$(random_token 16)
mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[egress.resolve]\n"bench.example" = "127.0.0.1:%s"\n' "$SRC" \
  >"$TOKFENCE_HOME/config.toml"
"$TF" start -d >/dev/null
wait_until "test -s $TOKFENCE_HOME/daemon.json"
wait_until "'$TF' status"
SOCK=$TMP/agent.sock
control_op "{\"op\":\"open_proxy_socket\",\"path\":\"$SOCK\",\"caller\":\"bench\",\"egress\":{\"allow\":[\"bench.example:$SRC\"]}}"
TARGET=$SOCK
if ((VIA_RELAY)); then
  "$RELAY" --forward "tcp:127.0.0.1:0=unix:$SOCK" --ready-file "$TMP/relay.ready" >/dev/null 2>&1 &
  pids+=($!)
  wait_until "test -s $TMP/relay.ready"
  TARGET=$(sed -E 's/^tcp:127\.0\.0\.1:([0-9]+)=.*/\1/' "$TMP/relay.ready")
fi
DAEMON=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")

direct_s=() tunnel_s=()
for ((r = 1; r <= ROUNDS; r++)); do
  read -r secs bytes < <(python3 "$TMP/client.py" direct big "$SRC" 0 0)
  ((bytes > MB * 1000 * 1000)) || die "direct read $bytes bytes"
  direct_s+=("$secs")
  c0=$(cpu_ticks "$DAEMON")
  read -r secs bytes < <(python3 "$TMP/client.py" tunnel big "$TARGET" "$SRC" 0)
  ((bytes > MB * 1000 * 1000)) || die "tunnel read $bytes bytes"
  tunnel_s+=("$secs")
  log "round $r: direct ${direct_s[-1]} s, tunnel $secs s (daemon CPU $(($(cpu_ticks "$DAEMON") - c0)) ticks)"
done
d=$(median "${direct_s[@]}")
t=$(median "${tunnel_s[@]}")
read -r d_ttfb d_p90 < <(python3 "$TMP/client.py" direct small "$SRC" 0 "$CONNECTS")
read -r t_ttfb t_p90 < <(python3 "$TMP/client.py" tunnel small "$TARGET" "$SRC" "$CONNECTS")
tf_version=$("$TF" --version 2>/dev/null | head -1 || true)
echo
echo "egress tunnel benchmark ($tf_version; via $([[ $VIA_RELAY == 1 ]] && echo "tokfence-relay TCP" || echo "the agent's Unix socket"))"
printf '%-34s %12s %12s %8s\n' "" direct tunnel ratio
awk -v d="$d" -v t="$t" -v mb="$MB" 'BEGIN {
  printf "%-34s %12.0f %12.0f %8.2f\n", mb " MB, MB/s (median of runs)", mb / d, mb / t, d / t }'
printf '%-34s %12s %12s %8s\n' "new connection TTFB median, ms" "$d_ttfb" "$t_ttfb" ""
printf '%-34s %12s %12s %8s\n' "new connection TTFB p90, ms" "$d_p90" "$t_p90" ""
awk -v a="$d_ttfb" -v b="$t_ttfb" 'BEGIN { printf "added time to first byte per tunnel (median): %.3f ms\n", b - a }'
