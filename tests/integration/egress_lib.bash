# Shared set-up for the egress tests (tests/integration/test_egress_*.sh, tests/attacks/egress_*.sh):
# a TLS fake "internet" on host loopback and a config that maps test names to it. Source it after
# lib.sh. Not a test itself (the ctest globs take test_*.sh and attacks/*.sh only).
#
# No traffic leaves this machine: the fake listens on 127.0.0.1, and the daemon reaches it only
# because [egress.resolve] maps the names allowed.test, later.test and denied.test there (an
# address the user configured is trusted as given, loopback included). Nothing resolves them
# otherwise (.test is reserved).
#
#   egress_tls_setup          CA + a certificate for the three names ($TLS_DIR/ca.pem); starts the
#                             fake on $TLS_BIND (default 127.0.0.1) (sets TLS_PORT, TLS_LOG: one
#                             "GET host path" line per request). GET /slow sends 60 KiB over 30 s.
#   egress_config_lines       the [egress.resolve] lines for write_test_config
#                             Every head is also appended whole to $TLS_LOG.heads; GET /echo answers
#                             with the request head it received; POST logs "POST host path bytes".
#   egress_run_setup          all of it plus fake upstream, config, key, daemon; PROJECT for run;
#                             EGRESS_EXTRA_CONFIG (an array) adds config lines after [egress.resolve]
#   curl_in_run ARGS...       tokfence run codex --command curl --workdir $PROJECT [RUN_FLAGS] -- ARGS
#   expect_egress_refusal TEXT  TEXT (curl -v/-D output) shows a 403 naming the rule in X-Tokfence-Egress
#   egress_launch_setup       egress_tls_setup + launch_lib's set-up + daemon; WS: a workspace for
#                             --workspace holding ca.pem and a copy of the host's curl with its
#                             libraries (the probe image has none); CURL_C: how to run it inside

egress_tls_setup() {
  command -v openssl >/dev/null || skip "openssl missing"
  TLS_DIR="$WORK/tls"
  mkdir -p "$TLS_DIR"
  chmod 755 "$WORK" "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj /CN=tokfence-egress-test-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
      -subj /CN=allowed.test 2>/dev/null
    printf 'subjectAltName=DNS:allowed.test,DNS:later.test,DNS:denied.test\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile ext.cnf 2>/dev/null
    chmod 644 ca.pem
  ) || die "could not make the test certificates"
  TLS_LOG="$WORK/tls-requests.log"
  : >"$TLS_LOG"
  : >"$TLS_LOG.heads"
  python3 - "$TLS_DIR" "$WORK/tls.port" "$TLS_LOG" "${TLS_BIND:-127.0.0.1}" <<'PY' &
import http.server, os, socketserver, ssl, sys, threading, time
tls_dir, port_file, log, bind = sys.argv[1:5]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def record_head(self):
        # Every head as received, for the inspection tests ($TLS_LOG.heads).
        with open(log + ".heads", "a") as f:
            f.write(self.requestline + "\n" + str(self.headers) + "----\n")
    def do_POST(self):
        self.record_head()
        host = self.headers.get("Host", "").split(":")[0]
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else b""
        with open(log, "a") as f:
            f.write(f"POST {host} {self.path} {len(body)}\n")
        reply = f"posted {len(body)} bytes to {host}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def do_GET(self):
        self.record_head()
        host = self.headers.get("Host", "").split(":")[0]
        with open(log, "a") as f:
            f.write(f"GET {host} {self.path}\n")
        if self.path.startswith("/echo"):
            # A host that quotes the request back (an echo endpoint, an error page with the URL).
            body = (self.requestline + "\n" + str(self.headers)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/slow"):
            self.send_response(200)
            self.send_header("Content-Length", str(60 * 1024))
            self.end_headers()
            try:
                for _ in range(60):
                    self.wfile.write(b"x" * 1024)
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                with open(log, "a") as f:
                    f.write(f"CUT {host} {self.path}\n")
            return
        body = f"hello from {host} over tls\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server((bind, 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(tls_dir, "server.pem"), os.path.join(tls_dir, "server.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
threading.Timer(600, server.shutdown).start()
server.serve_forever()
PY
  _pids_to_kill+=($!)
  wait_until "test -s '$WORK/tls.port'"
  TLS_PORT=$(cat "$WORK/tls.port")
  # The positive control: the fake answers for each name when asked directly.
  curl -fsS --cacert "$TLS_DIR/ca.pem" --resolve "allowed.test:$TLS_PORT:127.0.0.1" \
    "https://allowed.test:$TLS_PORT/" >/dev/null || die "the TLS fake does not answer on 127.0.0.1:$TLS_PORT"
  : >"$TLS_LOG"
  : >"$TLS_LOG.heads"
}

egress_config_lines() {
  printf '%s\n' '[egress.resolve]' \
    "\"allowed.test\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"later.test\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"denied.test\" = \"127.0.0.1:$TLS_PORT\""
}

egress_run_setup() {
  egress_tls_setup
  start_fake_upstream --require-key "$CANARY"
  local lines
  mapfile -t lines < <(egress_config_lines)
  write_test_config "${lines[@]}" "${EGRESS_EXTRA_CONFIG[@]}"
  add_canary_key openai
  start_daemon
  PROJECT="$WORK/project"
  mkdir -p "$PROJECT"
  CURL=$(command -v curl) || skip "curl missing"
}

# RUN_FLAGS (an array) go before `--`, e.g. RUN_FLAGS=(--allow allowed.test).
curl_in_run() {
  tf run codex --command "$CURL" --workdir "$PROJECT" "${RUN_FLAGS[@]}" -- "$@"
}

expect_egress_refusal() {
  local text=$1 what=$2
  grep -qE '^< HTTP/1\.[01] 403|^HTTP/1\.[01] 403' <<<"$text" || die "$what: no 403 from tokfence: $text"
  grep -qiE '^<? ?x-tokfence-egress:' <<<"$text" || die "$what: no X-Tokfence-Egress header: $text"
}

egress_launch_setup() {
  egress_tls_setup
  local lines
  mapfile -t lines < <(egress_config_lines)
  launch_test_setup "${lines[@]}"
  start_daemon
  # The workspace is mounted at /workspace; the container user reads it.
  WS="$WORK/ws"
  mkdir -p "$WS/cb"
  cp "$TLS_DIR/ca.pem" "$WS/ca.pem"
  local curl_bin lib loader
  curl_bin=$(command -v curl) || skip "curl missing"
  cp -L "$curl_bin" "$WS/cb/curl"
  loader=$(ldd "$curl_bin" | awk '/ld-linux/ {print $1}')
  [[ -n $loader ]] || skip "cannot find curl's dynamic loader"
  cp -L "$loader" "$WS/cb/ld.so"
  while read -r lib; do
    [[ -f $lib ]] && cp -L "$lib" "$WS/cb/"
  done < <(ldd "$curl_bin" | awk '/=>/ {print $3}')
  chmod -R a+rX "$WS"
  chmod 777 "$WS"  # the container user leaves marker files there
  chmod 755 "$WORK"
  CURL_C="/workspace/cb/ld.so --library-path /workspace/cb /workspace/cb/curl"
}
