#!/usr/bin/env bash
# tokfence launch: the container's only way out is the proxy, and nothing in it holds the key.
# One launch of the probe image runs every check inside the container (busybox sh + tokfence-probe)
# and prints one "R <check> <exit status>" line per check; the host then asserts on them.
#  - a chat request to 127.0.0.1:9471 reaches the fake upstream with the vault key injected, and
#    the log row carries caller openclaw:<name>;
#  - TCP to a server bound on all host interfaces (via the test's own Docker network gateway), to
#    the container's/host loopback, to another container, and a name lookup all fail (and the same
#    connections from a normal container on that network succeed, so the probe can tell);
#  - no Docker socket, no control socket, no session bus (issue 8), no TOKFENCE_HOME, only proxy.sock in
#    /run/tokfence and ui.sock in /run/tokfence-ui; a control request through proxy.sock is not served;
#  - no "tfcanary-" anywhere in the container's environment, /proc or files.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
name="tfe-$RUN_ID"
net="tf-egress-$RUN_ID"

# The test's own Docker network, a peer container on it and a host server on all interfaces.
docker network create "$net" >/dev/null
EXTRA_CLEANUP="docker rm -f tf-peer-$RUN_ID >/dev/null 2>&1; docker network rm $net >/dev/null 2>&1; $EXTRA_CLEANUP"
gateway=$(docker network inspect "$net" -f '{{(index .IPAM.Config 0).Gateway}}')
[[ -n $gateway ]] || die "no gateway for $net"
python3 - "$WORK/host.port" <<'EOF' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0)); s.listen(16)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(1); end = time.time() + 600
while time.time() < end:
    try: c, _ = s.accept(); c.close()
    except OSError: pass
EOF
_pids_to_kill+=($!)
wait_until "test -s '$WORK/host.port'"
host_port=$(cat "$WORK/host.port")
docker run -d --name "tf-peer-$RUN_ID" --network "$net" "$TEST_IMAGE" /bin/sh -c \
  'mkdir -p /tmp/www && echo peer > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www' >/dev/null
peer_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "tf-peer-$RUN_ID")
[[ -n $peer_ip ]] || die "peer container has no address"

# Positive controls: from a normal container on the network, the same targets are reachable.
control=$(docker run --rm --network "$net" "$TEST_IMAGE" /bin/sh -c \
  "/probe connect $gateway $host_port; /probe connect $peer_ip 8080" 2>&1) || die "positive control failed: $control"
expect_contains "$control" "ok: connect $gateway:$host_port"

# The proxy's host port is known only once the daemon runs: start it first.
start_daemon

# The checks inside the launched container. The canary prefix is assembled at run time so the
# script's own command line does not contain it.
# wget -Y off: busybox wget ignores no_proxy, and through the HTTP proxy tokfence announces it
# turns a POST into a GET with a body (busybox 1.35); test_egress_launch_allowed covers the proxy.
script=$(cat <<EOF
$CONTAINER_KEY_SH
wget -Y off -q -O - --header 'Content-Type: application/json' --header "Authorization: Bearer \$TFKEY" \
  --post-data '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' \
  http://127.0.0.1:9471/openai/v1/chat/completions; rc=\$?; echo; echo "R proxy_chat \$rc"
/probe connect $gateway $host_port; echo "R host_all_interfaces \$?"
/probe connect 127.0.0.1 $FAKE_PORT; echo "R host_loopback_fake_upstream \$?"
/probe connect 127.0.0.1 $PROXY_PORT; echo "R host_loopback_proxy \$?"
/probe connect $peer_ip 8080; echo "R other_container \$?"
/probe resolve example.com; echo "R dns \$?"
/probe connect-unix /var/run/docker.sock; echo "R docker_socket \$?"
/probe connect-unix /run/docker.sock; echo "R docker_socket_run \$?"
/probe connect-unix $TOKFENCE_HOME/control.sock; echo "R control_socket \$?"
/probe read $TOKFENCE_HOME/vault.enc; echo "R vault_file \$?"
/probe connect-unix $TOKFENCE_HOME/tokfence.sock; echo "R main_proxy_socket \$?"
/probe dbus-session unix:path=/run/user/$(id -u)/bus; echo "R session_bus_run_user \$?"
/probe dbus-session ${DBUS_SESSION_BUS_ADDRESS:-unix:path=/run/user/$(id -u)/bus}; echo "R session_bus_env \$?"
test -e $TOKFENCE_HOME; echo "R home_exists \$?"
echo "SOCKETS \$(ls /run/tokfence | tr '\n' ' ')"
echo "UI_SOCKETS \$(ls /run/tokfence-ui | tr '\n' ' ')"
echo BEGIN_CTL; /probe unix-send /run/tokfence/proxy.sock '{"op":"ping"}\n'; echo "R control_via_proxy_sock \$?"
/probe env | grep -E '^(TOKFENCE_|DOCKER_|OPENAI_|ANTHROPIC_|SSH_AUTH|DBUS_)'; echo "R env_vars \$?"
printf 'tfcan%sary-' '' > /tmp/pattern
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat "\$f" 2>/dev/null; echo; done > /tmp/procdump
grep -c -F -f /tmp/pattern /tmp/procdump; echo "R canary_in_proc \$?"
hits=0
for f in \$(find / \( -path /proc -o -path /sys -o -path /dev -o -path /tmp/pattern \) -prune -o -type f -print 2>/dev/null); do
  if grep -q -F -f /tmp/pattern "\$f" 2>/dev/null; then echo "HIT \$f"; hits=1; fi
done
echo "FILES_SCANNED \$(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -type f -print 2>/dev/null | wc -l)"
echo "R canary_in_files \$hits"
id
EOF
)

tf launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /bin/sh -c "$script"
log "launch exited $TF_RC"
out=$TF_OUT
result() { sed -n "s/^R $1 \([0-9]*\)\$/\1/p" <<<"$out" | tail -1; }

expect_eq "$(result proxy_chat)" 0 "proxied chat request: $out"
expect_contains "$out" '"content":"pong"'
for check in host_all_interfaces host_loopback_fake_upstream host_loopback_proxy other_container dns docker_socket \
  docker_socket_run control_socket vault_file main_proxy_socket session_bus_run_user session_bus_env; do
  expect_eq "$(result $check)" 1 "$check must fail from the container"
done
expect_eq "$(result home_exists)" 1 "TOKFENCE_HOME must not exist in the container"
sockets_line=$(grep '^SOCKETS' <<<"$out")
# Beside it only the local CA files the container trusts (docs/EGRESS.md).
expect_eq "$sockets_line" "SOCKETS egress-ca-bundle.pem egress-ca.pem proxy.sock " \
  "only the launch's proxy socket and the CA files in /run/tokfence"
expect_eq "$(grep '^UI_SOCKETS' <<<"$out")" "UI_SOCKETS ui.sock " "only the dashboard socket in /run/tokfence-ui"
ctl=$(sed -n '/^BEGIN_CTL/,/^R control_via_proxy_sock/p' <<<"$out")
[[ -n $ctl ]] || die "control request check did not run"
expect_not_contains "$ctl" '"ok":true' "control request through proxy.sock"
expect_not_contains "$ctl" '"ok": true' "control request through proxy.sock"
expect_eq "$(result env_vars)" 1 "no tokfence, docker, key or agent variables in the environment"
expect_eq "$(result canary_in_proc)" 1 "canary in /proc"
expect_eq "$(result canary_in_files)" 0 "canary in the container's files: $(grep '^HIT' <<<"$out" || true)"
scanned=$(sed -n 's/^FILES_SCANNED //p' <<<"$out")
((scanned >= 8)) || die "file scan saw too few files ($scanned): the scan did not run"
# As root an id no host account has (docs/LAUNCH.md), else ours.
ids=$(launch_default_ids)
expect_contains "$out" "uid=${ids%%:*}"

# The upstream saw the real key; the log row names the launch.
auth=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path == "/v1/chat/completions")][-1].headers.authorization')
[[ $auth == "Bearer $CANARY" ]] || die "upstream did not get the vault key (got a different authorization)"
tf_ok log --json
row=$(jq -c '[.[] | select(.path == "/openai/v1/chat/completions")][-1]' <<<"$TF_OUT")
expect_eq "$(jq -r .caller_name <<<"$row")" "openclaw:$name" "caller of the launch's request"
expect_eq "$(jq -r .status <<<"$row")" 200
(($(jq -r '.input_tokens // 0' <<<"$row") > 0)) || die "no input tokens logged: $row"

expect_nothing_left "$name"
