#!/usr/bin/env bash
# Escape class: `[daemon] socket_path` in a directory tokfence does not own. The daemon used to force
# the socket's parent directory to mode 0700 whatever it was: as root, `socket_path = "/tmp/x.sock"`
# locked every other user out of /tmp (and /run); and a socket in a directory others can write can be
# replaced or squatted by them. Now: a missing directory is created 0700 (tokfence made it); an existing
# one is never chmodded, and is refused, with the path and the fix, unless it and its ancestors are
# owned by root or us and it is writable by nobody else.
#
# Order matters: the stand-in for /tmp (a 1777 directory of another uid) comes first, so that running
# this against a daemon that still chmods stops before /tmp itself is tried.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
cp "$TOKFENCE_HOME/config.toml" "$WORK/config.base"
chmod 755 "$WORK"

with_socket_path() {
  cp "$WORK/config.base" "$TOKFENCE_HOME/config.toml"
  sed -i "s|^\[daemon\]$|[daemon]\nsocket_path = \"$1\"|" "$TOKFENCE_HOME/config.toml"
  grep -q "socket_path = \"$1\"" "$TOKFENCE_HOME/config.toml" || die "config not rewritten"
}
refused() { # dir, expected text
  local dir=$1 text=$2 before after
  before=$(stat -c '%a %u %g' "$dir")
  with_socket_path "$dir/tokfence.sock"
  tf start -d
  after=$(stat -c '%a %u %g' "$dir")
  stop_daemon
  expect_eq "$after" "$before" "mode/owner of $dir changed by the daemon"
  [[ $TF_RC -ne 0 ]] || die "socket_path in $dir was accepted"
  expect_contains "$TF_ERR" "socket_path"
  expect_contains "$TF_ERR" "$text"
  [[ ! -e $dir/tokfence.sock ]] || die "a socket was created in $dir"
}

if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  log "a sticky world-writable directory of another uid (stand-in for /tmp): refused, mode unchanged"
  mkdir -p "$WORK/othertmp"
  chown 65534:65534 "$WORK/othertmp"
  chmod 1777 "$WORK/othertmp"
  refused "$WORK/othertmp" "owned by uid 65534"
  log "a directory of another uid (made by it with setpriv), mode 0755: refused"
  install -d -m 755 -o 65534 -g 65534 "$WORK/otherhome"
  setpriv --reuid 65534 --regid 65534 --clear-groups mkdir -m 755 "$WORK/otherhome/otherdir"
  refused "$WORK/otherhome/otherdir" "owned by uid 65534"
  log "root's /tmp: refused, /tmp mode unchanged"
  refused /tmp "writable by other users"
  expect_eq "$(stat -c %a /tmp)" 1777 "/tmp mode"
else
  log "not root: the other-uid and /tmp cases are skipped"
fi

log "our own group-writable directory: refused, mode unchanged"
mkdir -p "$WORK/groupw"
chmod 775 "$WORK/groupw"
refused "$WORK/groupw" "writable by other users"

log "our own 0755 directory: accepted and NOT chmodded"
mkdir -p "$WORK/mine"
chmod 755 "$WORK/mine"
with_socket_path "$WORK/mine/tokfence.sock"
start_daemon
expect_eq "$(stat -c %a "$WORK/mine")" 755 "an existing directory was chmodded"
[[ -S $WORK/mine/tokfence.sock ]] || die "no socket in $WORK/mine"
reply=$(curl -sS -m 10 --unix-socket "$WORK/mine/tokfence.sock" http://localhost/__tokfence/health 2>&1 || true)
expect_contains "$reply" "status" "socket not answering"
stop_daemon

log "a missing directory: created 0700 by tokfence"
with_socket_path "$WORK/made/by/tokfence/tokfence.sock"
start_daemon
expect_eq "$(stat -c %a "$WORK/made/by/tokfence")" 700 "created directory mode"
[[ -S $WORK/made/by/tokfence/tokfence.sock ]] || die "no socket in the created directory"
stop_daemon
