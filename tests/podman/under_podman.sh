#!/usr/bin/env bash
# Runs one launch test script against Podman instead of Docker: starts a rootful
# `podman system service` with its own storage, run root, tmpdir and socket in a fresh directory, points
# DOCKER_HOST at it (tokfence's launch and the test's own `docker` commands then both talk to
# Podman's Docker-compatible API), runs the script, and removes everything it created.
#
#   tests/podman/under_podman.sh TEST_SCRIPT
# Exit 77 (reported as skipped) when podman is not installed or we are not root: rootless Podman
# needs subordinate uid ranges and is a separate case (docs/LAUNCH.md).
set -uo pipefail
script=${1:?usage: under_podman.sh TEST_SCRIPT}
command -v podman >/dev/null 2>&1 || { echo "TOKFENCE-SKIP: podman is not installed (scripts/setup --test installs it)"; exit 77; }
[[ $(id -u) -eq 0 ]] || { echo "TOKFENCE-SKIP: rootful Podman needs root"; exit 77; }

state=$(mktemp -d /tmp/tokfence-podman.XXXXXX)
# On this machine kind every Podman container fails to start ("error setting rlimit type 7")
# until the default ulimits are switched off, and crun fails on the hybrid cgroup layout
# (../shared/FIELD-NOTES.md): runc, no default ulimits.
cat >"$state/containers.conf" <<CONF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
CONF
# Its own --tmpdir too: rootful Podman's default is the host-wide /run/libpod, where conmon writes
# each container's exit code, and the `system reset` below removes the tmpdir. With a shared one, a
# test ending while another still runs deleted the other's exit files and its container "exited
# with status -1" (seen once in a full CI run; reproduced with two instances by hand).
podman_cmd=(podman --root "$state/storage" --runroot "$state/run" --tmpdir "$state/tmp" --cgroup-manager cgroupfs)
CONTAINERS_CONF=$state/containers.conf "${podman_cmd[@]}" system service --time=0 "unix://$state/podman.sock" \
  >"$state/service.log" 2>&1 &
service=$!
cleanup() {
  CONTAINERS_CONF=$state/containers.conf "${podman_cmd[@]}" rm -af >/dev/null 2>&1
  kill "$service" 2>/dev/null; wait "$service" 2>/dev/null
  CONTAINERS_CONF=$state/containers.conf "${podman_cmd[@]}" system reset -f >/dev/null 2>&1
  umount -R "$state/storage" 2>/dev/null
  rm -rf "$state"
}
trap cleanup EXIT
export DOCKER_HOST=unix://$state/podman.sock
for _ in $(seq 1 100); do
  docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
  sleep 0.2
done
server=$(docker version --format '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null)
if [[ $server != *Podman* ]]; then
  echo "under_podman: the Podman service did not answer at $DOCKER_HOST (got: '$server'); its log:" >&2
  tail -20 "$state/service.log" >&2
  exit 1
fi
echo "under_podman: $(docker version --format '{{.Server.Version}}') at $DOCKER_HOST" >&2
bash "$script"
