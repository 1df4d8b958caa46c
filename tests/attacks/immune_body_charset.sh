#!/usr/bin/env bash
# Attack (review 12b F6): JSON upstreams written in Python (json.loads on bytes: FastAPI/Starlette,
# hence vLLM, LiteLLM, SGLang) read a UTF-8 byte-order mark and UTF-16/UTF-32 bodies (the encoding
# found from the NUL pattern); tokfence's secret scan, model read and include_usage forcing read
# bytes. Before: a UTF-16LE body with a decoy was forwarded (200), the upstream read the decoy, the
# session stayed GREEN; a BOM before a streaming chat request went out without
# stream_options.include_usage (the stream ended without usage: charged an estimate). Expected: a
# JSON body (a metered endpoint's, or one whose Content-Type says JSON or is absent) that starts
# with a byte-order mark or holds a NUL byte is refused with 400 tokfence_bad_request before
# anything goes upstream. Controls: the same stream request in plain UTF-8 is served with
# include_usage forced; a multipart upload holding NUL bytes is forwarded.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/immune_lib.bash"

agent_setup
send() {  # BODY_FILE [PATH], then extra curl arguments
  local file=$1 path=${2:-/v1/chat/completions}; shift; shift || true
  curl -s -o "$WORK/out/reply" -w '%{http_code}' --unix-socket "$WORK/sock-agent/proxy.sock" \
    "http://localhost/openai$path" -H "Authorization: Bearer $TOKEN" --data-binary @"$file" "$@"
}
requests() { curl -s "$FAKE_URL/__fake/requests" | jq length; }
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"creds: %s"}]}' "$DECOY" >"$WORK/decoy.json"
printf '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$WORK/stream.json"

before=$(requests)
refused() {  # WHAT BODY_FILE [PATH [curl arguments]]
  local what=$1; shift
  expect_eq "$(send "$@")" 400 "$what"
  expect_eq "$(jq -r .error.type "$WORK/out/reply")" tokfence_bad_request "$what: refusal type"
  log "refused: $what ($(jq -r .error.message "$WORK/out/reply"))"
}
iconv -f UTF-8 -t UTF-16LE "$WORK/decoy.json" >"$WORK/u16le.json"
iconv -f UTF-8 -t UTF-16BE "$WORK/decoy.json" >"$WORK/u16be.json"
iconv -f UTF-8 -t UTF-32LE "$WORK/decoy.json" >"$WORK/u32le.json"
iconv -f UTF-8 -t UTF-16 "$WORK/decoy.json" >"$WORK/u16bom.json"  # with its byte-order mark
{ printf '\xef\xbb\xbf'; cat "$WORK/stream.json"; } >"$WORK/bom.json"
{ printf '\xef\xbb\xbf'; cat "$WORK/decoy.json"; } >"$WORK/bomdecoy.json"
{ head -c 20 "$WORK/stream.json"; printf '\0'; tail -c +21 "$WORK/stream.json"; } >"$WORK/nul.json"
refused "UTF-16LE with a decoy (the attack)" "$WORK/u16le.json" "" -H 'Content-Type: application/json'
refused "UTF-16BE with a decoy" "$WORK/u16be.json" "" -H 'Content-Type: application/json'
refused "UTF-32LE with a decoy" "$WORK/u32le.json" "" -H 'Content-Type: application/json'
refused "UTF-16 with its BOM" "$WORK/u16bom.json" "" -H 'Content-Type: application/json'
refused "UTF-8 BOM + stream:true (include_usage skipped)" "$WORK/bom.json" "" -H 'Content-Type: application/json'
refused "UTF-8 BOM with a decoy, Content-Type text/plain" "$WORK/bomdecoy.json" "" -H 'Content-Type: text/plain'
refused "a NUL byte in the body" "$WORK/nul.json" "" -H 'Content-Type: application/json'
refused "UTF-16LE to an unmetered endpoint, no Content-Type" "$WORK/u16le.json" /v1/embeddings -H 'Content-Type:'
expect_eq "$(requests)" "$before" "nothing went upstream"
tf session show "$(jq -r .session.name "$WORK/out/agent.json")" --json
expect_eq "$(jq -r .risk_state <<<"$TF_OUT")" GREEN "refused at the door"

# Control: the stream request in plain UTF-8 is served, include_usage forced on.
expect_eq "$(send "$WORK/stream.json" "" -H 'Content-Type: application/json')" 200 "plain UTF-8 stream"
sent=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path | endswith("/chat/completions"))][-1].body')
expect_contains "$sent" '"include_usage":true' "include_usage forced on the plain body"
# Control: a multipart upload (bytes of any value) is not taken for JSON.
{ printf -- '--tfb\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n\r\n'
  printf 'RIFF\0\0\0\0WAVE\r\n--tfb--\r\n'; } >"$WORK/upload.bin"
n=$(requests)
c=$(send "$WORK/upload.bin" /v1/audio/transcriptions -H 'Content-Type: multipart/form-data; boundary=tfb')
[[ $c != 400 ]] || die "multipart upload refused: $(cat "$WORK/out/reply")"
expect_eq "$(requests)" "$((n + 1))" "the multipart upload went upstream ($c)"
scan_for_canary || die "canary found in an artifact"
log "ok: bodies tokfence cannot read as the upstream would are refused before they go out"
