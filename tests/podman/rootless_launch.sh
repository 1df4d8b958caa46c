#!/usr/bin/env bash
# tokfence launch on rootless Podman, as most Podman users run it: an unprivileged user, its own
# `podman system service`, DOCKER_HOST at that socket. Rootless Podman maps container uids to the
# user's subordinate uids, so a container user other than root cannot use the launch's socket
# directory (the relay cannot create ui.sock) unless the container asks for UsernsMode keep-id,
# which tokfence does when the engine's socket is the caller's own. Without it this test fails
# (the container exits 1: "listen: unix:/run/tokfence-ui/ui.sock ...: Permission denied").
# Inside the container: the user is the caller's uid, a chat request through 127.0.0.1:9471
# reaches the fake upstream with the key injected, nothing else is reachable, and what the
# container writes in its state home belongs to the caller on the host.
#
# Needs root (to make the test user), podman and newuidmap (uidmap); skipped otherwise. The user
# `tokfence-rootless` is created once (useradd assigns its subordinate ids) and kept.
source "$(dirname "$0")/../integration/lib.sh"
command -v podman >/dev/null 2>&1 || skip "podman is not installed (scripts/setup --test installs it)"
command -v newuidmap >/dev/null 2>&1 || skip "newuidmap is not installed (Debian: uidmap)"
[[ $(id -u) -eq 0 ]] || skip "making the rootless test user needs root"
docker info >/dev/null 2>&1 || die "no Docker engine answers: the probe image is built with Docker"
PROBE_BIN="$BUILD_DIR/bin/tokfence-probe"
image=$("$SOURCE_DIR/scripts/build-test-image" "$PROBE_BIN") || die "could not build the test image"

user=tokfence-rootless
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin "$user" || die "useradd $user failed"
grep -q "^$user:" /etc/subuid || usermod --add-subuids 300000-365535 --add-subgids 300000-365535 "$user"
uid=$(id -u "$user") gid=$(id -g "$user")

# Everything the user touches lives in the test's work dir, which becomes the user's.
start_fake_upstream
write_test_config
# Podman refuses a run root longer than 50 characters: the runtime dir is a short one in /tmp.
runtime=$(mktemp -d /tmp/tf-rootless.XXXXXX)
mkdir -p "$WORK/storage"
chown "$uid:$gid" "$runtime"
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
  >"$WORK/containers.conf"
chown -R "$uid:$gid" "$WORK"
chmod 755 "$TEST_ARTIFACTS"
as_user() {
  setpriv --reuid="$uid" --regid="$gid" --init-groups env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$WORK" \
    XDG_RUNTIME_DIR="$runtime" CONTAINERS_CONF="$WORK/containers.conf" DOCKER_HOST="unix://$runtime/podman.sock" \
    TOKFENCE_HOME="$TOKFENCE_HOME" TOKFENCE_VAULT_PASSPHRASE="$TOKFENCE_VAULT_PASSPHRASE" \
    TOKFENCE_TEST_BACKEND="$TOKFENCE_TEST_BACKEND" "$@"
}
podman_user=(podman --root "$WORK/storage" --runroot "$runtime/containers")
as_user "${podman_user[@]}" system service --time=0 "unix://$runtime/podman.sock" >"$WORK/podman-service.log" 2>&1 &
_pids_to_kill+=($!)
EXTRA_CLEANUP="as_user $TOKFENCE_BIN stop >/dev/null 2>&1; as_user ${podman_user[*]} rm -af >/dev/null 2>&1; as_user ${podman_user[*]} system reset -f >/dev/null 2>&1; rm -rf $runtime"
wait_until "test -S '$runtime/podman.sock'" 20
docker save "$image" | as_user "${podman_user[@]}" load >/dev/null || die "podman load of $image failed"
printf '%s' "$CANARY" | as_user "$TOKFENCE_BIN" vault add openai - >"$WORK/out/vault.log" 2>&1 || die "vault add failed: $(cat "$WORK/out/vault.log")"

script=$(cat <<EOF
echo "R uid \$(id -u):\$(id -g)"
echo "R whoami \$(whoami 2>&1)"
# Busybox wget has no no_proxy: keep it off the egress proxy the launch may announce.
TFKEY=\$(sed -n 's/.*"apiKey": "\([^"]*\)".*/\1/p' /tokfence/config/openclaw.json | head -1)
env -u http_proxy -u HTTP_PROXY wget -q -O - --header 'Content-Type: application/json' --header "Authorization: Bearer \$TFKEY" \
  --post-data '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}' \
  http://127.0.0.1:9471/openai/v1/chat/completions >/dev/null; echo "R proxy_chat \$?"
/probe connect 127.0.0.1 $FAKE_PORT >/dev/null 2>&1; echo "R host_loopback \$?"
echo written >/tokfence/home/rootless-marker; echo "R write_state \$?"
EOF
)
set +e
as_user "$TOKFENCE_BIN" launch --image "localhost/$image" --no-pull --name "tf-rootless-$(random_token 6 | tr A-Z a-z)" \
  -- /bin/sh -c "$script" >"$WORK/out/launch.stdout" 2>"$WORK/out/launch.stderr"
rc=$?
set -e
out=$(cat "$WORK/out/launch.stdout" "$WORK/out/launch.stderr")
expect_eq "$rc" 0 "rootless launch exit status (output: $out)"
expect_contains "$out" "R uid $uid:$gid" "the container user is the caller (keep-id)"
expect_contains "$out" "R whoami $([[ $uid == 1000 ]] && echo node || echo openclaw)" "the container user has an account (launch's /etc/passwd)"
expect_contains "$out" "R proxy_chat 0" "chat through the proxy from a rootless container"
expect_contains "$out" "R host_loopback 1" "host loopback unreachable from the container"
expect_contains "$out" "R write_state 0" "the container writes its state home"
marker=$(find "$TOKFENCE_HOME/openclaw" -name rootless-marker -printf '%u\n' | head -1)
expect_eq "$marker" "$user" "owner on the host of a file the container wrote"
auth=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -r '[.[] | select(.path == "/v1/chat/completions")][-1].headers.authorization')
[[ $auth == "Bearer $CANARY" ]] || die "upstream did not get the vault key (got a different authorization)"
caller=$(as_user "$TOKFENCE_BIN" log --json 2>/dev/null | jq -r '[.[] | select(.path == "/openai/v1/chat/completions")][-1].caller_name')
expect_contains "$caller" "openclaw:tf-rootless-" "caller of the rootless launch's request"
