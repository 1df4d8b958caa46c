#!/usr/bin/env bash
# Attack: an agent streams OpenAI chat completions with "stream_options":{"include_usage":false},
# so the upstream never reports usage; each stream was logged at no cost and the budget never
# moved (10 streams worth $3 each passed a $2 budget). Expected: tokfence forces include_usage to
# true (the agent still gets its stream, plus the usage chunk), charges the real usage, and the
# budget stops the rest. Also: while a budget applies, a body tokfence cannot parse is refused
# (fail closed) rather than forwarded for the upstream to interpret.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

# 3000 output tokens at $0.001: $3 per stream, more than the whole budget.
stream_without_usage() {
  BODY="$WORK/out/stream.b"
  CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 3000' \
    --data '{"model":"tf-test","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}' \
    "$PROXY_URL/openai/v1/chat/completions")
}
attack_loop "include_usage=false" stream_without_usage
expect_budget_held "$(log_rows /chat/completions)"
rows=$(log_rows /chat/completions)
expect_eq "$(jq '[.[] | select(.status == 200)][0].output_tokens' <<<"$rows")" 3000 "the real usage was counted"

# What the upstream got: include_usage forced to true, the rest of the body as sent.
sent=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path | endswith("/chat/completions"))][0].body')
expect_contains "$sent" '"stream_options":{"include_usage":true}' "include_usage forced"
expect_contains "$sent" '"messages":[{"role":"user","content":"hi"}]'

# The client's stream: its content, then the usage chunk in the official SDK shape, then [DONE].
tf_ok budget set openai 1000 daily
stream_without_usage
expect_eq "$CODE" 200
expect_contains "$(cat "$BODY")" '"choices":[],"usage":{"prompt_tokens"'
expect_eq "$(tail -c 200 "$BODY" | grep -c 'data: \[DONE\]')" 1 "the stream ends with [DONE]"

# Fail closed: a body that is not JSON (here: an array cut short) is refused while a budget applies.
BODY="$WORK/out/bad.b"
CODE=$(curl -sS --max-time 30 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
  --data '{"model":"tf-test","stream":true,"stream_options":{"include_usage":false},"messages":[}' \
  "$PROXY_URL/openai/v1/chat/completions")
expect_eq "$CODE" 400 "unparsable body"
expect_eq "$(jq -r .error.type "$BODY")" tokfence_budget_unreadable_body
