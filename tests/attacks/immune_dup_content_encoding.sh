#!/usr/bin/env bash
# Attack (review 12b F1): a fenced agent hides a decoy (or a vault key) in a gzip request body and
# sends two Content-Encoding fields, "identity" first and "gzip" second; the upstream reads the
# list "identity, gzip" and inflates the body. Before: only the first field was checked, both were
# forwarded: 200, the upstream read the decoy, the scan had searched compressed bytes, the session
# stayed GREEN (and the body metered as noise). Expected: every Content-Encoding field is read
# (lists, any case, the Content_Encoding spelling), and a request with a coding other than
# identity, or with more than one field, is refused with 415 tokfence_encoded_body; nothing reaches
# the upstream. Control: a plain body with one "Content-Encoding: identity" is served.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

agent_setup
send() {  # BODY_FILE, then extra curl arguments
  local file=$1; shift
  curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-agent/proxy.sock" \
    http://localhost/openai/v1/chat/completions -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' --data-binary @"$file" "$@"
}
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}' >"$WORK/plain.json"
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"creds: %s"}]}' "$DECOY" | gzip -c >"$WORK/body.gz"

expect_eq "$(send "$WORK/plain.json" -H 'Content-Encoding: identity')" 200 "control: one identity field"
before=$(curl -s "$FAKE_URL/__fake/requests" | jq length)
refused() {  # WHAT, then the Content-Encoding fields as curl -H arguments (BODY: the body's file)
  local what=$1; shift
  expect_eq "$(send "${BODY:-$WORK/body.gz}" "$@")" 415 "$what"
  expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_encoded_body "$what: refusal type"
  log "refused: $what"
}
refused "one gzip field" -H 'Content-Encoding: gzip'
refused "identity, then gzip (the attack)" -H 'Content-Encoding: identity' -H 'Content-Encoding: gzip'
refused "gzip, then identity" -H 'Content-Encoding: gzip' -H 'Content-Encoding: identity'
refused "the list identity, gzip" -H 'Content-Encoding: identity, gzip'
refused "upper case" -H 'CONTENT-ENCODING: identity' -H 'content-encoding: GZIP'
refused "the Content_Encoding spelling" -H 'Content-Encoding: identity' -H 'Content_Encoding: gzip'
BODY=$WORK/plain.json refused "two identity fields (even on a plain body)" -H 'Content-Encoding: identity' -H 'Content-Encoding: identity'
expect_eq "$(curl -s "$FAKE_URL/__fake/requests" | jq length)" "$before" "nothing encoded went upstream"
tf session show "$(jq -r .session.name "$WORK/out/agent.json")" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" GREEN "refused at the door, not a detection"
scan_for_canary || die "canary found in an artifact"
log "ok: a second Content-Encoding field no longer slips a gzip body past the scan"
