#!/usr/bin/env bash
# Escape class: the user's terminal handed in as stdout/stderr. When `tokfence run`'s stdin is not
# a terminal (`</dev/null`, a pipe, a background job `&`) the child gets no pseudo-terminal of its
# own, and its stdout/stderr were tokfence's: the user's terminal, open read-write. The agent
# reads from descriptor 2 what the user types there next (the sudo password of the command they
# run while the agent works) and may change the terminal's modes; no path is involved, so hiding
# /dev/pts does not help.
# Control (deliberately unprotected): the same agent started directly with the same descriptors
# reads the typed line. Fenced (`run`, sandboxed and --no-sandbox): its descriptors 1 and 2 are not
# terminals, nothing typed reaches it, and what it prints still shows on the user's terminal.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
[[ -x /usr/bin/python3 ]] || skip "/usr/bin/python3 missing"
SECRET="typed-$(random_token 16)"
SECRET_HEX=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')

# The agent: says where its stdio goes, then waits up to 5 s for bytes on descriptor 2.
AGENT='
import os, select
print("agent-ready", flush=True)
print("tty1=%s tty2=%s" % (os.isatty(1), os.isatty(2)), flush=True)
data = b""
r, _, _ = select.select([2], [], [], 5)
if r:
    try:
        data = os.read(2, 200)
    except OSError as e:
        data = b"error %d" % e.errno
print("got=[%s]" % data.hex(), flush=True)
'

# Runs "$@" with stdin /dev/null and stdout/stderr the slave of a new pty (echo off: only what a
# program writes shows), types $SECRET once "agent-ready" shows, and prints what the terminal
# showed. Bounded: at most 40 s.
on_terminal() {
  as_principal /usr/bin/python3 - "$SECRET" "$@" <<'PY'
import os, pty, select, subprocess, sys, termios, time
secret, argv = sys.argv[1].encode(), sys.argv[2:]
master, slave = pty.openpty()
attrs = termios.tcgetattr(slave)
attrs[3] &= ~termios.ECHO
termios.tcsetattr(slave, termios.TCSANOW, attrs)
proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
out, typed, end = b"", False, time.time() + 40
while time.time() < end:
    r, _, _ = select.select([master], [], [], 0.2)
    if r:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    if not typed and b"agent-ready" in out:
        time.sleep(0.5)
        os.write(master, secret + b"\n")
        typed = True
    if proc.poll() is not None and not r:
        break
proc.kill() if proc.poll() is None else None
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
PY
}

attack() {
  principal_setup "$1"
  [[ $P_MODE == user ]] && chown "$USER_ID" "$P_PROJECT"

  log "[$P_MODE] control: the agent started directly on the user's terminal reads what is typed there"
  out=$(on_terminal /usr/bin/python3 -c "$AGENT")
  expect_contains "$out" "tty1=True tty2=True" "control: the agent's stdout/stderr were not the terminal"
  expect_contains "$out" "got=[$SECRET_HEX" "control: the typed line did not reach the agent (the trap is not live)"

  for how in sandboxed --no-sandbox; do
    local flags=()
    [[ $how == --no-sandbox ]] && flags=(--no-sandbox)
    log "[$P_MODE] run ($how), stdin /dev/null, output on the user's terminal"
    out=$(on_terminal env -i HOME="$P_HOME" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$P_TFHOME" \
      TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" TOKFENCE_TEST_BACKEND=file \
      "$TOKFENCE_BIN" run codex "${flags[@]}" --command /usr/bin/python3 --workdir "$P_PROJECT" -- -c "$AGENT")
    log "[$P_MODE] terminal showed: $(tr '\n' ' ' <<<"${out//$SECRET_HEX/<typed line>}" | tail -c 400)"
    expect_contains "$out" "agent-ready" "run ($how): the agent's output did not reach the user's terminal"
    expect_contains "$out" "tty1=False tty2=False" "run ($how): the agent got the user's terminal as stdout/stderr"
    expect_contains "$out" "got=[" "run ($how): the agent did not finish"
    expect_not_contains "$out" "$SECRET_HEX" "run ($how): the agent read what the user typed in their terminal"
  done
}

for_each_principal attack
