#!/usr/bin/env bash
# Escape class: path-based Unix sockets on the host, from `tokfence run`. Landlock does not
# mediate connect() on them, and a mount view hides only the sockets someone listed: a socket
# under /var/tmp or $HOME (an agent, a database, a language server) was reachable from inside.
# Now the agent's seccomp filter refuses AF_UNIX sockets, and io_uring (which creates sockets
# without the socket syscall); `--allow-socket PATH` reaches exactly that socket, every other one
# existing at the start being covered by a mount.
#
# The scan takes every path socket on the host at test time (/proc/net/unix) plus the test's own
# under /var/tmp and $HOME; only sockets the principal can connect to outside prove anything.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"

VARTMP_DIR=$(mktemp -d /var/tmp/tokfence-attack-XXXXXX)
chmod 755 "$VARTMP_DIR"
EXTRA_CLEANUP="rm -rf '$VARTMP_DIR'"

# A listener that accepts (and drops) connections for at most 10 minutes; mode 0666 so the
# unprivileged principal can connect outside.
listen_unix() {
  python3 -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(64); s.settimeout(5)
end = time.time() + 600
while time.time() < end:
    try:
        c, _ = s.accept(); c.close()
    except socket.timeout:
        pass
' "$1" &
  _pids_to_kill+=($!)
  wait_until "test -S '$1'"
}

# Every path socket the principal can connect to outside, at most 400, one per line.
reachable_host_sockets() {
  python3 -c '
import sys
seen = []
with open("/proc/net/unix") as f:
    next(f)
    for line in f:
        parts = line.rstrip("\n").split(None, 7)
        if len(parts) == 8 and parts[7].startswith("/") and parts[7] not in seen:
            seen.append(parts[7])
print("\n".join(seen[:400]))
' | while IFS= read -r s; do
    [[ -S "$s" ]] || continue
    # A socket this principal may not use (another user's, e.g. a rootless Podman service running
    # beside) is simply not listed: with `&&` here, such a socket coming last made the loop, and
    # so the test, fail under set -e.
    if as_principal "$PROBE" connect-unix "$s" >/dev/null 2>&1; then printf '%s\n' "$s"; fi
  done
}

# Connects to every socket in $P_PROJECT/sockets.txt from inside; sets RC OUT ERR.
scan_inside() {
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" "$@" -- -c \
    'while IFS= read -r s; do "$0" connect-unix "$s"; done <sockets.txt; true' "$PROBE"
}

attack() {
  principal_setup "$1"
  local vt="$VARTMP_DIR/$P_MODE.sock" home_sock="$P_HOME/agent.sock"
  listen_unix "$vt"
  listen_unix "$home_sock"

  log "[$P_MODE] unprotected: --no-sandbox reaches the sockets under /var/tmp and \$HOME"
  for s in "$vt" "$home_sock"; do
    ptf run codex --no-sandbox --command "$PROBE" --workdir "$P_PROJECT" -- connect-unix "$s"
    expect_eq "$RC" 0 "control: --no-sandbox connect to $s: $OUT $ERR"
  done

  log "[$P_MODE] sandboxed: no path socket on the host is connectable"
  reachable_host_sockets >"$P_PROJECT/sockets.txt"
  printf '%s\n' "$vt" "$home_sock" >>"$P_PROJECT/sockets.txt"
  sort -u -o "$P_PROJECT/sockets.txt" "$P_PROJECT/sockets.txt"
  [[ $P_MODE == user ]] && chown "$USER_ID" "$P_PROJECT/sockets.txt"
  local total
  total=$(wc -l <"$P_PROJECT/sockets.txt")
  ((total >= 2)) || die "scan found no socket"
  scan_inside
  expect_eq "$(grep -c '^fail: connect-unix' <<<"$OUT")" "$total" "every socket refused ($total): $OUT $ERR"
  expect_not_contains "$OUT" "ok: connect-unix" "a host socket was reachable from the sandbox"
  log "[$P_MODE] $total host sockets, none reachable"

  log "[$P_MODE] the seccomp rules behind it: AF_UNIX and io_uring refused, the rest works"
  prun -- socket unix
  expect_eq "$RC" 1 "socket(AF_UNIX) inside"
  expect_contains "$OUT" "Permission denied"
  prun -- io-uring
  expect_eq "$RC" 1 "io_uring_setup inside"
  expect_contains "$OUT" "Function not implemented"
  prun -- socket packet
  expect_eq "$RC" 1 "socket(AF_PACKET) inside"
  prun -- socket vsock
  expect_eq "$RC" 1 "socket(AF_VSOCK) inside"
  prun -- socketpair
  expect_eq "$RC" 0 "socketpair(AF_UNIX) must keep working: $OUT"
  prun -- socket netlink route
  expect_eq "$RC" 0 "netlink route (getifaddrs) must keep working: $OUT"
  prun_get_keyed "$P_URL/openai/v1/models"
  expect_eq "$RC" 0 "the proxy stays reachable: $OUT $ERR"

  log "[$P_MODE] --allow-socket: exactly that socket, every other one still refused"
  scan_inside --allow-socket "$vt"
  expect_eq "$RC" 0 "scan with --allow-socket: $ERR"
  expect_contains "$ERR" "warning: --allow-socket"
  expect_eq "$(grep -c '^ok: connect-unix' <<<"$OUT")" "1" "sockets reachable with --allow-socket $vt: $OUT"
  expect_contains "$OUT" "ok: connect-unix $vt"
  expect_eq "$(grep -c '^fail: connect-unix' <<<"$OUT")" "$((total - 1))" "others refused: $OUT"

  log "[$P_MODE] --allow-socket input is checked"
  prun --allow-socket "$P_BASE/nope.sock" -- env
  expect_eq "$RC" 1 "missing socket"
  expect_contains "$ERR" "tokfence: error: --allow-socket: path does not exist"
  prun --allow-socket "$P_PROJECT/sockets.txt" -- env
  expect_contains "$ERR" "tokfence: error: --allow-socket: not a socket"
  prun --allow-socket "$P_TFHOME/control.sock" -- env
  expect_eq "$RC" 1 "control socket allowed"
  expect_contains "$ERR" "tokfence: error: --allow-socket: inside the tokfence home"
}

for_each_principal attack
