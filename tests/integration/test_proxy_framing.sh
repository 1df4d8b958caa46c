#!/usr/bin/env bash
# HTTP/1.1 framing through the proxy, both ways, against a scripted raw upstream (every byte
# chosen by the test): bodies delimited by close, chunked bodies with extensions and trailers,
# interim 1xx responses, Transfer-Encoding beside Content-Length, malformed status lines and chunk
# sizes; HTTP/1.0 clients (de-chunked, keep-alive on request), pipelined requests, chunked request
# bodies, HEAD, and request-smuggling shapes that must be refused. Usage is read from every kind of
# body, and the daemon keeps serving after each fault.
source "$(dirname "$0")/lib.sh"

# --- The scripted upstream: ?mode=<name> picks the reply; every request it gets is appended to
# requests.log (head and body) so the test can see what the proxy sent.
cat >"$WORK/upstream.py" <<'PY'
import hashlib, socket, sys, threading, os

port_file, log_path = sys.argv[1], sys.argv[2]
USAGE = b'{"id":"x","object":"chat.completion","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
lock = threading.Lock()

def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
    head, buf = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(buf) < length:
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data
    body, buf = buf[:length], buf[length:]
    # The injected key is logged as <vault-key>: no artifact may hold the canary.
    record = (head + b"\r\n\r\n" + body).replace(os.environ["VAULT_KEY"].encode(), b"<vault-key>")
    digest = hashlib.sha256(body).hexdigest().encode()
    with lock, open(log_path, "ab") as f:
        f.write(record + b"\n--- body-sha256=" + digest + b"\n")
    return head, buf

def reply(mode, method):
    """Returns (bytes, close_after)."""
    if mode == b"close":
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + USAGE, True
    if mode == b"chunked":
        a, b = USAGE[:40], USAGE[40:]
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                b"%X;name=val\r\n" % len(a) + a + b"\r\n" + b"%X\r\n" % len(b) + b + b"\r\n" +
                b"0\r\nX-Trailer: t\r\n\r\n"), False
    if mode == b"interim":
        return (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(USAGE) + USAGE), False
    if mode == b"both":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n" +
                b"%x\r\n" % len(USAGE) + USAGE + b"\r\n0\r\n\r\n"), False
    if mode == b"badstatus":
        return b"HTTP/1.1 2x0 Nonsense\r\nContent-Length: 2\r\n\r\n{}", True
    if mode == b"badchunk":
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                b"5\r\n{\"a\":\r\nzz\r\n"), True
    if mode == b"noreason":
        return b"HTTP/1.1 200\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(USAGE) + USAGE, False
    body = USAGE
    if method == b"HEAD":
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body), False
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body, False

def serve(conn):
    buf = b""
    try:
        while True:
            head, buf = read_request(conn, buf)
            if head is None:
                return
            line = head.split(b"\r\n", 1)[0]
            method, target = line.split(b" ")[0], line.split(b" ")[1]
            mode = b""
            if b"mode=" in target:
                mode = target.split(b"mode=", 1)[1].split(b"&")[0]
            data, close = reply(mode, method)
            conn.sendall(data)
            if close:
                return
    finally:
        conn.close()

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
srv.settimeout(120)  # stops by itself if the test dies
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)
while True:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    conn.settimeout(30)
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
VAULT_KEY=$CANARY /usr/bin/python3 "$WORK/upstream.py" "$WORK/raw.port" "$WORK/out/requests.log" &
_pids_to_kill+=($!)
wait_until "test -s '$WORK/raw.port'"
RAW_URL="http://127.0.0.1:$(cat "$WORK/raw.port")"
FAKE_URL=$RAW_URL
write_test_config
add_canary_key openai
start_daemon

row() { sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT $2 FROM requests WHERE id='$1'"; }
flush() { tf_ok status --json; }
request_id() { grep -i '^x-tokfence-request-id:' "$1" | tr -d '\r' | awk '{print $2}'; }
chat="$PROXY_URL/openai/v1/chat/completions"
body='{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
usage_json='"usage":{"prompt_tokens":7,"completion_tokens":3'

# Sends raw bytes on one TCP connection, half-closes, prints everything the proxy answered.
raw() {
  /usr/bin/python3 - "$PROXY_PORT" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
PY
}

# usage row check: 7 input and 3 output tokens, and a cost (gpt-4o is priced).
expect_usage() {
  local id=$1 what=$2
  expect_eq "$(row "$id" input_tokens)" 7 "$what: input tokens"
  expect_eq "$(row "$id" output_tokens)" 3 "$what: output tokens"
}

# --- A body delimited by the upstream's close: chunk-encoded for an HTTP/1.1 client.
out=$(curl -fsS -D "$WORK/out/h-close" "$chat?mode=close" -d "$body")
expect_contains "$out" "$usage_json" "close-delimited body relayed"
expect_contains "$(tr -d '\r' <"$WORK/out/h-close")" "Transfer-Encoding: chunked" "close-delimited body chunked to 1.1"
id_close=$(request_id "$WORK/out/h-close")
# ... and sent as is, then closed, to an HTTP/1.0 client.
out=$(curl -fsS --http1.0 -D "$WORK/out/h-close10" "$chat?mode=close" -d "$body")
expect_contains "$out" "$usage_json" "close-delimited body to 1.0"
expect_not_contains "$(cat "$WORK/out/h-close10")" "chunked" "no chunked to HTTP/1.0"
expect_contains "$(head -1 "$WORK/out/h-close10")" "HTTP/1.0 200" "1.0 status line"

# --- Chunked with extensions and trailers: passed through to 1.1, decoded for 1.0.
out=$(curl -fsS -D "$WORK/out/h-chunked" "$chat?mode=chunked" -d "$body")
expect_eq "$out" "$(sed -n 's/^USAGE = b.\(.*\).$/\1/p' "$WORK/upstream.py")" "chunked body decoded by the client"
id_chunked=$(request_id "$WORK/out/h-chunked")
out=$(raw "POST /openai/v1/chat/completions?mode=chunked HTTP/1.0\r\nContent-Length: ${#body}\r\n\r\n$body")
expect_contains "$out" "HTTP/1.0 200" "chunked to 1.0: status"
expect_contains "$out" "\"total_tokens\":10}}" "chunked to 1.0: body"
expect_not_contains "$out" "name=val" "chunk framing sent to an HTTP/1.0 client"
expect_not_contains "$out" "Transfer-Encoding" "Transfer-Encoding sent to an HTTP/1.0 client"

# --- Interim 100 and 103 responses are skipped; a missing reason phrase gets the standard one.
out=$(curl -fsS -D "$WORK/out/h-interim" "$chat?mode=interim" -d "$body")
expect_contains "$out" "$usage_json" "reply after interim responses"
expect_eq "$(grep -c '^HTTP/' "$WORK/out/h-interim")" 1 "interim responses relayed"
id_interim=$(request_id "$WORK/out/h-interim")
curl -fsS -D "$WORK/out/h-noreason" "$chat?mode=noreason" -d "$body" >/dev/null
expect_contains "$(head -1 "$WORK/out/h-noreason" | tr -d '\r')" "HTTP/1.1 200 OK" "standard reason phrase"

# --- Transfer-Encoding beside a wrong Content-Length: chunked wins, the length is not relayed.
out=$(curl -fsS -D "$WORK/out/h-both" "$chat?mode=both" -d "$body")
expect_contains "$out" "$usage_json" "TE over CL"
expect_not_contains "$(tr 'A-Z' 'a-z' <"$WORK/out/h-both")" "content-length" "Content-Length relayed beside chunked"

# --- Malformed upstream replies: a clear 502, or a cut stream logged as an error.
out=$(curl -sS -w '\n%{http_code}' "$chat?mode=badstatus" -d "$body")
expect_eq "$(tail -1 <<<"$out")" 502 "malformed status line"
expect_contains "$out" "sent a malformed response" "malformed status message"
set +e
curl -sS -D "$WORK/out/h-badchunk" "$chat?mode=badchunk" -d "$body" >"$WORK/out/badchunk" 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || die "a cut chunked stream looked complete to the client"
id_badchunk=$(request_id "$WORK/out/h-badchunk")

# --- Requests: a chunked body (with an extension) goes upstream with its real Content-Length.
: >"$WORK/out/requests.log"
out=$(raw "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=y\r\n{\"mod\r\n$(printf '%x' $((${#body} - 5)))\r\n${body:5}\r\n0\r\n\r\n")
expect_contains "$out" "HTTP/1.1 200" "chunked request"
sent=$(cat "$WORK/out/requests.log")
expect_contains "$sent" "Content-Length: ${#body}" "chunked request forwarded with its length"
expect_contains "$sent" "$body" "chunked request body decoded"
expect_not_contains "$(tr 'A-Z' 'a-z' <<<"$sent")" "transfer-encoding" "Transfer-Encoding forwarded"

# --- A large upload (3 MiB, read past the first buffer and across many reads) arrives intact,
# and so does a chunked one of the same bytes.
head -c 2300000 /dev/urandom | base64 -w0 | jq -Rsc '{model:"gpt-4o",messages:[{role:"user",content:.}]}' >"$WORK/out/big.json"
big_sha=$(sha256sum "$WORK/out/big.json" | cut -d' ' -f1)
: >"$WORK/out/requests.log"
curl -fsS "$chat" -H 'Content-Type: application/json' --data-binary @"$WORK/out/big.json" >/dev/null
curl -fsS "$chat" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/out/big.json" >/dev/null
expect_eq "$(grep -ac "body-sha256=$big_sha" "$WORK/out/requests.log")" 2 "large uploads arrived intact"
rm -f "$WORK/out/big.json"

# --- Pipelining: three requests in one write (the second chunked), three answers in order.
out=$(raw "POST /openai/v1/chat/completions?n=1 HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nContent-Length: ${#body}\r\n\r\n${body}POST /openai/v1/chat/completions?n=2 HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nTransfer-Encoding: chunked\r\n\r\n$(printf '%x' ${#body})\r\n$body\r\n0\r\n\r\nGET /__tokfence/health HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nConnection: close\r\n\r\n")
expect_eq "$(grep -o 'HTTP/1.1 200' <<<"$out" | wc -l)" 3 "pipelined answers"
expect_contains "$(tail -c 40 <<<"$out")" '{"status":"ok"}' "pipelined answers in order"

# --- HTTP/1.0 keep-alive on request; HEAD gets the head only and the connection stays usable.
out=$(raw "GET /__tokfence/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nHEAD /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\n\r\nGET /openai/v1/models HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nConnection: close\r\n\r\n")
expect_contains "$out" "HTTP/1.0 200" "1.0 keep-alive answer"
expect_contains "$(tr -d '\r' <<<"$out")" "Connection: keep-alive" "1.0 keep-alive said"
expect_eq "$(grep -o 'HTTP/1.1 200' <<<"$out" | wc -l)" 2 "HEAD then GET on one connection"
expect_eq "$(grep -o '"prompt_tokens":7' <<<"$out" | wc -l)" 1 "HEAD answered without a body"

# --- Smuggling shapes and malformed framing: 400, connection closed, nothing sent upstream.
: >"$WORK/out/requests.log"
for bad in \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nContent-Length : 2\r\n\r\n{}" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n" \
  "POST /openai/v1/chat/completions HTTP/1.1\nContent-Length: 2\n\n{}" \
  "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:$PROXY_PORT\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n" \
  "POST /openai/v1/chat/completions HTTP/2.0\r\n\r\n"; do
  out=$(raw "$bad")
  expect_contains "$(head -1 <<<"$out")" "400" "refused: $bad"
  expect_contains "$out" "tokfence_bad_request" "error type for: $bad"
  expect_eq "$(grep -cE '^HTTP/1\.[01] [0-9]{3}' <<<"$out")" 1 "one answer, then close, for: $bad"
done
expect_eq "$(cat "$WORK/out/requests.log")" "" "a refused request reached the upstream"

# --- The log: usage from every body shape; the cut stream is an error row.
flush
expect_usage "$id_close" "close-delimited"
expect_usage "$id_chunked" "chunked"
expect_usage "$id_interim" "after interim responses"
expect_contains "$(row "$id_badchunk" error)" "malformed chunked body" "cut chunked stream logged"
expect_eq "$(sqlite3 "$TOKFENCE_HOME/tokfence.db" "SELECT count(*) FROM requests WHERE status = 400 AND error LIKE 'request: malformed HTTP%'")" 9 "400 rows"

# The daemon still serves, and the key reached the upstream (and nothing else).
out=$(curl -fsS "$chat" -d "$body")
expect_contains "$out" "$usage_json" "still serving"
: >"$WORK/out/requests.log"
curl -fsS "$chat" -H "Authorization: Bearer client-key" -d "$body" >/dev/null
expect_contains "$(cat "$WORK/out/requests.log")" "Authorization: Bearer <vault-key>" "vault key injected"
expect_not_contains "$(cat "$WORK/out/requests.log")" "client-key" "client key forwarded"
