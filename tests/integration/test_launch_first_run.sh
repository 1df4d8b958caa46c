#!/usr/bin/env bash
# The first run: no key in the vault.
#  - no terminal on stdin: launch prints the one `vault add` command and exits 1, nothing created;
#  - a terminal (a pty): launch asks for the provider, reads the key without echo, stores it and
#    goes on (here: a one-shot probe command through the proxy); the key never appears on the
#    terminal;
#  - Ctrl-C at the provider prompt or at the key prompt: the vault is unchanged, nothing is left.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

start_fake_upstream
write_test_config
name="tff-$RUN_ID"

tf launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /probe env
expect_eq "$TF_RC" 1 "no key, no terminal"
expect_contains "$TF_ERR" "tokfence: error: launch: no provider has a key: run 'tokfence vault add openai -' (then paste the key), then launch again"
expect_nothing_left "$name"

# Drives tokfence on a pty: $1 = script of steps "expect:TEXT" / "send:TEXT" / "intr"; writes the
# transcript to $PTY_LOG (under $WORK/out: scanned for the canary at exit) and prints the exit
# status. Call next_pty_log first (pty_run runs in a command substitution).
pty_seq=0
next_pty_log() { pty_seq=$((pty_seq + 1)); PTY_LOG="$WORK/out/pty.$pty_seq"; }
pty_run() {
  python3 - "$PTY_LOG" "$1" "$TOKFENCE_BIN" "${@:2}" <<'PY'
import os, pty, select, sys, time, signal
log_path, steps, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def read_until(text, limit=60):
    global seen
    end = time.time() + limit
    while text.encode() not in seen:
        if time.time() > end:
            raise SystemExit("timed out waiting for %r; got %r" % (text, seen[-400:]))
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try: chunk = os.read(fd, 4096)
            except OSError: chunk = b""
            if not chunk: raise SystemExit("eof waiting for %r; got %r" % (text, seen[-400:]))
            seen += chunk
for step in steps.split("\x1f"):
    kind, _, arg = step.partition(":")
    if kind == "expect": read_until(arg)
    elif kind == "send": os.write(fd, arg.encode())
    elif kind == "intr": os.write(fd, b"\x03")
end = time.time() + 120
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try: chunk = os.read(fd, 4096)
        except OSError: chunk = b""
        if not chunk: break
        seen += chunk
# Bounded: a launch that does not end 30 s after its terminal went quiet is a hang (a prompt that
# waited on after Ctrl-C did once in CI); it is killed and reported, not left to the ctest timeout.
for _ in range(60):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done: break
    time.sleep(0.5)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    open(log_path, "wb").write(seen)
    raise SystemExit("tokfence did not end: %r" % seen[-400:])
open(log_path, "wb").write(seen)
print(os.waitstatus_to_exitcode(status))
PY
}
S=$'\x1f'

# Ctrl-C at the provider prompt.
next_pty_log
rc=$(pty_run "expect:provider [openai]: ${S}intr" launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /probe env)
[[ $rc -ne 0 ]] || die "Ctrl-C at the provider prompt: exit 0: $(cat "$PTY_LOG")"
tf_ok vault list --json
expect_eq "$(jq length <<<"$TF_OUT")" 0 "vault after Ctrl-C at the provider prompt"
expect_nothing_left "$name"

# Ctrl-C at the key prompt, after part of the key was typed.
next_pty_log
rc=$(pty_run "expect:provider [openai]: ${S}send:openai
${S}expect:(input hidden): ${S}send:${CANARY:0:10}${S}intr" launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /probe env)
[[ $rc -ne 0 ]] || die "Ctrl-C at the key prompt: exit 0"
tf_ok vault list --json
expect_eq "$(jq length <<<"$TF_OUT")" 0 "vault after Ctrl-C at the key prompt"
expect_nothing_left "$name"

# Answered: stored, and the launch goes on with it (a request from the container reaches the fake upstream through the proxy).
next_pty_log
rc=$(pty_run "expect:provider [openai]: ${S}send:nosuchprovider
${S}expect:is not one of${S}expect:provider [openai]: ${S}send:openai
${S}expect:(input hidden): ${S}send:$CANARY
" launch --image "$TEST_IMAGE" --no-pull --name "$name" -- sh -c "$CONTAINER_KEY_SH; wget -Y off -q -O - --header \"Authorization: Bearer \$TFKEY\" --header 'Content-Type: application/json' --post-data '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' http://127.0.0.1:9471/openai/v1/chat/completions")
transcript=$(tr -d '\r' <"$PTY_LOG")
expect_eq "$rc" 0 "launch after the prompt: $transcript"
expect_contains "$transcript" "launch: stored the key for openai in the vault"
tf_ok vault list --json
expect_eq "$(jq -r '.[].provider' <<<"$TF_OUT")" openai
auth=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path | endswith("/chat/completions"))][-1].headers.authorization')
[[ $auth == "Bearer $CANARY" ]] || die "the upstream did not get the key entered at the prompt"
expect_nothing_left "$name"
log "ok"
