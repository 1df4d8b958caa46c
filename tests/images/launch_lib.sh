# Shared set-up for the launch tests (sourced after lib.sh): the probe test image, a provider key,
# and helpers to check that a launch left nothing behind.

PROBE_BIN="$BUILD_DIR/bin/tokfence-probe"
[[ -x $PROBE_BIN ]] || die "tokfence-probe not built: $PROBE_BIN"
[[ -x ${TOKFENCE_RELAY_BIN:-} ]] || die "tokfence-relay not built: ${TOKFENCE_RELAY_BIN:-}"
docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/test starts one)"
TEST_IMAGE=$("$SOURCE_DIR/scripts/build-test-image" "$PROBE_BIN") || die "could not build the test image"
# Container names are global to the engine: make them unique per run.
RUN_ID=$(random_token 6 | tr 'A-Z' 'a-z')

# Fake upstream, config, the canary as openai's key.
launch_test_setup() {
  start_fake_upstream
  write_test_config "$@"
  add_canary_key openai
}

# No container, socket directory or config of launch $1 is left.
expect_nothing_left() {
  local name=$1 left
  left=$(docker ps -aq --filter "label=org.tokfence.launch=$name")
  [[ -z $left ]] || die "container of launch $name left behind: $left"
  [[ ! -e $TOKFENCE_HOME/sockets/launch-$name ]] || die "socket directory of $name left behind"
  [[ ! -e $TOKFENCE_HOME/openclaw/$name/openclaw.json ]] || die "config of $name left behind"
  [[ ! -e $TOKFENCE_HOME/openclaw/$name/launch.json ]] || die "state file of $name left behind"
}

# The two socket directories of launch $1 on the host (docs/LAUNCH.md): proxy/ (ours, read-only in
# the container at /run/tokfence) and ui/ (the container user's, read-write at /run/tokfence-ui).
launch_proxy_dir() { printf '%s' "$TOKFENCE_HOME/sockets/launch-$1/proxy"; }
launch_ui_dir() { printf '%s' "$TOKFENCE_HOME/sockets/launch-$1/ui"; }

# launch_ui_stub NAME: a detached launch of the test image whose "gateway" is busybox httpd serving
# hello-ui on the container's 127.0.0.1:18789, reached through launch's dashboard relay; waits for
# it. Sets port (the relay's), relay_log and cuid (the container's uid).
launch_ui_stub() {
  local ui='mkdir -p /tmp/www && echo hello-ui > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:18789 -h /tmp/www'
  tf launch --image "$TEST_IMAGE" --no-pull --name "$1" --detach --port 0 --json -- /bin/sh -c "$ui"
  [[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
  local url
  url=$(jq -r .dashboard_url <<<"$TF_OUT")
  port=${url#http://127.0.0.1:}
  port=${port%%/*}
  wait_until "curl -fsS http://127.0.0.1:$port/ | grep -q hello-ui" 15
  relay_log="$TOKFENCE_HOME/openclaw/$1/dashboard-relay.log"
  cuid=$(launch_container_user "$1")
  cuid=${cuid%%:*}
}

# A Unix socket server owned by the test that stands in for a host socket an attacker wants (e.g.
# /var/run/docker.sock): every connection appends "REACHED" to $2 and gets "MARKER-SERVER\n".
# Runs until the test ends (bounded at 10 minutes). Waits until the socket exists.
start_marker_server() {
  local sock=$1 hits=$2
  python3 - "$sock" "$hits" <<'PY' &
import os, socket, sys, time
path, hits = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); os.chmod(path, 0o666); s.listen(16); s.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try: c, _ = s.accept()
    except OSError: continue
    with open(hits, "a") as f: f.write("REACHED\n")
    try: c.sendall(b"MARKER-SERVER\n")
    except OSError: pass
    c.close()
PY
  _pids_to_kill+=($!)
  wait_until "test -S '$sock'"
}

# ImmuneFence: a launch's socket accepts only its session token, which OpenClaw reads from its
# rendered config (apiKey). Shell code for a script run in the container that sets $TFKEY to it
# (send it as "Authorization: Bearer $TFKEY"):
CONTAINER_KEY_SH='TFKEY=$(sed -n "s/.*\"apiKey\": \"\([^\"]*\)\".*/\1/p" /tokfence/config/openclaw.json | head -1)'
# One chat request from inside launch $1's container with that key; prints the reply or wget's
# error line. -Y off: not through the container's http_proxy (busybox wget would send the POST as
# a GET there).
container_chat() {
  docker exec "$1" sh -c "$CONTAINER_KEY_SH"'
wget -Y off -q -O - --header "Authorization: Bearer $TFKEY" --header "Content-Type: application/json" \
  --post-data "$0" http://127.0.0.1:9471/openai/v1/chat/completions' \
    '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' 2>&1 || true
}

# The uid:gid of launch $1's container, as the engine has it (docker inspect).
launch_container_user() { docker inspect -f '{{.Config.User}}' "$1"; }

# The uid:gid a launch without --user gives its container, for a test that must prepare files
# before the launch (docs/LAUNCH.md): the caller's own ids, or as root the first id in
# 65520..65533, then in 65000..65519, that no host user or group has, no /etc/subuid or /etc/subgid
# range holds and no process of this PID namespace runs as (the same rule as
# launcher/openclaw/launch.cpp dedicated_container_id, written out independently).
launch_default_ids() {
  if [[ $(id -u) -ne 0 ]]; then
    printf '%s:%s' "$(id -u)" "$(id -g)"
    return
  fi
  local id
  for id in $(seq 65520 65533) $(seq 65000 65519); do
    getent passwd "$id" >/dev/null && continue
    getent group "$id" >/dev/null && continue
    cat /etc/subuid /etc/subgid 2>/dev/null |
      awk -F: -v id="$id" 'NF >= 3 && id >= $2 && id < $2 + $3 { found = 1 } END { exit !found }' && continue
    pgrep --ns $$ --nslist pid -U "$id" >/dev/null && continue
    pgrep --ns $$ --nslist pid -u "$id" >/dev/null && continue
    printf '%s:%s' "$id" "$id"
    return
  done
  die "no free id in 65000..65533 on this host"
}

# Removes every container this test's home may have left (runs at exit).
launch_cleanup() {
  local ids
  ids=$(docker ps -aq --filter "label=org.tokfence.home=$TOKFENCE_HOME" 2>/dev/null || true)
  [[ -n $ids ]] && docker rm -f $ids >/dev/null 2>&1 || true
}
EXTRA_CLEANUP="launch_cleanup${EXTRA_CLEANUP:+; $EXTRA_CLEANUP}"
