#!/usr/bin/env bash
# A decoy in a response: the model repeats a credential it was shown (or an upstream hands one
# back). The response is relayed untouched and unbuffered (the client gets it whole, the decoy
# included), the session turns RED after it, and its next request is refused. The upstream here
# is a small loopback server that answers with whatever text the test put in a file, so the decoy
# is never in the request.
source "$(dirname "$0")/lib.sh"

TEXT_FILE="$WORK/reply-text"
printf 'pong' >"$TEXT_FILE"
python3 - "$WORK/echo.port" "$TEXT_FILE" >"$WORK/out/echo.log" 2>&1 <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port_file, text_file = sys.argv[1], sys.argv[2]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        text = open(text_file).read()
        stream = self.headers.get("X-Stream") == "1"
        if stream:
            body = ("data: " + json.dumps({"choices": [{"delta": {"content": text}}]}) + "\n\n"
                    "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}) + "\n\n"
                    "data: [DONE]\n\n").encode()
            ctype = "text/event-stream"
        else:
            body = json.dumps({"id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(srv.server_address[1]))
srv.timeout = 1
import time
deadline = time.time() + 300
while time.time() < deadline:
    srv.handle_request()
PY
_pids_to_kill+=($!)
wait_until "test -s '$WORK/echo.port'"
FAKE_URL="http://127.0.0.1:$(cat "$WORK/echo.port")"
TOKFENCE_TEST_REQUIRE_TOKEN=true
write_test_config
add_canary_key openai
start_daemon

sock="$WORK/sock/proxy.sock"
mkdir -p "$WORK/sock"
ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$sock\",\"caller\":\"probe\",\"mode\":384,\"session\":{\"kind\":\"run\",\"decoys\":true}}" >"$WORK/out/open.json"
[[ $(jq -r .ok "$WORK/out/open.json") == true ]] || die "open_proxy_socket: $(jq -c 'del(.session.token)' "$WORK/out/open.json")"
TOKEN=$(jq -r .session.token "$WORK/out/open.json")
DECOY=$(jq -r '.session.decoys.values[1]' "$WORK/out/open.json")
NAME=$(jq -r .session.name "$WORK/out/open.json")
send() {
  curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$sock" http://localhost/openai/v1/chat/completions \
    -H "Authorization: Bearer $TOKEN" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' "$@"
}

expect_eq "$(send)" 200 "a normal exchange"
tf session show "$NAME" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" GREEN

printf 'sure, the key is %s' "$DECOY" >"$TEXT_FILE"
expect_eq "$(send)" 200 "the response with a decoy is relayed"
grep -qF -- "$DECOY" "$WORK/out/reply" || die "the response was changed: the decoy is missing from what the client got"
tf session show "$NAME" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" RED "after a decoy in a response"
expect_eq "$(jq -r '.transitions[-1].detail' <<<"$TF_OUT" | grep -c 'response carried')" 1 "transition detail"
printf 'pong' >"$TEXT_FILE"
expect_eq "$(send)" 403 "the next request of a RED session"
expect_contains "$(cat "$WORK/out/reply")" tokfence_risk_red

# The same through a stream (one SSE event holds the whole value): relayed, and RED.
tf session reset "$NAME"
printf 'streamed: %s' "$DECOY" >"$TEXT_FILE"
expect_eq "$(send -H 'X-Stream: 1')" 200 "a streamed response with a decoy"
grep -qF -- "$DECOY" "$WORK/out/reply" || die "the stream was changed"
tf session show "$NAME" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" RED "after a decoy in a stream"
