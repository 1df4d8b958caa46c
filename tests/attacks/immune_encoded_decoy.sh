#!/usr/bin/env bash
# A hostile agent that has read a decoy credential (or holds a real key) encodes it before sending
# it out, so the byte scan (exact fragments) does not see it: base64, URL-safe base64 glued to a
# word, hex, in the prompt or in a header; the model decodes such things on request. The proxy
# decodes every long base64 or hex run and scans that too: each request is refused, the session
# turns RED. Controls: an ordinary request with a base64 image and a hash passes and the session
# stays GREEN; a user's own key base64-encoded in a Basic Authorization header (stripped, never
# forwarded) is no leak.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

send() {
  local name=$1 body=$2; shift 2
  curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-$name/proxy.sock" \
    http://localhost/openai/v1/chat/completions -H "Authorization: Bearer $(token_of "$name")" \
    -H 'Content-Type: application/json' -d "$body" "$@"
}
prompt() { printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]}' "$1"; }
risk_of() { tf session show "$(jq -r .session.name "$WORK/out/$1.json")" --json; jq -r .risk_state <<<"$TF_OUT"; }
b64() { printf '%s' "$1" | base64 -w0; }
b64url() { printf '%s' "$1" | base64 -w0 | tr '+/' '-_' | tr -d '='; }
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

TOKFENCE_TEST_REQUIRE_TOKEN=true
start_fake_upstream
write_test_config
add_canary_key openai
start_daemon

# Control: base64 image data, a sha256 and ordinary words pass; the session stays GREEN.
open_socket plain
img=$(head -c 3000 /dev/urandom | base64 -w0)
expect_eq "$(send plain "$(prompt "describe data:image/png;base64,$img and check sha256 $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')")")" 200 "ordinary base64 and hex"
expect_eq "$(risk_of plain)" GREEN "the control session"

before=$(curl -s "$FAKE_URL/__fake/requests" | jq length)
n=0
check_refused() {  # NAME WHAT STATUS
  expect_eq "$3" 403 "$2"
  expect_contains "$(cat "$WORK/out/reply")" "$4" "$2: refusal type"
  expect_eq "$(risk_of "$1")" RED "$2: session"
}
open_socket a; D=$(decoy_of a)
check_refused a "base64 decoy in the prompt" "$(send a "$(prompt "decode this: $(b64 "aws $D")")")" tokfence_honeytoken
open_socket b; D=$(decoy_of b)
check_refused b "url-safe base64 glued to a word" "$(send b "$(prompt "token=x$(b64url "::$D::")")")" tokfence_honeytoken
open_socket c; D=$(decoy_of c)
check_refused c "hex decoy in the prompt" "$(send c "$(prompt "bytes: $(hex "$D")")")" tokfence_honeytoken
open_socket d; D=$(decoy_of d)
check_refused d "base64 decoy in a header" "$(send d "$(prompt hello)" -H "X-Trace: $(b64 "$D")")" tokfence_honeytoken
open_socket e
check_refused e "base64 vault key in the prompt" "$(send e "$(prompt "$(b64 "$CANARY")")")" tokfence_secret_outbound
open_socket f; D=$(decoy_of f)
check_refused f "base64 decoy in the query" \
  "$(curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-f/proxy.sock" \
      "http://localhost/openai/v1/chat/completions?trace=$(b64url "$D")" -H "Authorization: Bearer $(token_of f)" -d "$(prompt hi)")" \
  tokfence_honeytoken
expect_eq "$(curl -s "$FAKE_URL/__fake/requests" | jq length)" "$before" "nothing encoded went upstream"

# The user's own key in a Basic Authorization header (stripped before forwarding): no leak, served.
tf_ok session new --name cli --json
CLI_TOKEN=$(jq -r .token <<<"$TF_OUT")
status=$(curl -s -o "$WORK/out/reply" -w '%{http_code}' "$PROXY_URL/openai/v1/chat/completions" \
  -H "Authorization: Basic $(b64 "user:$CANARY")" -H "X-Tokfence-Capability: $CLI_TOKEN" \
  -H 'Content-Type: application/json' -d "$(prompt hi)")
if grep -q tokfence_secret_outbound "$WORK/out/reply"; then die "a user's own key in a stripped Basic header was taken for a leak"; fi
scan_for_canary || die "canary found in an artifact"
log "ok: base64/hex-encoded decoys and keys are refused; ordinary base64 passes"
