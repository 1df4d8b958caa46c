#!/usr/bin/env bash
# Escape class: the user's other terminals, from `tokfence run`. The host's /dev/pts stays visible
# in the sandbox's mount view, Landlock grants read everywhere and write on /dev/pts, and every
# pseudo-terminal of the user is owned by the user's uid: the agent opens another terminal of the
# same user (an ssh session, the terminal where they type a sudo password next), reads what is
# typed there (the keystrokes never reach the program in that terminal) and writes to its screen
# (fake prompts, escape sequences whose answers the terminal types into that shell).
# Control: --no-sandbox. Fenced: the agent must see none of the host's terminals, with no terminal
# of its own (stdin /dev/null) and with one (under script(1), the way people run it: its own pty
# then comes from the sandbox's devpts instance, /dev/pts/0, never from the host's).
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib_run.bash"
[[ -x /usr/bin/python3 ]] || skip "/usr/bin/python3 missing"
SECRET="typed-$(random_token 16)"

# A terminal of the principal's, idle in a foreground job that does not read: its pts path goes
# to $1/pts; once $1/go exists (or after 8 s) the "user" types $SECRET; what the terminal shows
# goes to $1/screen. Bounded: it ends within 12 s whatever happens.
start_victim() {
  local dir=$1
  rm -f "$dir/pts" "$dir/go" "$dir/screen"
  as_principal /usr/bin/python3 - "$dir" "$SECRET" <<'PY' &
import os, pty, select, sys, time
d, secret = sys.argv[1], sys.argv[2].encode()
pid, master = pty.fork()
if pid == 0:
    os.execvp("sleep", ["sleep", "15"])
time.sleep(0.2)
with open(f"{d}/pts.tmp", "w") as f:
    f.write(os.readlink(f"/proc/{pid}/fd/0"))
os.rename(f"{d}/pts.tmp", f"{d}/pts")
end = time.time() + 8
while time.time() < end and not os.path.exists(f"{d}/go"):
    time.sleep(0.05)
time.sleep(0.3)
os.write(master, secret + b"\n")
out, end = b"", time.time() + 3
while time.time() < end:
    r, _, _ = select.select([master], [], [], 0.2)
    if r:
        try:
            out += os.read(master, 4096)
        except OSError:
            break
with open(f"{d}/screen", "wb") as f:
    f.write(out)
os.kill(pid, 9)
PY
  _pids_to_kill+=($!)
  VICTIM_PID=$!
  wait_until "test -s '$dir/pts'"
  VICTIM_PTS=$(cat "$dir/pts")
  [[ $VICTIM_PTS == /dev/pts/* ]] || die "the victim terminal is not a pts: $VICTIM_PTS"
}

# What the victim's terminal showed, for the log: the typed line stands in for a password, so it is
# not printed.
shown_screen() { tr -d '\r' <"$P_PROJECT/screen" | tr '\n' ' ' | sed "s/$SECRET/<typed line>/g"; }

# The agent: says it is ready, then reads one line from the other terminal and writes to it.
AGENT='echo agent-ran; touch go; echo AGENT-ON-YOUR-SCREEN >"$0" && echo wrote; timeout 5 head -n 1 "$0"'

# ptf with a terminal: tokfence's stdin/stdout/stderr are a pty of script(1)'s (a host pty).
# Sets RC OUT (carriage returns dropped).
ptf_tty() {
  local o="$WORK/out/$P_MODE-tty.out"
  set +e
  as_principal env -i HOME="$P_HOME" PATH=/usr/local/bin:/usr/bin:/bin TOKFENCE_HOME="$P_TFHOME" \
    TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" TOKFENCE_TEST_BACKEND=file \
    timeout 40 script -qec "$(printf '%q ' "$TOKFENCE_BIN" "$@")" /dev/null </dev/null >"$o" 2>&1
  RC=$?
  set -e
  OUT=$(tr -d '\r' <"$o")
}

attack() {
  principal_setup "$1"
  [[ $P_MODE == user ]] && chown "$USER_ID" "$P_PROJECT"

  log "[$P_MODE] unprotected: --no-sandbox reads and writes the user's other terminal"
  start_victim "$P_PROJECT"
  ptf run codex --no-sandbox --command /bin/sh --workdir "$P_PROJECT" -- -c "$AGENT" "$VICTIM_PTS"
  wait "$VICTIM_PID" || true
  expect_contains "$OUT" "$SECRET" "control: --no-sandbox did not read the other terminal ($ERR)"
  expect_contains "$(cat "$P_PROJECT/screen")" "AGENT-ON-YOUR-SCREEN" "control: --no-sandbox did not write to it"

  log "[$P_MODE] sandboxed: the other terminal ($VICTIM_PTS) is neither readable nor writable"
  start_victim "$P_PROJECT"
  ptf run codex --command /bin/sh --workdir "$P_PROJECT" -- -c "$AGENT; ls /dev/pts" "$VICTIM_PTS"
  wait "$VICTIM_PID" || true
  log "[$P_MODE] agent saw: $(tr '\n' ' ' <<<"${OUT//$SECRET/<typed line>}") / screen: $(shown_screen)"
  expect_not_contains "$OUT" "$SECRET" "the sandboxed agent read keystrokes typed in another terminal ($VICTIM_PTS)"
  expect_not_contains "$(cat "$P_PROJECT/screen")" "AGENT-ON-YOUR-SCREEN" \
    "the sandboxed agent wrote to another terminal ($VICTIM_PTS)"
  expect_not_contains "$OUT" "wrote" "the sandboxed agent opened another terminal for writing"
  expect_contains "$OUT" "agent-ran" "the sandboxed agent did not run at all, so it proved nothing ($ERR)"

  if ! command -v script >/dev/null; then
    log "[$P_MODE] with a terminal: skipped, script(1) missing (bsdutils)"
    return 0
  fi
  log "[$P_MODE] with a terminal, unprotected: --no-sandbox still reaches the other terminal"
  start_victim "$P_PROJECT"
  ptf_tty run codex --no-sandbox --command /bin/sh --workdir "$P_PROJECT" -- -c "$AGENT" "$VICTIM_PTS"
  wait "$VICTIM_PID" || true
  expect_contains "$OUT" "$SECRET" "control with a terminal: --no-sandbox did not read the other terminal"
  expect_contains "$(cat "$P_PROJECT/screen")" "AGENT-ON-YOUR-SCREEN" "control with a terminal: no write"

  log "[$P_MODE] sandboxed, with a terminal of its own: still none of the host's"
  start_victim "$P_PROJECT"
  # Its own terminal may carry the victim's number in the private instance (/dev/pts/0): writing
  # there reaches its own screen, so "wrote" proves nothing here; the victim's screen does.
  ptf_tty run codex --command /bin/sh --workdir "$P_PROJECT" -- -c "echo own-tty=\$(tty); $AGENT; ls /dev/pts" "$VICTIM_PTS"
  wait "$VICTIM_PID" || true
  log "[$P_MODE] agent saw: $(tr '\n' ' ' <<<"${OUT//$SECRET/<typed line>}") / screen: $(shown_screen)"
  expect_contains "$OUT" "agent-ran" "the sandboxed agent did not run with a terminal ($OUT)"
  expect_contains "$OUT" "own-tty=/dev/pts/0" "the sandboxed agent's own terminal is not its instance's /dev/pts/0"
  expect_not_contains "$OUT" "$SECRET" "with a terminal, the sandboxed agent read keystrokes typed in $VICTIM_PTS"
  expect_not_contains "$(cat "$P_PROJECT/screen")" "AGENT-ON-YOUR-SCREEN" \
    "with a terminal, the sandboxed agent wrote to another terminal ($VICTIM_PTS)"
}

for_each_principal attack
