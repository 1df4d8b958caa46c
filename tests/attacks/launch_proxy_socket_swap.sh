#!/usr/bin/env bash
# Escape class: the container tampers with the directory of its proxy socket: unlinks or replaces
# proxy.sock (then the daemon, restoring or closing it by path, or a host process connecting to it,
# acts on whatever the container put there), plants files, links or directories beside it, or
# changes its mode. The proxy socket's directory is the host's and mounted read-only: every attempt
# fails with "Read-only file system", as the container's user and as root inside the container, and
# the proxy keeps working.
#
# Unprotected set-up first: the same script in a container given that directory the way launch used
# to (read-write, owned by the container user) DOES remove and replace the socket.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfp-$RUN_ID"

# Every tampering step prints "T <step> <exit status>"; 0 = the tampering worked.
tamper=$(cat <<'EOF'
d=$1
rm -f $d/proxy.sock; echo "T unlink $?"
mv $d/proxy.sock $d/moved.sock; echo "T rename $?"
ln -s /var/run/docker.sock $d/evil.sock; echo "T symlink $?"
touch $d/planted; echo "T create $?"
mkdir $d/subdir; echo "T mkdir $?"
chmod 0777 $d; echo "T chmod_dir $?"
chmod 0600 $d/proxy.sock; echo "T chmod_sock $?"
EOF
)
results() { sed -n 's/^T \([a-z_]*\) \([0-9]*\)$/\1=\2/p' <<<"$1" | tr '\n' ' '; }

# --- unprotected: the old layout (a read-write directory the container user owns) gives way
old_dir="$WORK/old-layout"
mkdir -p "$old_dir"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$old_dir/proxy.sock"
chown -R 1000:1000 "$old_dir"
out=$(docker run --rm --network none --user 1000:1000 --cap-drop ALL -v "$old_dir:/run/tokfence" "$TEST_IMAGE" \
  /bin/sh -c "$tamper" _ /run/tokfence 2>&1) || true
log "unprotected: $(results "$out")"
expect_contains "$out" "T unlink 0" "unprotected set-up: the container removes proxy.sock"
expect_contains "$out" "T symlink 0" "unprotected set-up: the container plants a symlink"

# --- tokfence launch
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach -- /bin/sleep 600
[[ $TF_RC -eq 0 ]] || die "detached launch failed: $TF_ERR"
proxy_dir=$(launch_proxy_dir "$name")
[[ -S $proxy_dir/proxy.sock ]] || die "no proxy.sock in $proxy_dir"
expect_eq "$(stat -c '%u %a' "$proxy_dir")" "$(id -u) 755" "proxy directory owner and mode on the host"
inode_before=$(stat -c %i "$proxy_dir/proxy.sock")

chat() { container_chat "$name"; }
expect_contains "$(chat)" '"content":"pong"' "proxy before the tampering"

for user in "$(launch_container_user "$name")" 0; do
  out=$(docker exec -u "$user" "$name" /bin/sh -c "$tamper" _ /run/tokfence 2>&1) || true
  log "launch, as uid $user: $(results "$out")"
  for step in unlink rename symlink create mkdir chmod_dir chmod_sock; do
    [[ $out == *"T $step "* ]] || die "step $step did not run (uid $user): $out"
    expect_not_contains "$out" "T $step 0" "tampering step $step as uid $user"
  done
  expect_contains "$out" "Read-only file system" "refusal reason (uid $user)"
done

# The daemon's socket and the local CA's certificate (alone and in a bundle) the container trusts.
expect_eq "$(ls -A "$proxy_dir" | tr '\n' ' ')" "egress-ca-bundle.pem egress-ca.pem proxy.sock " \
  "only the socket and the CA files in the proxy directory"
expect_eq "$(stat -c %i "$proxy_dir/proxy.sock")" "$inode_before" "proxy.sock is the daemon's own"
expect_eq "$(stat -c %a "$proxy_dir")" 755 "proxy directory mode"
expect_contains "$(chat)" '"content":"pong"' "proxy after the tampering"

tf_ok launch stop --name "$name"
expect_nothing_left "$name"
