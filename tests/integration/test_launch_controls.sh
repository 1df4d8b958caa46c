#!/usr/bin/env bash
# tokfence launch: revoke, kill and budgets apply to a launched container's requests like to any
# other, and the refusals are logged with the launch's caller; a detached launch's socket survives a
# daemon restart. One detached launch; requests are
# made inside it with `docker exec ... wget` against the relay's 127.0.0.1:9471.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfc-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach -- /bin/sleep 600
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"

# One chat request from inside the container; prints the reply or wget's error line. -Y off: not
# through the container's http_proxy (busybox wget would send the POST as a GET there).
chat() { container_chat "$name"; }

expect_contains "$(chat)" '"content":"pong"' "baseline request"

tf_ok revoke openai
expect_contains "$(chat)" "403 Forbidden" "revoked provider"
tf_ok restore openai
expect_contains "$(chat)" '"content":"pong"' "restored provider"

tf_ok kill
expect_contains "$(chat)" "503 Service Unavailable" "kill switch"
tf_ok unkill
expect_contains "$(chat)" '"content":"pong"' "after unkill"

# Three requests so far cost more than this budget: the next one is refused.
tf_ok budget set openai 0.000001 daily
expect_contains "$(chat)" "429 Too Many Requests" "over budget"
tf_ok budget clear openai
expect_contains "$(chat)" '"content":"pong"' "budget cleared"

tf_ok log --json -n 100
statuses=$(jq -r --arg c "openclaw:$name" '[.[] | select(.caller_name == $c) | .status] | join(",")' <<<"$TF_OUT")
expect_eq "$statuses" "200,403,200,503,200,429,200" "log rows of the launch's requests, in order"


# A detached launch's socket is persisted: after a daemon restart its requests go through again.
tf_ok stop
expect_contains "$(chat)" "wget: " "request while the daemon is down"
start_daemon
wait_until "test -S '$TOKFENCE_HOME/sockets/launch-$name/proxy/proxy.sock'"
expect_contains "$(chat)" '"content":"pong"' "after the daemon restarted"

tf_ok launch stop --name "$name"
expect_nothing_left "$name"
