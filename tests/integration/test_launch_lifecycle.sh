#!/usr/bin/env bash
# tokfence launch: bad input and faults give clear messages and leave nothing behind; SIGTERM,
# container death and a daemon that stops end the launch cleanly; leftovers of a crashed launch
# are removed by the next one; --detach with status/config/logs/restart/stop; the dashboard relay
# listens on the host's loopback only (127.0.0.1 and its [::1] twin).
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

start_fake_upstream
write_test_config
image=$TEST_IMAGE

# --- no key yet
tf launch --image "$image" --no-pull --name "tfl-nokey-$RUN_ID" -- /probe env
expect_eq "$TF_RC" 1 "launch without any key"
expect_contains "$TF_ERR" "tokfence: error: launch: no provider has a key: run 'tokfence vault add openai -'"
expect_nothing_left "tfl-nokey-$RUN_ID"
add_canary_key openai

# --- Docker absent / not allowed
DOCKER_HOST=unix://$WORK/no-such-docker.sock tf launch --image "$image" --no-pull -- /probe env
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "docker: no engine socket at $WORK/no-such-docker.sock: start Docker"
DOCKER_HOST=tcp://127.0.0.1:2375 tf launch --image "$image" --no-pull -- /probe env
expect_contains "$TF_ERR" "only a local unix:// engine socket can be used"
# The engine socket under test: Docker's, or the one DOCKER_HOST names (tests/podman).
engine_sock=/var/run/docker.sock
[[ ${DOCKER_HOST:-} == unix://* ]] && engine_sock=${DOCKER_HOST#unix://}
sock_mode=$(stat -c %a "$engine_sock")
if [[ ${sock_mode: -1} != [2367] ]]; then
  # As an unprivileged user outside the docker group the socket refuses us.
  nobody_home=$(mktemp -d)
  chown 65534:65534 "$nobody_home"
  set +e
  err=$(setpriv --reuid=65534 --regid=65534 --clear-groups env TOKFENCE_HOME="$nobody_home/h" \
    "$TOKFENCE_BIN" launch --image "$image" --no-pull -- /probe env 2>&1 >/dev/null)
  rc=$?
  set -e
  rm -rf "$nobody_home"
  expect_eq "$rc" 1 "launch without access to the Docker socket"
  expect_contains "$err" "docker: permission denied on $engine_sock: join the 'docker' group"
fi

# --- image missing with --no-pull
tf launch --image "tokfence-no-such-image:$RUN_ID" --no-pull --name "tfl-noimg-$RUN_ID" -- /probe env
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "launch: image tokfence-no-such-image:$RUN_ID not present and --no-pull given"
expect_nothing_left "tfl-noimg-$RUN_ID"

# --- bad flags
tf launch --image "$image" --no-pull --name "../x" -- /probe env
expect_contains "$TF_ERR" "launch: --name: must match"
tf launch --image "$image" --no-pull --memory lots -- /probe env
expect_contains "$TF_ERR" "launch: --memory: expected a size"
tf launch --image "$image" --no-pull --user 0:0 -- /probe env
expect_contains "$TF_ERR" "refusing to run the container as root"
tf launch --image "$image" --no-pull --model mistral/large -- /probe env
expect_contains "$TF_ERR" "provider 'mistral' has no key: run 'tokfence vault add mistral -'"

# --- a name held by a container that is not tokfence's
foreign="tfl-foreign-$RUN_ID"
docker create --name "$foreign" "$image" >/dev/null
EXTRA_CLEANUP="docker rm -f $foreign >/dev/null 2>&1; $EXTRA_CLEANUP"
tf launch --image "$image" --no-pull --name "$foreign" -- /probe env
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "container name '$foreign' is taken by a container tokfence did not create: pass --name"
docker inspect "$foreign" >/dev/null 2>&1 || die "launch removed a container that was not its own"
[[ ! -e $TOKFENCE_HOME/sockets/launch-$foreign ]] || die "socket directory left for $foreign"

# --- leftovers of a crashed launch are removed by the next launch (which also starts the daemon)
left="tfl-left-$RUN_ID"
docker create --name "$left" --label "org.tokfence.launch=$left" --label "org.tokfence.home=$TOKFENCE_HOME" \
  --label org.tokfence.mode=foreground --label org.tokfence.pid=999999999 "$image" >/dev/null
mkdir -p "$TOKFENCE_HOME/sockets/launch-tfl-stale-$RUN_ID"
# A label that is not a launch name is never turned into a path: the old code removed
# openclaw/../victim/openclaw.json (and more) for it.
docker create --name "tfl-badlabel-$RUN_ID" --label "org.tokfence.launch=../victim" --label "org.tokfence.home=$TOKFENCE_HOME" \
  --label org.tokfence.mode=foreground --label org.tokfence.pid=999999999 "$image" >/dev/null
mkdir -p "$TOKFENCE_HOME/victim"
echo keep >"$TOKFENCE_HOME/victim/openclaw.json"
[[ ! -e $TOKFENCE_HOME/daemon.json ]] || die "daemon already running"

# --- container death: exit status, output, nothing left
name="tfl-exit-$RUN_ID"
tf launch --image "$image" --no-pull --name "$name" -- /bin/sh -c 'echo bye-out; echo bye-err >&2; exit 7'
expect_eq "$TF_RC" 7 "launch exits with the container's status"
expect_contains "$TF_OUT" "bye-out"
expect_contains "$TF_ERR" "bye-err"
expect_contains "$TF_ERR" "launch: container '$name' exited with status 7"
expect_contains "$TF_ERR" "daemon started"
expect_contains "$TF_ERR" "removing leftover container $left"
expect_nothing_left "$name"
[[ -z $(docker ps -aq --filter "name=^/$left\$") ]] || die "leftover container not removed"
[[ ! -e $TOKFENCE_HOME/sockets/launch-tfl-stale-$RUN_ID ]] || die "stale socket directory not removed"
[[ -f $TOKFENCE_HOME/victim/openclaw.json ]] || die "a leftover's bad label was turned into a path"
expect_contains "$TF_ERR" "its label org.tokfence.launch is not a launch name"
docker rm -f "tfl-badlabel-$RUN_ID" >/dev/null

# Runs a foreground launch in the background; sets LPID, LOUT, LERR.
launch_bg() {
  local n=$1
  shift
  _out_seq=$((_out_seq + 1))
  LOUT="$WORK/out/$_out_seq.stdout"
  LERR="$WORK/out/$_out_seq.stderr"
  "$TOKFENCE_BIN" launch --image "$image" --no-pull --name "$n" "$@" >"$LOUT" 2>"$LERR" </dev/null &
  LPID=$!
  wait_until "docker ps -q --filter label=org.tokfence.launch=$n --filter status=running | grep -q ." 30
}

# --- SIGTERM to a foreground launch: the container is stopped and removed, exit status is its own
name="tfl-term-$RUN_ID"
launch_bg "$name" --stop-timeout 5 -- /bin/sleep 600
[[ -S $TOKFENCE_HOME/sockets/launch-$name/proxy/proxy.sock ]] || die "no proxy socket while running"
kill -TERM "$LPID"
set +e
wait "$LPID"
rc=$?
set -e
expect_eq "$rc" 143 "launch stopped by SIGTERM exits with the container's status (sleep killed by SIGTERM)"
expect_contains "$(cat "$LERR")" "launch: stopping $name (signal 15)"
expect_nothing_left "$name"

# --- the daemon stops while a launch runs
name="tfl-daemon-$RUN_ID"
launch_bg "$name" --stop-timeout 5 -- /bin/sleep 600
tf_ok stop
set +e
wait "$LPID"
rc=$?
set -e
expect_eq "$rc" 1 "launch whose daemon stopped"
expect_contains "$(cat "$LERR")" "tokfence: error: launch: the tokfence daemon stopped while '$name' ran"
expect_nothing_left "$name"

# --- detached, with the dashboard relay on the host's loopback
name="tfl-detach-$RUN_ID"
ui='mkdir -p /tmp/www && echo hello-ui > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:18789 -h /tmp/www'
tf launch --image "$image" --no-pull --name "$name" --detach --port 0 --json -- /bin/sh -c "$ui"
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
url=$(jq -r .dashboard_url <<<"$TF_OUT")
expect_eq "$(jq -r .status <<<"$TF_OUT")" running
expect_eq "$(jq -r '.providers | join(",")' <<<"$TF_OUT")" openai
[[ $url == http://127.0.0.1:*/#token=* ]] || die "dashboard url: $url"
port=${url#http://127.0.0.1:}
port=${port%%/*}
wait_until "curl -fsS http://127.0.0.1:$port/ | grep -q hello-ui" 15
listeners=$(ss -Hltn "sport = :$port" | awk '{print $4}' | sort)
# 127.0.0.1 and, where ::1 exists, its IPv6 twin (held so no other user can serve localhost there).
expected="127.0.0.1:$port"
[[ -n $(ip -6 addr show dev lo 2>/dev/null | grep -w '::1') ]] && expected=$(printf '127.0.0.1:%s\n[::1]:%s' "$port" "$port" | sort)
expect_eq "$listeners" "$expected" "dashboard listens on loopback only"
tf launch status --name "$name" --json
expect_eq "$TF_RC" 0
expect_eq "$(jq -r .status <<<"$TF_OUT")" running
expect_eq "$(jq -r .mode <<<"$TF_OUT")" detach
tf launch --image "$image" --no-pull --name "$name" -- /probe env
expect_eq "$TF_RC" 1 "second launch with a running launch's name"
expect_contains "$TF_ERR" "launch: '$name' is already running: see 'tokfence launch status --name $name'"
[[ -S $TOKFENCE_HOME/sockets/launch-$name/proxy/proxy.sock ]] || die "the refused launch removed the running launch's socket"
tf_ok launch config --name "$name"
expect_contains "$TF_OUT" '"apiKey": "(the launch'"'"'s session token, not shown)"'
expect_contains "$TF_OUT" '"baseUrl": "http://127.0.0.1:9471/openai/v1"'
mode=$(stat -c %a "$TOKFENCE_HOME/openclaw/$name/openclaw.json")
expect_eq "$mode" 600 "config file mode"
policy=$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.SecurityOpt}} {{.Config.User}}' "$name")
expect_eq "$policy" "unless-stopped none true [no-new-privileges] $(launch_default_ids)" "hardened host config"
# Capabilities as the kernel sees them, not as the engine reports them (Docker shows CapDrop
# [ALL], Podman lists each dropped capability): the container's first process has an empty
# bounding set, so nothing in it can ever gain one.
caps=$(docker exec "$name" grep -E '^Cap(Eff|Prm|Bnd):' /proc/1/status | tr -s '\t ' ' ' | tr '\n' ' ')
expect_eq "$caps" "CapPrm: 0000000000000000 CapEff: 0000000000000000 CapBnd: 0000000000000000 " "capabilities of the container's process"
# A container made by an older tokfence (no fence_layout in its launch.json) is not restarted as
# it is: the engine would bring it back without today's binds and user.
state="$TOKFENCE_HOME/openclaw/$name/launch.json"
cp "$state" "$WORK/launch.json.saved"
python3 -c 'import json,sys; p=sys.argv[1]; s=json.load(open(p)); del s["fence_layout"]; open(p,"w").write(json.dumps(s))' "$state"
tf launch restart --name "$name"
expect_eq "$TF_RC" 1 "restart of a container made by an older tokfence"
expect_contains "$TF_ERR" "was started by an older tokfence: its container lacks protections"
expect_contains "$TF_ERR" "tokfence launch stop --name $name') and launch it again"
cp "$WORK/launch.json.saved" "$state"
tf_ok launch restart --name "$name"
wait_until "curl -fsS http://127.0.0.1:$port/ | grep -q hello-ui" 15
tf_ok launch logs --name "$name" --tail 5
tf_ok launch stop --name "$name"
expect_contains "$TF_OUT" "stopped and removed"
expect_nothing_left "$name"
if curl -fsS -m 2 "http://127.0.0.1:$port/" >/dev/null 2>&1; then die "dashboard relay still answers after stop"; fi
tf launch status --name "$name"
expect_eq "$TF_RC" 3 "status of a stopped launch"
