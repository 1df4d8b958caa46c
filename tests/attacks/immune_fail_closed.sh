#!/usr/bin/env bash
# Escape class: starting an agent without its session (ImmuneFence, issue 19). `tokfence run` and
# `tokfence launch` must not start the agent when the daemon's open_proxy_socket reply carries no
# usable session: an agent with the old placeholder key would be refused on every request (or,
# against a daemon that still accepted it, go unwatched), and one without decoys is watched by no
# canary; a decoy path like "../.bashrc" would be planted outside the agent's home.
# A stand-in daemon (a Python control socket in TOKFENCE_HOME that answers ping and
# open_proxy_socket) replies without a session, with the old dummy key as the token, with a decoy
# path escaping HOME, and with no decoys. Each time: exit 1, the error names the missing or bad part
# and never the token, the agent never runs (its marker file is absent), no container is created,
# and nothing is left in sockets/.
#
# Proving it can fail: the same stand-in with a complete session lets the run start (marker
# written), so the refusals come from the reply's content, not from the stand-in.
source "$(dirname "$0")/../integration/lib.sh"

mkdir -p "$TOKFENCE_HOME" "$WORK/project"
chmod 700 "$TOKFENCE_HOME"
write_test_config_fake() {
  printf '[daemon]\nport = 0\n\n[vault]\nbackend = "%s"\n' "$TOKFENCE_TEST_BACKEND" >"$TOKFENCE_HOME/config.toml"
}
write_test_config_fake
add_canary_key openai

# The local CA a real daemon makes at its start (run places its certificate in the fence, or does
# not start the agent): a throwaway one, as the stand-in's.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=stand-in-ca \
  -keyout "$WORK/stand-in-ca.key" -out "$TOKFENCE_HOME/egress-ca.pem" 2>/dev/null || die "openssl could not make a CA"
chmod 644 "$TOKFENCE_HOME/egress-ca.pem"

# The stand-in daemon: MODE file decides the session part of open_proxy_socket's reply.
python3 - "$TOKFENCE_HOME" <<'PY' &
import json, os, socket, sys, time
home = sys.argv[1]
path = os.path.join(home, "control.sock")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); os.chmod(path, 0o600); s.listen(16); s.settimeout(1)
json.dump({"pid": os.getpid(), "host": "127.0.0.1", "port": 41234, "proxy_socket": ""}, open(os.path.join(home, "daemon.json"), "w"))
token = "tfc1." + "A" * 40 + "." + "B" * 40
fake = "decoy" + os.urandom(12).hex()  # generated: no key-shaped literal in the tree
good_decoys = {"files": [{"path": ".aws/credentials", "content": "[default]\naws_access_key_id = " + fake + "\n"}],
               "env": {"GH_TOKEN": fake}, "values": [fake]}
end = time.time() + 600
while time.time() < end:
    try: c, _ = s.accept()
    except OSError: continue
    line = c.makefile().readline()
    try: req = json.loads(line)
    except ValueError: c.close(); continue
    reply = {"ok": True}
    if req.get("op") == "ping": reply["pid"] = os.getpid()
    if req.get("op") == "open_proxy_socket":
        mode = open(os.path.join(home, "MODE")).read().strip()
        session = {"session_id": "s1", "name": "x", "token": token, "expires_at_ms": 1900000000000, "decoys": good_decoys}
        if mode == "dummy": session["token"] = "tokfence-managed"
        if mode == "escape": session["decoys"] = dict(good_decoys, files=[{"path": "../.bashrc", "content": "x"}])
        if mode == "nodecoys": del session["decoys"]
        reply["path"] = req["path"]
        if mode != "none": reply["session"] = session
        if mode == "good":  # a real listener, so the run's relay has something to connect to
            l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); l.bind(req["path"]); l.listen(4)
    if req.get("op") == "shutdown": reply["grace_seconds"] = 0
    c.sendall((json.dumps(reply) + "\n").encode()); c.close()
    if req.get("op") == "shutdown": os.unlink(path); os.unlink(os.path.join(home, "daemon.json")); break
PY
_pids_to_kill+=($!)
wait_until "test -S '$TOKFENCE_HOME/control.sock' && test -s '$TOKFENCE_HOME/daemon.json'"
# (lib.sh's cleanup runs `tokfence stop`: the stand-in answers shutdown and exits.)

marker="$WORK/project/agent-ran"
run_once() {
  printf '%s\n' "$1" >"$TOKFENCE_HOME/MODE"
  rm -f "$marker"
  tf run codex --command /bin/sh --workdir "$WORK/project" -- -c "touch '$marker'"
}

log "control: a complete session starts the agent"
run_once good
expect_eq "$TF_RC" 0 "run with a complete session: $TF_ERR"
[[ -e $marker ]] || die "control: the agent did not run with a complete session; the stand-in is broken"

for mode in none dummy escape nodecoys; do
  log "reply '$mode': nothing starts"
  run_once "$mode"
  expect_eq "$TF_RC" 1 "run with reply '$mode'"
  expect_contains "$TF_ERR" "run: the daemon opened no usable session: " "run with reply '$mode'"
  expect_contains "$TF_ERR" "nothing was started"
  expect_not_contains "$TF_ERR" "tfc1." "the error quotes the token"
  [[ ! -e $marker ]] || die "the agent ran although the reply was '$mode'"
  left=$(find "$TOKFENCE_HOME/sockets" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  expect_eq "$left" 0 "socket directories left after reply '$mode'"
done
expect_contains "$(run_once none; printf '%s' "$TF_ERR")" "reply has none"
expect_contains "$(run_once dummy; printf '%s' "$TF_ERR")" "not a tfc1 capability token"
expect_contains "$(run_once escape; printf '%s' "$TF_ERR")" "decoys: files[0].path"
expect_contains "$(run_once nodecoys; printf '%s' "$TF_ERR")" "decoys: missing"

if docker info >/dev/null 2>&1 && [[ -x ${TOKFENCE_RELAY_BIN:-} ]]; then
  source "$SOURCE_DIR/tests/images/launch_lib.sh"
  for mode in none dummy escape; do
    log "launch, reply '$mode': no container"
    printf '%s\n' "$mode" >"$TOKFENCE_HOME/MODE"
    name="tff-$mode-$RUN_ID"
    tf launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /bin/sh -c "touch /workspace/agent-ran"
    expect_eq "$TF_RC" 1 "launch with reply '$mode'"
    expect_contains "$TF_ERR" "launch: the daemon opened no usable session: "
    expect_not_contains "$TF_ERR" "tfc1." "the error quotes the token"
    [[ -z $(docker ps -aq --filter "label=org.tokfence.launch=$name") ]] || die "a container was created for reply '$mode'"
    [[ ! -e $TOKFENCE_HOME/openclaw/$name/workspace/agent-ran ]] || die "the agent ran for reply '$mode'"
    expect_nothing_left "$name"
  done
else
  log "no Docker engine or relay: the launch half is not run"
fi
