#!/usr/bin/env bash
# The request log end to end, with the real daemon and the fake upstream: requests made through the
# proxy appear in `tokfence log` (tokens and cost from the upstream's usage), `log -f` shows a
# request made after it started, `stats` sums them, `log <id>` finds the X-Tokfence-Request-Id, and
# `tokfence env` points SDK variables at the running daemon's actual port.
source "$(dirname "$0")/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
add_canary_key anthropic
start_daemon

# A follower started before any request.
"$TOKFENCE_BIN" log -f --json >"$WORK/out/follow.jsonl" 2>"$WORK/out/follow.err" &
follower=$!
_pids_to_kill+=($follower)

# OpenAI chat, JSON: B = body bytes, input = 10 + B/100, output = chunks.
body='{"model":"gpt-4o","messages":[{"role":"user","content":"ping"}]}'
curl -sS --max-time 20 -D "$WORK/out/h1.txt" -o "$WORK/out/r1.json" \
  -H 'content-type: application/json' -H 'authorization: Bearer not-the-key' -H 'x-fake-chunks: 3' \
  --data "$body" "$PROXY_URL/openai/v1/chat/completions"
id1=$(tr -d '\r' <"$WORK/out/h1.txt" | awk -F': ' 'tolower($1) == "x-tokfence-request-id" {print $2}')
[[ $id1 =~ ^req_[0-9a-f]{16}$ ]] || die "no X-Tokfence-Request-Id in: $(cat "$WORK/out/h1.txt")"
wait_until "grep -q '$id1' '$WORK/out/follow.jsonl'" 30
row=$(grep "$id1" "$WORK/out/follow.jsonl")
expect_eq "$(jq -r .provider <<<"$row")" openai
expect_eq "$(jq -r .model <<<"$row")" gpt-4o
expect_eq "$(jq -r .status <<<"$row")" 200
expect_eq "$(jq -r .input_tokens <<<"$row")" $((10 + ${#body} / 100))
expect_eq "$(jq -r .output_tokens <<<"$row")" 3
[[ $(jq -r .cost_pico <<<"$row") =~ ^[1-9][0-9]*$ ]] || die "gpt-4o has a price, but the row has cost $(jq -r .cost_pico <<<"$row")"

# Anthropic, streamed, made after the follower started: it shows up live too.
abody='{"model":"claude-sonnet-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"ping"}]}'
curl -sS --max-time 20 -D "$WORK/out/h2.txt" -o "$WORK/out/r2.sse" \
  -H 'content-type: application/json' -H 'x-api-key: not-the-key' -H 'x-fake-chunks: 5' -H 'x-fake-cache: 40' \
  --data "$abody" "$PROXY_URL/anthropic/v1/messages"
id2=$(tr -d '\r' <"$WORK/out/h2.txt" | awk -F': ' 'tolower($1) == "x-tokfence-request-id" {print $2}')
wait_until "grep -q '$id2' '$WORK/out/follow.jsonl'" 30
row=$(grep "$id2" "$WORK/out/follow.jsonl")
expect_eq "$(jq -r .streaming <<<"$row")" true
expect_eq "$(jq -r .output_tokens <<<"$row")" 5
expect_eq "$(jq -r .cache_read_tokens <<<"$row")" 40
kill -INT $follower
rc=0
wait $follower || rc=$?
expect_eq "$rc" 0 "log -f exits 0 on SIGINT"
expect_eq "$(wc -l <"$WORK/out/follow.jsonl")" 2 "each request followed once"

# An unpriced model: cost unknown, never $0.
curl -sS --max-time 20 -o /dev/null -H 'content-type: application/json' \
  --data '{"model":"no-such-priced-model","messages":[]}' "$PROXY_URL/openai/v1/chat/completions"
wait_until "'$TOKFENCE_BIN' log --json | jq -e 'map(select(.model == \"no-such-priced-model\")) | length == 1'" 30

tf_ok log --json
expect_eq "$(jq length <<<"$TF_OUT")" 3
expect_eq "$(jq -r '.[] | select(.model == "no-such-priced-model") | .cost_pico' <<<"$TF_OUT")" null
tf_ok log "$id2" --json
expect_eq "$(jq -r .provider <<<"$TF_OUT")" anthropic
tf_ok log
expect_contains "$TF_OUT" "$id1"
expect_contains "$(grep no-such-priced-model <<<"$TF_OUT")" "unknown"

tf_ok stats --by provider --json
expect_eq "$(jq .total.requests <<<"$TF_OUT")" 3
expect_eq "$(jq .total.unknown_cost_requests <<<"$TF_OUT")" 1
expect_eq "$(jq '.groups[] | select(.provider == "openai") | .requests' <<<"$TF_OUT")" 2
expect_eq "$(jq '.groups[] | select(.provider == "anthropic") | .output_tokens' <<<"$TF_OUT")" 5

# env: the running daemon's actual port (the config says 0), and an SDK-style call with the
# dummy key goes through.
tf_ok env --shell bash
printf '%s\n' "$TF_OUT" >"$WORK/env.sh"
got=$(env -i PATH="$PATH" bash --norc -c "eval \"\$(cat '$WORK/env.sh')\"; printf '%s %s\n' \"\$OPENAI_BASE_URL\" \"\$OPENAI_API_KEY\"")
expect_eq "$got" "$PROXY_URL/openai/v1 tokfence-managed"
code=$(env -i PATH="$PATH" bash --norc -c "eval \"\$(cat '$WORK/env.sh')\"; curl -sS --max-time 20 -o /dev/null -w '%{http_code}' \
  -H \"authorization: Bearer \$OPENAI_API_KEY\" -H 'content-type: application/json' \
  --data '{\"model\":\"gpt-4o-mini\",\"messages\":[]}' \"\$OPENAI_BASE_URL/chat/completions\"")
expect_eq "$code" 200 "a request through the env's base URL"

# provider set with the daemon running: saved, and the daemon is asked to reload.
tf_ok provider set mistral "$FAKE_URL"
expect_contains "$TF_ERR" "the running daemon"

# Every row survives stop.
stop_daemon
tf_ok log --json -n 100
expect_eq "$(jq length <<<"$TF_OUT")" 4
