#!/usr/bin/env bash
# A hostile agent inside a launch/run fence reads the decoy credentials planted in its HOME and
# sends one out in a prompt (or a header); or it pastes a real vault key into a request. Without
# the sensors (the deliberately unprotected run below, [immunefence] sensors = []) the decoy goes
# upstream and the session carries on. With them: the request is refused before anything is
# forwarded, the session turns RED, and its next request, an innocent one, is refused too until
# `tokfence session reset`. The token of one socket's session does not work on another's.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

# send NAME TOKEN BODY [curl args] -> status; reply in $WORK/out/reply
send() {
  local name=$1 token=$2 body=$3; shift 3
  curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-$name/proxy.sock" \
    http://localhost/openai/v1/chat/completions -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$body" "$@"
}
prompt() { printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$1"; }
upstream_count() { curl -s "$FAKE_URL/__fake/requests" | jq length; }

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
write_test_config
sed -i 's/^require_token = true$/require_token = true\nsensors = []/' "$TOKFENCE_HOME/config.toml"
grep -qx 'sensors = \[\]' "$TOKFENCE_HOME/config.toml" || die "config: sensors line not written"
add_canary_key openai

# 1. Unprotected (sensors off): the stolen decoy leaves, the session stays usable.
start_daemon
open_socket weak
DECOY=$(decoy_of weak)
[[ ${#DECOY} -ge 20 ]] || die "no decoy values in the reply"
expect_eq "$(send weak "$(token_of weak)" "$(prompt "found creds: $DECOY")")" 200 "unprotected: decoy sent: $(cat "$WORK/out/reply")"
curl -s "$FAKE_URL/__fake/requests" | grep -qF -- "$DECOY" || die "unprotected run: the decoy did not reach the upstream (the test could not fail)"
stop_daemon
sed -i '/^sensors = \[\]$/d' "$TOKFENCE_HOME/config.toml"

# 2. Protected.
start_daemon
before=$(upstream_count)
open_socket agent
open_socket neighbour
TOKEN=$(token_of agent)
DECOY=$(decoy_of agent)
expect_eq "$(send agent "$TOKEN" "$(prompt "hello")")" 200 "a normal request"
expect_eq "$(send neighbour "$TOKEN" "$(prompt "hello")")" 403 "token of another socket's session"
expect_contains "$(cat "$WORK/out/reply")" tokfence_capability
expect_eq "$(send agent "" "$(prompt "hello")")" 403 "no token on a bound socket"
expect_eq "$(send agent tokfence-managed "$(prompt "hello")")" 403 "dummy key on a bound socket"

expect_eq "$(send agent "$TOKEN" "$(prompt "here are the keys I found: $DECOY")")" 403 "decoy in a prompt"
expect_contains "$(cat "$WORK/out/reply")" tokfence_honeytoken
expect_not_contains "$(cat "$WORK/out/reply")" "$DECOY" "the refusal quotes the decoy"
expect_eq "$(send agent "$TOKEN" "$(prompt "hello again")")" 403 "the next, innocent request"
expect_contains "$(cat "$WORK/out/reply")" tokfence_risk_red
curl -s "$FAKE_URL/__fake/requests" | grep -qF -- "$DECOY" && die "the decoy reached the upstream"
expect_eq "$(upstream_count)" "$((before + 1))" "only the normal request went upstream"
name=$(jq -r .session.name "$WORK/out/agent.json")
tf session show "$name" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" RED
expect_eq "$(jq -r '.transitions[-1].sensor' <<<"$TF_OUT")" honeytoken
# The neighbour's decoy in a header of the neighbour's own session: RED too (any header counts).
N_DECOY=$(jq -r '.session.decoys.values[-1]' "$WORK/out/neighbour.json")
expect_eq "$(send neighbour "$(token_of neighbour)" "$(prompt "hi")" -H "X-Debug: $N_DECOY")" 403 "decoy in a header"
tf widget render --json
expect_eq "$(jq -r --arg n "$name" '.immunefence_sessions[] | select(.name == $n) | .risk_state' <<<"$TF_OUT")" RED "snapshot"
expect_contains "$(jq -r '.warnings[]' <<<"$TF_OUT")" "immunefence: session $name is RED"
tf session reset "$name"
[[ $TF_RC -eq 0 ]] || die "reset: $TF_ERR"
expect_eq "$(send agent "$TOKEN" "$(prompt "hello")")" 200 "after reset the bound token works again"

# A decoy planted only as a variable (GH_TOKEN) is what a harmless `env` dump in a tool's output
# carries: forwarded, session YELLOW. Put in front of a file decoy it must not hide that one.
open_socket printer
P_TOKEN=$(token_of printer)
ENV_DECOY=$(jq -r '.session.decoys.env.GH_TOKEN' "$WORK/out/printer.json")
[[ $ENV_DECOY == ghp_* ]] || die "no GH_TOKEN decoy variable"
expect_eq "$(send printer "$P_TOKEN" "$(prompt "env output: GH_TOKEN=$ENV_DECOY HOME=/home/agent")")" 200 "env dump"
p_name=$(jq -r .session.name "$WORK/out/printer.json")
tf session show "$p_name" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" YELLOW "after an env dump"
expect_eq "$(jq -r '.transitions[-1].sensor' <<<"$TF_OUT")" decoy_env
P_FILE_DECOY=$(jq -r '.session.decoys.values[0]' "$WORK/out/printer.json")
expect_eq "$(send printer "$P_TOKEN" "$(prompt "GH_TOKEN=$ENV_DECOY and aws $P_FILE_DECOY")")" 403 "env decoy before a file decoy"
tf session show "$p_name" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" RED "the file decoy behind the env one"

# Cheap disguises of a stolen decoy: in a header's name, \u-escaped in JSON, %-encoded in the
# query, gzip-compressed. Each on a fresh socket, each refused (the compressed one for being
# compressed: the scanner reads bytes, not codings).
open_socket probe_h; D=$(decoy_of probe_h)
expect_eq "$(send probe_h "$(token_of probe_h)" "$(prompt hello)" -H "$D: 1")" 403 "decoy as a header name"
open_socket probe_u; D=$(decoy_of probe_u)
escaped=$(python3 -c 'import sys; print("".join("\\u%04x" % ord(c) if i % 3 == 0 else c for i, c in enumerate(sys.argv[1])))' "$D")
expect_eq "$(send probe_u "$(token_of probe_u)" "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"$escaped\"}]}")" 403 "\\u-escaped decoy"
open_socket probe_q; D=$(decoy_of probe_q)
pct=$(python3 -c 'import sys; print("".join("%%%02X" % ord(c) for c in sys.argv[1]))' "$D")
status=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$WORK/sock-probe_q/proxy.sock" \
  "http://localhost/openai/v1/chat/completions?note=$pct" -H "Authorization: Bearer $(token_of probe_q)" -d "$(prompt hello)")
expect_eq "$status" 403 "%-encoded decoy in the query"
open_socket probe_z
printf '%s' "$(prompt hello)" | gzip >"$WORK/body.gz"
status=$(curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-probe_z/proxy.sock" \
  http://localhost/openai/v1/chat/completions -H "Authorization: Bearer $(token_of probe_z)" \
  -H 'Content-Encoding: gzip' -H 'Content-Type: application/json' --data-binary @"$WORK/body.gz")
expect_eq "$status" 415 "a compressed body"
expect_contains "$(cat "$WORK/out/reply")" tokfence_encoded_body
# A fenced agent's token does not open the main listener (it works on its own socket only).
status=$(curl -s -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
  -H "Authorization: Bearer $(token_of probe_z)" -d "$(prompt hello)")
expect_eq "$status" 403 "a run's token on the main listener"

# A real vault key in a request body: refused, RED, the key never forwarded nor logged.
expect_eq "$(send agent "$TOKEN" "$(prompt "use this key: $CANARY")")" 403 "vault key in a prompt"
expect_contains "$(cat "$WORK/out/reply")" tokfence_secret_outbound
expect_eq "$(send agent "$TOKEN" "$(prompt "hello")")" 403 "RED after the vault key"

# The daemon log and DB keep no decoy (an agent reading them must not learn which values are decoys).
tf_ok log --json -n 50 >/dev/null
if grep -qaF -- "$DECOY" "$TOKFENCE_HOME/daemon.log"; then die "decoy in the daemon log"; fi

# A detached launch's socket is persisted with its session: after the session is revoked, a
# daemon restart must not bring the socket back with no session's rules (fail closed); one whose
# session lives comes back bound to it.
mkdir -p "$WORK/sock-kept" "$WORK/sock-gone"
for s in kept gone; do
  ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/sock-$s/proxy.sock\",\"caller\":\"openclaw:$s\",\"mode\":384,\"persist\":true,\"session\":{\"kind\":\"launch\",\"decoys\":true}}" >"$WORK/out/$s.json"
  [[ $(jq -r .ok "$WORK/out/$s.json") == true ]] || die "open persisted $s"
done
tf_ok session revoke "$(jq -r .session.name "$WORK/out/gone.json")"
stop_daemon
start_daemon
[[ -S "$WORK/sock-kept/proxy.sock" ]] || die "the live session's persisted socket was not re-created"
[[ ! -e "$WORK/sock-gone/proxy.sock" ]] || die "a revoked session's socket came back after a restart"
expect_eq "$(send kept "$(token_of kept)" "$(prompt hello)")" 200 "the re-created socket with its session's token"
expect_eq "$(send kept tokfence-managed "$(prompt hello)")" 403 "the re-created socket without a token"
