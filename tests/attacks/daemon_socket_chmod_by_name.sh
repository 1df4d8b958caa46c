#!/usr/bin/env bash
# Escape class: the daemon chmods a proxy socket by name in a directory another principal can write
# (a launch directory bind-mounted into a container, a shared socket directory). Whoever can write
# there swaps the fresh socket for a symlink between bind() and chmod(), and the daemon (the user, or
# root) chmods the link's target instead: any file becomes world-writable (mode 0666 asked by `run`).
# The daemon must never act by name there: it binds and chmods inside a private 0700 directory, then
# renames the finished socket into place (a link planted at the name is replaced, never followed).
#
# 1. a symlink planted at the socket name before open_proxy_socket: replaced, victim untouched;
# 2. a racer (another uid when we are root) that swaps every socket appearing at the name for a
#    symlink to the victim, against many open/close rounds: victim mode unchanged.
# Control: the same racer against a plain bind + chmod-by-name (python, the old daemon's steps) does
# change the victim's mode, so this test can see the damage.
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

# The other principal: uid 65534 when we are root, else ourselves in a world-writable directory.
OTHER=65534
chmod 755 "$WORK"
shared="$WORK/shared"
mkdir -p "$shared"
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  chown "$OTHER:$OTHER" "$shared"
  chmod 755 "$shared"
  as_other() { setpriv --reuid "$OTHER" --regid "$OTHER" --clear-groups "$@"; }
else
  chmod 777 "$shared"
  as_other() { "$@"; }
fi
victim="$WORK/victim"
printf 'victim\n' >"$victim"
chmod 600 "$victim"
expect_eq "$(stat -c %a "$victim")" 600

log "1. symlink planted at the socket name"
as_other ln -s "$victim" "$shared/planted.sock"
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$shared/planted.sock\",\"caller\":\"attack\",\"mode\":438}")
log "reply: $reply"
expect_eq "$(stat -c %a "$victim")" 600 "victim mode changed through a planted socket-name symlink"
if [[ $(jq -r .ok <<<"$reply") == true ]]; then
  [[ -S $shared/planted.sock && ! -L $shared/planted.sock ]] || die "opened, but the name is not our socket"
  expect_eq "$(stat -c %a "$shared/planted.sock")" 666 "socket mode"
  ctl "{\"op\":\"close_proxy_socket\",\"path\":\"$shared/planted.sock\"}" >/dev/null
fi
[[ -z $(find "$shared" -name '.tokfence-bind-*') ]] || die "private bind directory left behind"

# The racer: every time a socket shows up at the name, rename a symlink to the victim over it.
racer() {
  local seconds=$1
  as_other /usr/bin/python3 - "$shared/race.sock" "$victim" "$seconds" <<'PY' &
import os, stat, sys, time
path, victim, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
tmp = os.path.join(os.path.dirname(path), ".racer-link")
end = time.monotonic() + seconds
n = 0
while time.monotonic() < end:
    for _ in range(2000):
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                try:
                    os.symlink(victim, tmp)
                except FileExistsError:
                    pass
                os.rename(tmp, path)
                n += 1
        except OSError:
            pass
print(f"racer swapped {n} sockets", file=sys.stderr)
PY
  RACER_PID=$!
  _pids_to_kill+=($RACER_PID)
}
reset_race() {
  rm -f "$shared/race.sock" "$shared/.racer-link"
  chmod 600 "$victim"
}

log "control: the racer beats an unprotected bind + chmod-by-name"
racer 30
won=0
for ((i = 0; i < 300 && won == 0; i++)); do
  reset_race
  /usr/bin/python3 - "$shared/race.sock" <<'PY' 2>/dev/null || true
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)  # by name, as the old daemon did (fchmodat(dirfd, name, mode, 0))
PY
  [[ $(stat -c %a "$victim") == 666 ]] && won=1
done
kill "$RACER_PID" 2>/dev/null || true
wait "$RACER_PID" 2>/dev/null || true
((won == 1)) || skip "control: the racer never won against chmod-by-name in 300 rounds (machine too slow to show the race)"
log "control: victim chmodded to 0666 after $i round(s)"
reset_race

log "2. the racer against the daemon's open_proxy_socket"
racer 80
# One driver process for all rounds (open, close, look at the victim), so the daemon is hit as often as
# possible: the window between bind() and a chmod by name is a few microseconds.
/usr/bin/python3 - "$TOKFENCE_HOME/control.sock" "$shared/race.sock" "$victim" 4000 70 <<'PY' >"$WORK/out/race.result" || true
import json, os, socket, stat, sys, time
control, path, victim, rounds, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
d = os.open(os.path.dirname(control), os.O_PATH)
def ctl(req):
    s = socket.socket(socket.AF_UNIX)
    s.connect(f"/proc/self/fd/{d}/{os.path.basename(control)}")
    s.sendall(json.dumps(req).encode() + b"\n")
    reply = s.makefile().readline()
    s.close()
    return reply
end, n, opened = time.monotonic() + seconds, 0, 0
while n < rounds and time.monotonic() < end:
    n += 1
    try:
        os.unlink(path)
    except OSError:
        pass
    if '"ok":true' in ctl({"op": "open_proxy_socket", "path": path, "caller": "attack", "mode": 0o666}):
        opened += 1
    ctl({"op": "close_proxy_socket", "path": path})
    mode = stat.S_IMODE(os.stat(victim).st_mode)
    if mode != 0o600:
        print(f"CHANGED {oct(mode)} after {n} rounds ({opened} opened)")
        sys.exit(0)
print(f"unchanged after {n} rounds ({opened} opened)")
PY
kill "$RACER_PID" 2>/dev/null || true
wait "$RACER_PID" 2>/dev/null || true
result=$(cat "$WORK/out/race.result")
log "daemon vs racer: $result"
[[ $result == unchanged* ]] || die "victim mode changed: $result (the daemon chmodded through a swapped link)"
expect_eq "$(stat -c %a "$victim")" 600 "victim mode"
expect_eq "$(cat "$victim")" "victim" "victim content"
[[ -z $(find "$shared" -name '.tokfence-bind-*') ]] || die "private bind directory left behind"
