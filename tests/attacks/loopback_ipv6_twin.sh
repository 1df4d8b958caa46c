#!/usr/bin/env bash
# Escape class: another local user takes the IPv6 twin of a tokfence loopback listener (review 14a
# F1, F2). The proxy port, the web dashboard and launch's dashboard relay (tokfence-relay
# --check-host) listened on 127.0.0.1:<port> only. Clients that resolve localhost (Python's urllib
# and httpx, Node's fetch, Chromium) try ::1 first, and any local user may listen on
# [::1]:<same port> (no privilege needed): they got the prompts and session tokens meant for the
# proxy, and served the browser a page of the UI's origin. Expected now: each of these listeners
# holds [::1]:<port> too, with the same checks (peer uid, Host, caller look-up), and a fixed port
# whose twin another program holds fails the start, naming that program's uid.
#   a. uid 65534 holds [::1]:P before `tokfence start` on port P: start fails, naming it; nothing
#      is left listening on 127.0.0.1:P.
#   b. daemon running: uid 65534 cannot listen on [::1]:<proxy port> or [::1]:<dashboard port>
#      (EADDRINUSE); a localhost client that tries ::1 first reaches the proxy (vault key injected
#      upstream, caller looked up) and the dashboard; uid 65534 on ::1 gets 403 from both.
#   c. tokfence-relay --check-host: a fixed port whose twin is held exits with the holder named;
#      port 0 holds both, serves the user on [::1] and refuses uid 65534 there.
# Needs root (setpriv) and ::1 on lo; without ::1 nobody can squat the twin (skipped).
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root to act as another uid (setpriv)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null ||
  skip "no ::1 on lo (IPv6 off): there is no twin to squat"
OTHER=65534
OTHER_NAME=$(getent passwd "$OTHER" | cut -d: -f1)
as_other() { (cd / && setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups "$@" </dev/null); }
as_other true || skip "setpriv cannot switch to uid $OTHER here"

# The squatter: uid $OTHER listens on [::1]:PORT (IPV6_V6ONLY, SO_REUSEADDR: no help against a
# listening socket) and answers every request "squatter" for up to 60 s. Its first line says
# "bound" or "refused <errno>".
SQUAT_PY='
import errno, socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("::1", int(sys.argv[1]))); s.listen(16)
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno), flush=True); sys.exit(0)
print("bound", flush=True)
s.settimeout(60)
end = time.time() + 60
while time.time() < end:
    try: c, _ = s.accept()
    except OSError: break
    c.settimeout(3)
    try: c.recv(65536)
    except OSError: pass
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nsquatter"); c.close()
'
# squat PORT NAME: starts the squatter; sets SQUAT_PID and SQUAT (its first line).
squat() {
  (cd / && exec setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups /usr/bin/python3 -c "$SQUAT_PY" "$1") \
    >"$WORK/squat-$2.out" 2>&1 </dev/null &
  SQUAT_PID=$!
  _pids_to_kill+=("$SQUAT_PID")
  wait_until "test -s '$WORK/squat-$2.out'"
  SQUAT=$(head -1 "$WORK/squat-$2.out")
}
unsquat() { kill "$SQUAT_PID" 2>/dev/null || true; wait "$SQUAT_PID" 2>/dev/null || true; }
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
listening_v4() { ss -ltnH "( sport = :$1 )" | grep -qF "127.0.0.1:$1"; }

# The user's client as httpx, urllib and Node's fetch connect: localhost's addresses in
# getaddrinfo's order, with Debian's default /etc/hosts (::1 first), given to this client alone in
# a private mount namespace (this machine's hosts file may lack the ::1 line). Prints the address
# it reached, then the answer.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$WORK/hosts"
LOCALHOST_CLIENT='
import http.client, json, sys
conn = http.client.HTTPConnection("localhost", int(sys.argv[1]), timeout=10)
conn.connect()
print(conn.sock.getpeername()[0])
body = sys.argv[3].encode() if len(sys.argv) > 3 else None
conn.request("POST" if body else "GET", sys.argv[2], body=body, headers={"Content-Type": "application/json"})
r = conn.getresponse()
print(r.status, r.read()[:300].decode(errors="replace"))
'
localhost_client() {
  unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$WORK/hosts" /usr/bin/python3 -c "$LOCALHOST_CLIENT" "$@"
}

part_a() {
  log "a. [::1]:P held by uid $OTHER before the start on port P"
  local port
  port=$(free_port)
  sed -i "0,/^port = 0\$/s//port = $port/" "$TOKFENCE_HOME/config.toml"
  squat "$port" a
  expect_eq "$SQUAT" bound "the squatter on [::1]:$port (nothing listens there yet)"
  tf start -d
  [[ $TF_RC -ne 0 ]] || die "start succeeded while uid $OTHER holds [::1]:$port: localhost clients that try ::1 first reach them"
  expect_contains "$TF_ERR" "daemon: [::1]:$port is in use by uid $OTHER ($OTHER_NAME): clients that try localhost at ::1 first"
  expect_contains "$TF_ERR" "stop it or set [daemon] port"
  ! listening_v4 "$port" || die "127.0.0.1:$port is left listening after the failed start"
  unsquat
  sed -i "s/^port = $port\$/port = 0/" "$TOKFENCE_HOME/config.toml"
}

part_b() {
  log "b. the running daemon holds [::1] for the proxy and the dashboard"
  start_daemon
  local dport
  dport=$(jq -r .dashboard_port "$TOKFENCE_HOME/daemon.json")
  for port in "$PROXY_PORT" "$dport"; do
    squat "$port" "b$port"
    [[ $SQUAT != bound ]] || die "uid $OTHER listens on [::1]:$port beside the running daemon; a localhost client got: $(
      localhost_client "$port" /openai/v1/models | tr '\n' ' ')"
    expect_eq "$SQUAT" "refused EADDRINUSE" "uid $OTHER on [::1]:$port"
  done
  local out
  out=$(localhost_client "$PROXY_PORT" /openai/v1/chat/completions \
    '{"model":"gpt-twin-localhost","messages":[{"role":"user","content":"my prompt"}]}')
  log "localhost client: $(head -c 200 <<<"$out")"
  expect_eq "$(head -1 <<<"$out")" "::1" "the client tried ::1 first"
  expect_contains "$out" "200 " "the proxy answered over ::1"
  expect_not_contains "$out" squatter
  local req
  req=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -c '.[-1]')
  [[ $(jq -r .headers.authorization <<<"$req") == "Bearer $CANARY" ]] || die "the vault key was not injected for the ::1 request"
  log "caller look-up for a connection on ::1"
  expect_eq "$(curl -sS -m 10 -g -o /dev/null -w '%{http_code}' -H "Host: localhost:$PROXY_PORT" \
    -H 'Content-Type: application/json' --data '{"model":"gpt-twin-curl","messages":[{"role":"user","content":"hi"}]}' \
    "http://[::1]:$PROXY_PORT/openai/v1/chat/completions")" 200 "curl over ::1"
  wait_until "'$TOKFENCE_BIN' log --json | jq -e '[.[] | select(.model == \"gpt-twin-curl\" and .caller_name == \"curl\")] | length == 1'" 20
  log "uid $OTHER over ::1: refused at accept, as over 127.0.0.1"
  expect_contains "$(as_other curl -sS -m 10 -g -w ' status=%{http_code}' "http://[::1]:$PROXY_PORT/__tokfence/health" 2>&1 || true)" \
    "status=403" "uid $OTHER on the proxy's twin"
  expect_contains "$(as_other curl -sS -m 10 -g -w ' status=%{http_code}' "http://[::1]:$dport/metrics" 2>&1 || true)" \
    "status=403" "uid $OTHER on the dashboard's twin"
  log "the dashboard over ::1 (Host localhost), as a browser trying ::1 first reaches it"
  out=$(localhost_client "$dport" /metrics)
  expect_eq "$(head -1 <<<"$out")" "::1" "the dashboard client tried ::1 first"
  expect_contains "$out" "200 " "the dashboard answered over ::1"
  expect_contains "$out" "# HELP" "metrics over ::1"
  expect_eq "$(curl -sS -m 10 -g -o /dev/null -w '%{http_code}' -H "Host: evil.example:$dport" "http://[::1]:$dport/metrics")" \
    421 "Host check on the dashboard's twin"
  tf_ok status --json
  expect_eq "$(jq -c .tcp_listeners <<<"$TF_OUT")" "[\"127.0.0.1:$PROXY_PORT\",\"[::1]:$PROXY_PORT\"]" "status: proxy listeners"
  expect_eq "$(jq -c .dashboard_listeners <<<"$TF_OUT")" "[\"127.0.0.1:$dport\",\"[::1]:$dport\"]" "status: dashboard listeners"
  tf_ok status
  expect_contains "$TF_OUT" "http://[::1]:$PROXY_PORT" "status lists the twin"
  stop_daemon
}

part_c() {
  log "c. tokfence-relay --check-host"
  local dir port rc
  dir=$(mktemp -d /tmp/tftwin.XXXXXX)  # a short path: sun_path holds 108 bytes
  EXTRA_CLEANUP="rm -rf '$dir'; ${EXTRA_CLEANUP:-}"
  /usr/bin/python3 - "$dir/t.sock" <<'PY' >"$WORK/target.log" 2>&1 &
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.recv(65536)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello-relay")
socketserver.UnixStreamServer(sys.argv[1], H).serve_forever()
PY
  _pids_to_kill+=($!)
  wait_until "test -S '$dir/t.sock'"
  port=$(free_port)
  squat "$port" c
  expect_eq "$SQUAT" bound "the squatter on [::1]:$port"
  set +e
  timeout 5 "$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:$port=unix:$dir/t.sock" --own-uid-only --check-host \
    --ready-file "$dir/fixed.ready" >"$WORK/relay-fixed.log" 2>&1
  rc=$?
  set -e
  [[ $rc -ne 124 ]] || die "the relay served 127.0.0.1:$port for 5 s while uid $OTHER holds [::1]:$port"
  [[ $rc -ne 0 ]] || die "the relay exited 0"
  expect_contains "$(cat "$WORK/relay-fixed.log")" "[::1]:$port is in use by uid $OTHER ($OTHER_NAME)" "the relay names the holder"
  [[ ! -e $dir/fixed.ready ]] || die "the relay said it was ready"
  unsquat
  "$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unix:$dir/t.sock" --own-uid-only --check-host \
    --ready-file "$dir/any.ready" >"$WORK/relay-any.log" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -s '$dir/any.ready'"
  port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$dir/any.ready")
  [[ $port =~ ^[1-9][0-9]*$ ]] || die "no port in the ready file: $(cat "$dir/any.ready")"
  squat "$port" c0
  [[ $SQUAT != bound ]] || die "uid $OTHER listens on [::1]:$port beside the relay"
  expect_eq "$SQUAT" "refused EADDRINUSE" "uid $OTHER on the relay's twin"
  expect_eq "$(curl -sS -m 10 -g -H "Host: localhost:$port" "http://[::1]:$port/")" hello-relay "the user over ::1"
  expect_eq "$(curl -sS -m 10 "http://127.0.0.1:$port/")" hello-relay "the user over 127.0.0.1"
  expect_eq "$(curl -sS -m 10 -g -o /dev/null -w '%{http_code}' -H "Host: evil.example:$port" "http://[::1]:$port/")" 421 \
    "Host check on the relay's twin"
  expect_contains "$(as_other curl -sS -m 10 -g -H "Host: localhost:$port" -w ' status=%{http_code}' "http://[::1]:$port/" 2>&1 || true)" \
    "status=403" "uid $OTHER on the relay's twin"
}

start_fake_upstream
write_test_config '[dashboard]' 'enabled = true' 'port = 0'
add_canary_key openai
part_a
part_b
part_c
