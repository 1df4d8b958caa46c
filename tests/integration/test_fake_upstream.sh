#!/usr/bin/env bash
# The fake upstream keeps the contract in tests/fake_upstream/README.md, which the proxy tests rely
# on: reply shapes, deterministic usage numbers, auth per provider, the request log, and faults.
source "$(dirname "$0")/lib.sh"

start_fake_upstream --require-key "$CANARY"
U=$FAKE_URL
post() { curl -sS --max-time 20 "$@"; }
BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"ping"}]}'
I=$((10 + ${#BODY} / 100))

# Refuses a non-loopback host.
set +e
"$FAKE_UPSTREAM_BIN" --host 0.0.0.0 --port 0 >"$WORK/out/host.txt" 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || die "fake_upstream accepted --host 0.0.0.0"
expect_contains "$(cat "$WORK/out/host.txt")" "only loopback"

# --- auth: each family wants its own header, and the 401 has the provider's shape -----------------
out=$(post "$U/v1/chat/completions" -H 'Authorization: Bearer wrong' -d "$BODY" -w ' %{http_code}')
expect_contains "$out" '"code":"invalid_api_key"'
expect_contains "$out" ' 401'
expect_not_contains "$out" wrong
out=$(post "$U/v1/messages" -H "Authorization: Bearer $CANARY" -d '{"model":"claude-sonnet-4-5"}' -w ' %{http_code}')
expect_contains "$out" '"authentication_error"'
expect_contains "$out" ' 401'
out=$(post "$U/v1beta/models/gemini-2.5-flash:generateContent" -H "x-api-key: $CANARY" -d '{}' -w ' %{http_code}')
expect_contains "$out" '"UNAUTHENTICATED"'
H_OPENAI=(-H "Authorization: Bearer $CANARY")
H_ANTHROPIC=(-H "x-api-key: $CANARY")
H_GEMINI=(-H "x-goog-api-key: $CANARY")
[[ $(curl -s -o /dev/null -w '%{http_code}' -I "$U/") == 200 ]] || die "HEAD / is not 200"
[[ $(curl -s -o /dev/null -w '%{http_code}' -I "$U/v1") == 200 ]] || die "HEAD /v1 is not 200"

# --- JSON replies and their usage ------------------------------------------------------------------
out=$(post "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-cache: 7' -H 'x-fake-chunks: 3' -d "$BODY")
expect_eq "$(jq -r .choices[0].message.content <<<"$out")" "pong pong pong"
expect_eq "$(jq -c '[.usage.prompt_tokens, .usage.prompt_tokens_details.cached_tokens, .usage.completion_tokens]' <<<"$out")" "[$((I + 7)),7,3]"
expect_eq "$(jq -r .model <<<"$out")" gpt-4o

out=$(post "$U/openai/v1/responses" "${H_OPENAI[@]}" -H 'x-fake-reasoning: 5' -d "$BODY")
expect_eq "$(jq -c '[.object, .usage.input_tokens, .usage.output_tokens, .usage.output_tokens_details.reasoning_tokens]' <<<"$out")" "[\"response\",$I,6,5]"

out=$(post "$U/v1/messages" "${H_ANTHROPIC[@]}" -H 'x-fake-cache: 4' -H 'x-fake-cache-write: 9' -d "$BODY")
expect_eq "$(jq -c '[.type, .usage.input_tokens, .usage.cache_read_input_tokens, .usage.cache_creation_input_tokens, .usage.output_tokens]' <<<"$out")" "[\"message\",$I,4,9,1]"

out=$(post "$U/v1beta/models/gemini-2.5-pro:generateContent" "${H_GEMINI[@]}" -H 'x-fake-cache: 2' -d '{}')
expect_eq "$(jq -c '[.modelVersion, .usageMetadata.promptTokenCount, .usageMetadata.cachedContentTokenCount, .usageMetadata.candidatesTokenCount]' <<<"$out")" '["gemini-2.5-pro",12,2,1]'
out=$(post "$U/v1beta/models/gemini-2.5-pro:generateContent?key=$CANARY" -d '{}' -w ' %{http_code}')
expect_contains "$out" ' 200'

out=$(post "$U/v1/models" "${H_OPENAI[@]}")
expect_eq "$(jq -r .object <<<"$out")" list

# --- streams --------------------------------------------------------------------------------------
SBODY='{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}'
out=$(post -N "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-chunks: 2' -d "$SBODY")
expect_contains "$out" 'data: [DONE]'
usage=$(sed -n 's/^data: //p' <<<"$out" | grep -v DONE | jq -c 'select(.usage != null) | [.usage.prompt_tokens, .usage.completion_tokens]')
expect_eq "$usage" "[$((10 + ${#SBODY} / 100)),2]"
out=$(post -N "$U/v1/chat/completions" "${H_OPENAI[@]}" -d '{"model":"gpt-4o","stream":true}')
expect_not_contains "$out" '"usage"' "a chat stream without include_usage must not carry usage"

out=$(post -N "$U/v1/responses" "${H_OPENAI[@]}" -d '{"model":"gpt-5","stream":true}')
expect_contains "$out" 'event: response.created'
expect_contains "$out" 'event: response.output_text.delta'
completed=$(sed -n 's/^data: //p' <<<"$out" | jq -c 'select(.type == "response.completed") | .response.usage.output_tokens')
expect_eq "$completed" 1

out=$(post -N "$U/v1/messages" "${H_ANTHROPIC[@]}" -H 'x-fake-chunks: 4' -d '{"model":"claude-haiku-4-5","stream":true}')
events=$(grep '^event:' <<<"$out" | awk '{print $2}' | uniq | tr '\n' ' ')
expect_eq "$events" "message_start content_block_start ping content_block_delta content_block_stop message_delta message_stop "
expect_eq "$(sed -n 's/^data: //p' <<<"$out" | jq -c 'select(.type == "message_delta") | .usage.output_tokens')" 4

out=$(post -N "$U/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse" "${H_GEMINI[@]}" -H 'x-fake-chunks: 3' -d '{}')
expect_contains "$out" $'\r\n\r\n'
expect_eq "$(tr -d '\r' <<<"$out" | sed -n 's/^data: //p' | jq -c '.usageMetadata.candidatesTokenCount' | tr '\n' ' ')" "1 2 3 "
out=$(post -N "$U/v1beta/models/gemini-2.5-flash:streamGenerateContent" "${H_GEMINI[@]}" -H 'x-fake-chunks: 2' -d '{}')
expect_eq "$(jq -c 'length' <<<"$out")" 2

# --- the request log ------------------------------------------------------------------------------
post -X DELETE "$U/__fake/requests" >/dev/null
post "$U/v1/chat/completions?x=1" "${H_OPENAI[@]}" -H 'X-Custom: yes' -d "$BODY" >/dev/null
rec=$(post "$U/__fake/requests")
expect_eq "$(jq -r 'length' <<<"$rec")" 1
expect_eq "$(jq -r '.[0] | [.method, .path, .query, .headers["x-custom"], .body] | join("|")' <<<"$rec")" "POST|/v1/chat/completions|x=1|yes|$BODY"
[[ $(jq -r '.[0].headers.authorization' <<<"$rec") == "Bearer $CANARY" ]] || die "the request log lacks the authorization header"

# --- faults ---------------------------------------------------------------------------------------
out=$(post "$U/v1/messages" "${H_ANTHROPIC[@]}" -H 'x-fake-status: 529' -d "$BODY" -w ' %{http_code}')
expect_contains "$out" '"overloaded_error"'
expect_contains "$out" ' 529'
out=$(post "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-status: 500' -d "$BODY" -w ' %{http_code}')
expect_contains "$out" '"server_error"'

post -X DELETE "$U/__fake/stats" >/dev/null
set +e
post -N "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-chunks: 5' -H 'x-fake-reset-after: 2' -d "$SBODY" >"$WORK/out/reset.txt" 2>&1
rc=$?
set -e
[[ $rc -ne 0 ]] || die "a reset stream ended cleanly"
expect_eq "$(grep -c '^data:' "$WORK/out/reset.txt")" 2
expect_eq "$(post "$U/__fake/stats" | jq .resets)" 1

# The first event arrives while the upstream is still streaming (it waits 10 s after it): no
# clock involved, the stream is seen open once the first event is in.
completed=$(post "$U/__fake/stats" | jq .streams_completed)
curl -sS -N --max-time 30 "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-chunks: 2' \
  -H 'x-fake-first-chunk-then-wait-ms: 10000' -d "$SBODY" >"$WORK/out/first.txt" 2>&1 &
reader=$!
wait_until "grep -q '^data:' '$WORK/out/first.txt'"
expect_eq "$(grep -c '^data:' "$WORK/out/first.txt")" 1
expect_eq "$(post "$U/__fake/stats" | jq .streams_completed)" "$completed"
kill "$reader" 2>/dev/null || true
wait "$reader" 2>/dev/null || true

# A client leaving a slow stream or a hang is counted.
curl -sS -N --max-time 1 "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-chunks: 50' -H 'x-fake-delay-ms: 200' -d "$SBODY" >/dev/null 2>&1 || true
wait_until "curl -fsS '$U/__fake/stats' | jq -e '.client_gone >= 1'"
curl -sS --max-time 1 "$U/v1/chat/completions" "${H_OPENAI[@]}" -H 'x-fake-hang: 1' -d "$BODY" >/dev/null 2>&1 || true
wait_until "curl -fsS '$U/__fake/stats' | jq -e '.client_gone >= 2 and .hangs == 1'"
# And it still serves.
out=$(post "$U/v1/chat/completions" "${H_OPENAI[@]}" -d "$BODY" -w ' %{http_code}')
expect_contains "$out" ' 200'
