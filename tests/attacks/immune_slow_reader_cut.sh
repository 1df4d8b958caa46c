#!/usr/bin/env bash
# Escape class: keep a stream after its session is revoked by not reading it. Revoke (or RED) cuts
# a session's stream in flight: the sweep cancels the wait on the upstream. A client that stops
# reading a fast stream keeps the proxy busy writing to it instead, with no upstream wait pending
# for the cancel to hit: once it reads again, the rest of the stream (everything the upstream
# still sends) would flow as if nothing had happened.
# Checked: after the revoke, the client gets at most what was already on its way, never the end
# of the stream, and the row says why. Control: the same slow reader, no revoke, gets it all.
source "$(dirname "$0")/../integration/lib.sh"
[[ -x /usr/bin/python3 ]] || skip "/usr/bin/python3 missing"

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
write_test_config
add_canary_key openai
start_daemon
port=${PROXY_URL##*:}

# Sends a long fast stream (60,000 events, all at once), reads nothing for 3 s, touches $1/paused
# then reads to the end (bounded: 40 s). Prints "bytes=N done=0|1".
slow_reader() {
  local token=$1 flag=$2
  /usr/bin/python3 - "$port" "$token" "$flag" <<'PY'
import os, socket, sys, time
port, token, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"long"}]}'
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.sendall(b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + b"\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + token.encode() + b"\r\nx-fake-chunks: 60000\r\nConnection: close\r\n"
          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
time.sleep(3)
open(flag, "w").close()
time.sleep(2)
got, tail, end = 0, b"", time.time() + 40
s.settimeout(5)
while time.time() < end:
    try:
        chunk = s.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    got += len(chunk)
    tail = (tail + chunk)[-200:]
print("bytes=%d done=%d" % (got, 1 if b"[DONE]" in tail else 0))
PY
}

session_token() {
  tf session new --name "$1" --provider openai --json
  [[ $TF_RC -eq 0 ]] || die "session new $1: $TF_ERR"
  jq -r .token <<<"$TF_OUT"
}

log "control: a slow reader, untouched, gets the whole stream"
control=$(slow_reader "$(session_token keep)" "$WORK/paused-keep")
log "control: $control"
[[ $control == *"done=1"* ]] || die "control: the untouched slow reader did not get the end of the stream ($control)"
full=$(sed -n 's/bytes=\([0-9]*\).*/\1/p' <<<"$control")

log "revoked while the client is not reading"
token=$(session_token cut)
slow_reader "$token" "$WORK/paused-cut" >"$WORK/out/cut" &
reader=$!
_pids_to_kill+=($reader)
wait_until "test -e '$WORK/paused-cut'" 20
tf session revoke cut
[[ $TF_RC -eq 0 ]] || die "revoke: $TF_ERR"
wait "$reader" || true
result=$(cat "$WORK/out/cut")
log "after revoke: $result (the whole stream: $full bytes)"
[[ $result == *"done=0"* ]] || die "the revoked session's stream ran to its end once the client read again ($result)"
tf log --json -n 5
expect_contains "$(jq -r '.[].error' <<<"$TF_OUT")" "cut: session 'cut'" "the row of the cut stream"
