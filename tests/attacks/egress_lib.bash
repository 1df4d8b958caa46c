# Shared set-up for the egress attack tests (tests/attacks/egress_*.sh; docs/EGRESS.md).
# Source after nothing else:  source "$(dirname "$0")/egress_lib.bash"
#
# egress_setup POLICY_JSON [CONFIG LINES...] starts, all on 127.0.0.1 and nothing else:
#  - the fake provider API (model requests), an HTTPS fake (a throwaway certificate for
#    api.telegram.org, registry.npmjs.org, allowed.example, other.example) and a plain-HTTP fake;
#  - a daemon whose [egress.resolve] maps those names to the fakes (so no name is ever looked up
#    on a network), then opens the per-agent socket $AGENT_SOCKET (caller "codex") with POLICY_JSON
#    as its egress policy through the control socket, as `tokfence run` does;
#  - tokfence-relay from 127.0.0.1:$RELAY_PORT to that socket, as inside a sandbox: clients use
#    AGENT_PROXY=http://127.0.0.1:$RELAY_PORT as their HTTPS_PROXY.
source "$(dirname "$0")/../integration/lib.sh"
RELAY=${TOKFENCE_RELAY_BIN:?run through ctest}
[[ -x "$RELAY" ]] || die "tokfence-relay not built: $RELAY"
PY=/usr/bin/python3
[[ -x $PY ]] || skip "python3 is needed"
command -v openssl >/dev/null || skip "openssl is needed"
FAKE_SERVER="$(dirname "$0")/egress_fake_server.py"

# start_destination NAME [--cert C --key K]: sets <NAME>_PORT.
start_destination() {
  local name=$1
  shift
  local port_file="$WORK/$name.port"
  $PY "$FAKE_SERVER" --port-file "$port_file" --log "$WORK/$name.requests" "$@" >"$WORK/$name.log" 2>&1 &
  _pids_to_kill+=($!)
  touch "$WORK/$name.requests"
  wait_until "test -s '$port_file'"
  printf -v "${name}_PORT" '%s' "$(cat "$port_file")"
}

# A free loopback port (for a daemon port the config must know in advance).
free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

egress_setup() {
  local policy=$1
  shift
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=tokfence-egress-test \
    -addext "subjectAltName=DNS:api.telegram.org,DNS:registry.npmjs.org,DNS:allowed.example,DNS:other.example" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl could not make a certificate"
  start_fake_upstream
  start_destination TLS --cert "$WORK/cert.pem" --key "$WORK/key.pem"
  start_destination PLAIN
  DAEMON_PORT=${DAEMON_PORT:-$(free_port)}
  write_test_config \
    "[egress.resolve]" \
    "\"api.telegram.org\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"registry.npmjs.org\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"allowed.example\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"other.example\" = \"127.0.0.1:$TLS_PORT\"" \
    "\"plain.example\" = \"127.0.0.1:$PLAIN_PORT\"" \
    "$@"
  sed -i "s/^port = 0$/port = $DAEMON_PORT/" "$TOKFENCE_HOME/config.toml"
  add_canary_key openai
  start_daemon
  mkdir -p "$WORK/run"
  AGENT_SOCKET="$WORK/run/agent.sock"
  local reply
  # EGRESS_SESSION=1: the socket gets an ImmuneFence session, as run and launch open theirs; the
  # reply (token, decoys) is kept in $WORK/agent-open.json.
  local session=""
  [[ -n ${EGRESS_SESSION:-} ]] && session=',"session":{"kind":"run","decoys":true}'
  reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$AGENT_SOCKET\",\"caller\":\"codex\",\"mode\":384,\"egress\":$policy$session}")
  [[ $(jq -r .ok <<<"$reply") == true ]] || die "open_proxy_socket: $(jq -c 'del(.session.token)' <<<"$reply")"
  printf '%s' "$reply" >"$WORK/agent-open.json"
  "$RELAY" --forward "tcp:127.0.0.1:0=unix:$AGENT_SOCKET" --ready-file "$WORK/relay.ready" >"$WORK/relay.log" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -s '$WORK/relay.ready'"
  RELAY_PORT=$(sed -E 's/^tcp:127\.0\.0\.1:([0-9]+)=.*/\1/' "$WORK/relay.ready")
  AGENT_PROXY="http://127.0.0.1:$RELAY_PORT"
}

# through URL [curl args...]: one request through the agent's proxy, as a client honouring
# HTTPS_PROXY does. Sets CODE (the final status, 000 when none), CONNECT_CODE (the proxy's answer
# to CONNECT, 000 for plain http), OUT (body) and HDR (header file, CONNECT's headers included).
n_through=0
through() {
  local url=$1
  shift
  n_through=$((n_through + 1))
  HDR="$WORK/out/through$n_through.h"
  set +e
  OUT=$(curl -sS --max-time 20 --proxy "$AGENT_PROXY" --cacert "$WORK/cert.pem" -D "$HDR" -o - -w '\n%{http_connect} %{http_code}' "$@" "$url" 2>"$WORK/out/through$n_through.err")
  set -e
  CONNECT_CODE=$(tail -1 <<<"$OUT" | cut -d' ' -f1)
  CODE=$(tail -1 <<<"$OUT" | cut -d' ' -f2)
  OUT=$(sed '$d' <<<"$OUT")
}

# The X-Tokfence-Egress header in $HDR ("" when none).
egress_header() { grep -i '^x-tokfence-egress:' "$HDR" | tail -1 | tr -d '\r' | awk '{print $2}'; }

# The egress log as `tokfence log --egress --json` prints it (the daemon flushes first).
egress_rows() {
  tf_ok log --egress --json -n 1000
  printf '%s' "$TF_OUT"
}

# raw_connect AUTHORITY PAYLOAD: a CONNECT through the relay by hand, then PAYLOAD (\r\n escapes)
# into the tunnel; prints everything the proxy sent back (the 200 and what followed).
raw_connect() {
  $PY - "$RELAY_PORT" "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(f"CONNECT {sys.argv[2]} HTTP/1.1\r\nHost: {sys.argv[2]}\r\n\r\n".encode())
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
if sys.argv[3] and data.startswith(b"HTTP/1.1 200"):
    try:
        s.sendall(sys.argv[3].encode().decode("unicode_escape").encode("latin-1"))
    except OSError:
        pass
while True:
    try:
        chunk = s.recv(65536)
    except (socket.timeout, OSError):
        break
    if not chunk:
        break
    data += chunk
print(data.decode("latin-1"))
PY
}

# as_agent AUTHORITY REQUEST_BYTES (backslash escapes, as printf %b reads them): the hostile agent's raw request inside an
# inspected tunnel (inspect_agent.py), trusting the daemon's local CA. Sets REPLY (everything it
# read, NULs dropped), STATUS (the first line) and EGRESS (X-Tokfence-Egress, "" when none).
n_agent=0
as_agent() {
  n_agent=$((n_agent + 1))
  printf '%b' "$2" >"$WORK/out/agent$n_agent.req"
  REPLY=$($PY "$(dirname "${BASH_SOURCE[0]}")/inspect_agent.py" "$RELAY_PORT" "$TOKFENCE_HOME/egress-ca.pem" "$1" \
    "$WORK/out/agent$n_agent.req" | tr -d '\0')
  STATUS=$(head -1 <<<"$REPLY" | tr -d '\r')
  EGRESS=$(grep -i '^x-tokfence-egress:' <<<"$REPLY" | head -1 | tr -d '\r' | awk '{print $2}' || true)
}

# bind_secret NAME HOST [vault add options, e.g. --in path]: a random secret bound to HOST, loaded
# by the daemon; sets BOUND (its value).
bind_secret() {
  BOUND="bnd$(random_token 30)"
  tf_in "$BOUND" vault add "$1" - --host "$2" "${@:3}"
  [[ $TF_RC -eq 0 ]] || die "vault add $1 --host $2 ${*:3}: $TF_ERR"
  wait_until "grep -q 'bound secret' '$TOKFENCE_HOME/daemon.log'" 20
}
