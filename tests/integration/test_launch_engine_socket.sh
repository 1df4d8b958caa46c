#!/usr/bin/env bash
# Which engine `launch` talks to: DOCKER_HOST (unix://) when set, else `[launch] engine_socket`
# from config.toml (Podman's `podman system service` socket, say), else /var/run/docker.sock.
# A relative engine_socket is refused with its position; a socket nothing answers on is named.
source "$(dirname "$0")/lib.sh"
[[ -S /var/run/docker.sock ]] && docker info >/dev/null 2>&1 || skip "no Docker engine answers on /var/run/docker.sock"

unset DOCKER_HOST
mkdir -p -m 700 "$TOKFENCE_HOME"
printf '[launch]\nengine_socket = "%s"\n' "$WORK/nothing-here.sock" >"$TOKFENCE_HOME/config.toml"
tf launch image list
expect_eq "$TF_RC" 1 "launch image list against a configured socket nothing answers on"
expect_contains "$TF_ERR" "$WORK/nothing-here.sock"

# DOCKER_HOST wins over the config.
DOCKER_HOST=unix:///var/run/docker.sock tf launch image list
expect_eq "$TF_RC" 0 "DOCKER_HOST over [launch] engine_socket: $TF_ERR"

# The configured socket is the one used: the real engine through a path of our own.
ln -s /var/run/docker.sock "$WORK/engine.sock"
sed -i "s|engine_socket = .*|engine_socket = \"$WORK/engine.sock\"|" "$TOKFENCE_HOME/config.toml"
tf launch image list
expect_eq "$TF_RC" 0 "launch image list through [launch] engine_socket: $TF_ERR"

# A relative path: refused with the file position, nothing else done.
sed -i 's|engine_socket = .*|engine_socket = "run/podman.sock"|' "$TOKFENCE_HOME/config.toml"
tf launch image list
expect_eq "$TF_RC" 1 "relative engine_socket"
expect_contains "$TF_ERR" "launch.engine_socket must be an absolute path"
log "ok"
