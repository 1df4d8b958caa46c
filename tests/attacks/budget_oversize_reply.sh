#!/usr/bin/env bash
# Attack: an agent asks for a reply so long that its JSON passes the 8 MiB the usage reader keeps;
# the usage (at the end of the JSON) was never read, the request was logged at no cost, and 10 such
# requests passed a $2 budget. The estimate that was charged instead is no upper bound (review 15a
# M1: n choices with logprobs pass 8 MiB, each may run to max_tokens). Expected: the usage is read
# from the end of the reply (cost_source "usage") and the budget stops the rest.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/budget_common.bash"

budget_setup

WORD=$(printf 'x%.0s' $(seq 1 99))  # 100 words of 100 bytes per KB: 100000 words are ~10 MB
oversize_reply() {
  BODY="$WORK/out/reply.b"
  CODE=$(curl -sS --max-time 60 -o "$BODY" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-fake-chunks: 100000' -H "x-fake-text: $WORD" \
    --data '{"model":"tf-test","messages":[{"role":"user","content":"hi"}]}' \
    "$PROXY_URL/openai/v1/chat/completions")
  if [[ $CODE == 200 ]]; then
    (($(stat -c %s "$BODY") > 8 * 1024 * 1024)) || die "the reply is not over 8 MiB"
  fi
}
attack_loop "oversize reply" oversize_reply
rows=$(log_rows /chat/completions)
expect_budget_held "$rows"
expect_eq "$(jq -r '[.[] | select(.status == 200)][0].cost_source' <<<"$rows")" usage
