#!/usr/bin/env bash
# Escape class: another local user reaches a launch's OpenClaw gateway through the dashboard relay
# (review 12b F4). `tokfence launch` starts tokfence-relay on 127.0.0.1:<port> -> the container's
# ui.sock -> the gateway on the container's loopback, which takes every client for a loopback one.
# Before: the relay accepted every local uid (the proxy and the web dashboard refuse other uids at
# accept; the relay did not), so any local user reached the gateway, with only OpenClaw's own token
# in the way (and with a command after `--` and `--port`, nothing at all). Expected now: launch
# passes --own-uid-only, the relay looks up the client socket's owner (NETLINK_SOCK_DIAG) and
# answers another uid 403 before connecting to ui.sock; the user's own requests are relayed.
#
# Unprotected set-up first: a relay on the same ui.sock started without the check (as launch did)
# DOES serve the other uid.
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root to act as another uid (setpriv)"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfuo-$RUN_ID"
# A failed check must not leave the detached launch's host relay running.
EXTRA_CLEANUP="'$TOKFENCE_BIN' launch stop --name '$name' >/dev/null 2>&1; $EXTRA_CLEANUP"
other=1000  # any uid but ours; no account needed

launch_ui_stub "$name"

# curl as uid $other (no groups) to 127.0.0.1:$1; prints the body or "failed".
as_other() {
  (cd / && setpriv --reuid="$other" --regid="$other" --clear-groups \
    curl -sS -m 5 -w ' status=%{http_code}' "http://127.0.0.1:$1/" </dev/null 2>&1 || true)
}

# --- unprotected: the relay the old way (no peer check) on the same ui.sock
exec {ui_fd}<"$(launch_ui_dir "$name")"
"$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unixat:$ui_fd/ui.sock@$cuid" --ready-file "$WORK/old.ready" \
  >"$WORK/old-relay.log" 2>&1 &
_pids_to_kill+=($!)
exec {ui_fd}<&-
wait_until "test -s '$WORK/old.ready'"
old_port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$WORK/old.ready")
out=$(as_other "$old_port")
log "unprotected relay, uid $other: $out"
expect_contains "$out" "hello-ui" "unprotected set-up: uid $other reaches the gateway"

# --- launch's dashboard relay
out=$(as_other "$port")
log "launch's dashboard relay, uid $other: $out"
expect_not_contains "$out" "hello-ui" "uid $other through the launch's dashboard port"
expect_contains "$out" "status=403" "uid $other is answered 403"
wait_until "grep -q 'refused: connection from uid $other: only uid $(id -u) may connect' '$relay_log'"
expect_contains "$(curl -sS -m 5 "http://127.0.0.1:$port/")" "hello-ui" "the user's own request"
expect_contains "$(curl -sS -m 5 -H "Host: localhost:$port" "http://127.0.0.1:$port/")" "hello-ui" "Host localhost:port"

tf_ok launch stop --name "$name"
expect_nothing_left "$name"
