#!/usr/bin/env bash
# What an inspected host costs (docs/EGRESS.md, "Inspected hosts"): tokfence terminating the
# agent's TLS, writing a bound secret into the request and opening its own verified TLS to the
# host, against the same request over an opaque CONNECT tunnel and directly.
#
#   bench/egress_inspect.sh [--build DIR] [--mb N] [--rounds R] [--connects N]
#
#  1. time to first byte of a new connection, `--connects` (default 200) one after another:
#     direct = TCP + TLS + GET; tunnel = CONNECT + 200 + TLS (end to end) + GET; inspected =
#     CONNECT + 200 + TLS with tokfence + tokfence's TLS to the host + GET ([egress.domains]
#     mode = "inspect"); with secret = the same with a secret bound to the host and the
#     placeholder in the request (the answer is read whole and checked before it goes on).
#     Median and p90, and what each adds to direct.
#  2. N MB (default 100) read over direct, tunnel and inspected (streamed: no secret is bound;
#     a host with a bound secret may not answer more than 8 MiB). Medians of `--rounds`, ratios.
# The destination is a Python TLS server on 127.0.0.1 with a throwaway CA; bench.test is mapped
# in [egress.resolve], so no DNS is involved. Everything stays on loopback; every wait is
# bounded; the temp dir and processes go at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$ROOT/build MB=100 ROUNDS=3 CONNECTS=200
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --mb) MB=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --connects) CONNECTS=$2; shift 2 ;;
    *) echo "usage: bench/egress_inspect.sh [--build DIR] [--mb N] [--rounds R] [--connects N]" >&2; exit 2 ;;
  esac
done
[[ $MB =~ ^[0-9]+$ && $MB -ge 1 && $MB -le 10000 ]] || { echo "egress_inspect: --mb: 1..10000" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "egress_inspect: --rounds: 1..20" >&2; exit 2; }
[[ $CONNECTS =~ ^[0-9]+$ && $CONNECTS -ge 10 && $CONNECTS -le 10000 ]] || { echo "egress_inspect: --connects: 10..10000" >&2; exit 2; }
BENCH_NAME=egress_inspect
source "$ROOT/bench/lib.sh"
TF=$BUILD/bin/tokfence
[[ -x $TF ]] || die "not built: $TF"
command -v openssl >/dev/null || die "openssl is needed"

TMP=$(mktemp -d /tmp/tf-inspect-bench.XXXXXX)
pids=()
cleanup() {
  [[ -f $TMP/home/daemon.json ]] && TOKFENCE_HOME=$TMP/home "$TF" stop >/dev/null 2>&1 || true
  stop_pids "${pids[@]}"
  rm -rf "$TMP"
}
trap cleanup EXIT

(
  cd "$TMP"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj /CN=tokfence-bench-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
    -subj /CN=bench.test 2>/dev/null
  printf 'subjectAltName=DNS:bench.test\nbasicConstraints=CA:FALSE\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
) || die "could not make the bench certificates"

# The destination: TLS; GET /big -> N bytes, anything else -> 1 byte; one request per connection.
cat >"$TMP/source.py" <<'PY'
import os, socket, ssl, sys, threading
size, port_file, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
payload = memoryview(b"x" * size)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
open(port_file + ".tmp", "w").write(str(s.getsockname()[1])); os.rename(port_file + ".tmp", port_file)
threading.Timer(1800, lambda: os._exit(0)).start()
def serve(raw):
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = ctx.wrap_socket(raw, server_side=True)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            if not d: return
            data += d
        want = size if b"/big" in data.split(b"\r\n", 1)[0] else 1
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % want)
        for i in range(0, want, 1 << 20):
            c.sendall(payload[i:min(want, i + (1 << 20))])
        c.close()
    except (OSError, ssl.SSLError):
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
# The client: direct | tunnel | inspect | secret (the placeholder in the request); big (prints seconds and bytes) or small (TTFB median, p90).
cat >"$TMP/client.py" <<'PY'
import socket, ssl, statistics, sys, time
mode, what, sock, src, count, cafile = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ctx = ssl.create_default_context(cafile=cafile)
ctx.set_alpn_protocols(["http/1.1"])
def connect():
    if mode == "direct":
        raw = socket.create_connection(("127.0.0.1", src), timeout=60)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    else:
        raw = socket.socket(socket.AF_UNIX); raw.settimeout(60); raw.connect(sock)
        raw.sendall(b"CONNECT bench.test:443 HTTP/1.1\r\nHost: bench.test:443\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            d = raw.recv(4096)
            if not d: raise SystemExit("tunnel refused: %r" % got)
            got += d
        if not got.startswith(b"HTTP/1.1 200"): raise SystemExit("tunnel refused: %r" % got)
    return ctx.wrap_socket(raw, server_hostname="bench.test")
def request(path):
    extra = b"X-Bench-Key: tokfence-secret:bench\r\n" if mode == "secret" else b""
    return b"GET " + path + b" HTTP/1.1\r\nHost: bench.test\r\n" + extra + b"\r\n"
if what == "big":
    t0 = time.perf_counter()
    s = connect()
    s.sendall(request(b"/big"))
    n, buf = 0, bytearray(1 << 20)
    while True:
        try:
            k = s.recv_into(buf)
        except ssl.SSLError:
            break
        if not k: break
        n += k
    print("%.4f %d" % (time.perf_counter() - t0, n))
else:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        s = connect()
        s.sendall(request(b"/small"))
        if not s.recv(1): raise SystemExit("no answer")
        out.append((time.perf_counter() - t0) * 1000)
        s.close()
    out.sort()
    print("%.3f %.3f" % (statistics.median(out), out[int(len(out) * 0.9)]))
PY

log "destination: $MB MB over TLS"
python3 "$TMP/source.py" $((MB * 1000 * 1000)) "$TMP/source.port" "$TMP/server.pem" "$TMP/server.key" &
pids+=($!)
wait_until "test -s $TMP/source.port"
SRC=$(cat "$TMP/source.port")

export TOKFENCE_HOME=$TMP/home TOKFENCE_VAULT_PASSPHRASE=bench-$(random_token 16)
mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[egress]\nextra_ca_file = "%s"\n\n[egress.resolve]\n"bench.test" = "127.0.0.1:%s"\n' \
  "$TMP/ca.pem" "$SRC" >"$TOKFENCE_HOME/config.toml"
"$TF" start -d >/dev/null
wait_until "test -s $TOKFENCE_HOME/daemon.json"
wait_until "'$TF' status"
DAEMON=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
open_socket() {  # path
  control_op "{\"op\":\"open_proxy_socket\",\"path\":\"$1\",\"caller\":\"bench\",\"egress\":{\"allow\":[\"bench.test\"]}}"
}
SOCK=$TMP/agent.sock
open_socket "$SOCK"
# Both the bench CA (direct, tunnel) and tokfence's local CA (inspected) in one trust file.
cat "$TMP/ca.pem" "$TOKFENCE_HOME/egress-ca.pem" >"$TMP/trust.pem"

declare -A secs ttfb p90
# Tunnel first (no secret bound: an opaque tunnel), then bind a secret to bench.test (inspected).
measure() {  # mode
  local mode=$1 all=() r s b c0
  for ((r = 1; r <= ROUNDS; r++)); do
    c0=$(cpu_ticks "$DAEMON")
    read -r s b < <(python3 "$TMP/client.py" "$mode" big "$SOCK" "$SRC" 0 "$TMP/trust.pem")
    ((b > MB * 1000 * 1000)) || die "$mode read $b bytes"
    all+=("$s")
    log "round $r: $mode $s s (daemon CPU $(($(cpu_ticks "$DAEMON") - c0)) ticks)"
  done
  secs[$mode]=$(median "${all[@]}")
  read -r "ttfb[$mode]" "p90[$mode]" < <(python3 "$TMP/client.py" "$mode" small "$SOCK" "$SRC" "$CONNECTS" "$TMP/trust.pem")
}
ttfb_only() {  # mode client-mode
  read -r "ttfb[$1]" "p90[$1]" < <(python3 "$TMP/client.py" "$2" small "$SOCK" "$SRC" "$CONNECTS" "$TMP/trust.pem")
}
measure direct
measure tunnel
# Inspected without a secret: the same daemon with [egress.domains."bench.test"] mode = "inspect".
"$TF" stop >/dev/null
printf '\n[egress.domains."bench.test"]\nmode = "inspect"\n' >>"$TOKFENCE_HOME/config.toml"
"$TF" start -d >/dev/null
wait_until "test -s $TOKFENCE_HOME/daemon.json"
wait_until "'$TF' status"
DAEMON=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
open_socket "$SOCK"
measure inspect
printf '%s' "bench-$(random_token 24)" | "$TF" vault add bench - --host bench.test >/dev/null
wait_until "grep -q '1 bound secret' '$TOKFENCE_HOME/daemon.log'"
ttfb_only secret secret

tf_version=$("$TF" --version 2>/dev/null | head -1 || true)
echo
echo "egress inspection benchmark ($tf_version; the agent's Unix socket, $CONNECTS connections, $ROUNDS rounds)"
printf '%-36s %10s %10s %10s %12s\n' "" direct tunnel inspected "with secret"
awk -v d="${secs[direct]}" -v t="${secs[tunnel]}" -v i="${secs[inspect]}" -v mb="$MB" 'BEGIN {
  printf "%-36s %10.0f %10.0f %10.0f\n", mb " MB over TLS, MB/s (median)", mb / d, mb / t, mb / i
  printf "%-36s %10s %10.2f %10.2f\n", "  ratio to direct", "", d / t, d / i }'
printf '%-36s %10s %10s %10s %12s\n' "new connection TTFB median, ms" "${ttfb[direct]}" "${ttfb[tunnel]}" "${ttfb[inspect]}" "${ttfb[secret]}"
printf '%-36s %10s %10s %10s %12s\n' "new connection TTFB p90, ms" "${p90[direct]}" "${p90[tunnel]}" "${p90[inspect]}" "${p90[secret]}"
awk -v d="${ttfb[direct]}" -v t="${ttfb[tunnel]}" -v i="${ttfb[inspect]}" -v w="${ttfb[secret]}" 'BEGIN {
  printf "added per new connection (median): tunnel %.3f ms, inspected %.3f ms, with a secret %.3f ms\n", t - d, i - d, w - d }'
