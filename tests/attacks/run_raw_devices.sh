#!/usr/bin/env bash
# Escape class: the host's device nodes, from `tokfence run`. The sandbox kept the host's /dev in its
# mount view and Landlock grants read everywhere; as root, the sandbox's root is the host's root, so
# root-owned nodes opened: raw disks (/dev/sda, /dev/vda, /dev/loop*: every file, hidden paths
# included, read below the filesystem), text consoles (/dev/tty1, /dev/console: keystrokes),
# /dev/kmsg, /dev/mem and /dev/port where present, /dev/input/*, /dev/fuse, /dev/net/tun... As an
# ordinary user, the world-accessible ones (/dev/kmsg, /dev/fuse, /dev/net/tun, /dev/kvm...) opened.
# tokfence now gives the sandbox a /dev of its own: a tmpfs holding only null, zero, full, random,
# urandom and tty bound from the host, the symbolic links fd, stdin, stdout, stderr and ptmx, its
# own devpts on pts and a private shm.
# Control: --no-sandbox opens the same nodes (as root). Fenced: every device node found below the
# host's /dev at test time fails to open for reading and for writing, and no node outside the
# allow-list is visible at all; the allowed ones still work.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
[[ -x /usr/bin/python3 ]] || skip "/usr/bin/python3 missing"

# Every char and block device below the host's /dev except the allow-list, the host's pseudo-
# terminals (run_other_terminals.sh) and watchdogs (opening one arms it: the machine reboots unless
# it is fed). Bounded: at most 400 nodes.
DEVICES=()
while IFS= read -r d; do
  case $d in
    /dev/null | /dev/zero | /dev/full | /dev/random | /dev/urandom | /dev/tty | /dev/ptmx) continue ;;
    /dev/pts/* | /dev/watchdog*) continue ;;
  esac
  DEVICES+=("$d")
done < <(find /dev -maxdepth 4 \( -type c -o -type b \) 2>/dev/null | sort | head -n 400)
((${#DEVICES[@]} > 0)) || skip "no device node outside the allow-list below /dev on this machine"
log "${#DEVICES[@]} host device nodes to try, e.g. $(printf '%s ' "${DEVICES[@]:0:12}")"

# The agent: opens each path for reading, then for writing (nothing is read or written; O_NONBLOCK
# and O_NOCTTY so no open waits for a carrier or takes a terminal), and prints one line per success.
OPENER='
import os, sys
for p in sys.argv[1:]:
    for mode, name in ((os.O_RDONLY, "R"), (os.O_WRONLY, "W")):
        try:
            fd = os.open(p, mode | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            continue
        os.close(fd)
        print("OPENED-" + name, p)
print("opener-ran")
'

# The allow-list, from inside: what programs need from /dev still works, and nothing else is there.
CHECKER='
import errno, os, stat, sys, multiprocessing
def ok(name, cond):
    print(("OK " if cond else "BROKEN ") + name)
with open("/dev/null", "r+b", buffering=0) as f:
    ok("null", f.read(1) == b"" and f.write(b"x") == 1)
with open("/dev/zero", "rb", buffering=0) as f:
    ok("zero", f.read(4) == b"\0\0\0\0")
try:
    with open("/dev/full", "wb", buffering=0) as f:
        f.write(b"x")
    ok("full", False)
except OSError as e:
    ok("full", e.errno == errno.ENOSPC)
for n in ("random", "urandom"):
    with open("/dev/" + n, "rb", buffering=0) as f:
        ok(n, len(f.read(16)) == 16)
st = os.stat("/dev/tty")
ok("tty", stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 5 and os.minor(st.st_rdev) == 0)
m, s = os.openpty()  # /dev/ptmx, then /dev/pts/N by its name
os.write(s, b"via-pty\n")
ok("ptmx", os.ttyname(s).startswith("/dev/pts/") and b"via-pty" in os.read(m, 100))
ok("fd", os.path.realpath("/dev/fd") == "/proc/%d/fd" % os.getpid() and os.listdir("/dev/fd/"))
ok("stdin", os.path.exists("/dev/stdin") and open("/dev/stdin", "rb").close() is None)
# Through a pipe: stdout of this run is a file outside the writable paths, which Landlock keeps
# from being opened again by name (a terminal or a pipe, the usual cases, can be).
for fdno, name in ((1, "stdout"), (2, "stderr")):
    r, w = os.pipe()
    saved = os.dup(fdno)
    sys.stdout.flush()
    os.dup2(w, fdno)
    try:
        with open("/dev/" + name, "w") as f:
            f.write("via-" + name)
    finally:
        os.dup2(saved, fdno)
        os.close(w)
    ok(name, os.read(r, 100) == ("via-" + name).encode())
path = "/dev/shm/agent-%d" % os.getpid()
with open(path, "w") as f:
    f.write("x")
os.unlink(path)
ok("shm", True)
lock = multiprocessing.Lock()  # a POSIX semaphore, in /dev/shm
with lock:
    ok("sem_open", True)
allowed = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}
for root, dirs, files in os.walk("/dev"):
    for name in files + dirs:
        p = os.path.join(root, name)
        st = os.lstat(p)
        if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and p not in allowed and \
                not p.startswith("/dev/pts/"):
            print("EXTRA-NODE", p)
print("checker-ran", " ".join(sorted(os.listdir("/dev"))))
'

attack() {
  principal_setup "$1"

  log "[$P_MODE] unprotected: --no-sandbox opens host device nodes"
  ptf run codex --no-sandbox --command /usr/bin/python3 --workdir "$P_PROJECT" -- -c "$OPENER" "${DEVICES[@]}"
  expect_contains "$OUT" "opener-ran" "control: the opener did not run ($ERR)"
  local opened
  opened=$(grep -c '^OPENED-' <<<"$OUT" || true)
  log "[$P_MODE] control opened $opened times: $(grep '^OPENED-' <<<"$OUT" | head -n 12 | tr '\n' ' ')"
  if [[ $P_UID -eq 0 ]]; then
    ((opened > 0)) || die "control: root with --no-sandbox opened none of the host's device nodes"
  fi

  log "[$P_MODE] sandboxed: none of them opens, for reading or for writing"
  ptf run codex --command /usr/bin/python3 --workdir "$P_PROJECT" -- -c "$OPENER" "${DEVICES[@]}"
  expect_contains "$OUT" "opener-ran" "the sandboxed opener did not run, so it proved nothing ($ERR)"
  expect_not_contains "$OUT" "OPENED-" "the sandboxed agent opened a host device node"

  log "[$P_MODE] sandboxed: the allowed devices still work, and no other node is there"
  ptf run codex --command /usr/bin/python3 --workdir "$P_PROJECT" -- -c "$CHECKER"
  log "[$P_MODE] agent saw: $(tr '\n' ' ' <<<"$OUT")"
  expect_contains "$OUT" "checker-ran" "the allow-list check did not finish (rc $RC): $ERR"
  expect_not_contains "$OUT" "BROKEN" "an allowed device does not work in the sandbox"
  expect_not_contains "$OUT" "EXTRA-NODE" "a device node outside the allow-list is visible in the sandbox"
  local n
  for n in null zero full random urandom tty ptmx fd stdin stdout stderr shm sem_open; do
    expect_contains "$OUT" "OK $n" "allowed device check '$n' missing"
  done
}

for_each_principal attack
