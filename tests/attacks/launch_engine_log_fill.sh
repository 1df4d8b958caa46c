#!/usr/bin/env bash
# Escape class (review 15b L3): starving the host. What a launch's container prints goes to the
# engine's log file on the host's disk, kept until the container is removed; launch set no
# LogConfig, so a container printing without end filled the disk the request log lives on (64 MiB
# in the review, as much as it liked in principle). Expected: the engine keeps at most 3 files of
# 10 MB (json-file max-size/max-file), and `launch logs` still shows the newest output.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfl-fill-$RUN_ID"
# 48 MiB in 8 KiB lines (the driver's entries), then a marker.
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --detach -- /bin/sh -c \
  'sleep 3; head -c 50331648 /dev/zero | tr "\0" a | fold -w 8192; echo; echo FILL-DONE; sleep 600'
[[ $TF_RC -eq 0 ]] || die "launch: $TF_ERR"
wait_until "docker logs --tail 1 '$name' 2>/dev/null | grep -q FILL-DONE" 120 || die "the container did not finish printing"
logpath=$(docker inspect -f '{{.LogPath}}' "$name")
total=$(cat "$logpath"* 2>/dev/null | wc -c)
log "engine log: $logpath*: $total bytes; LogConfig $(docker inspect -f '{{json .HostConfig.LogConfig}}' "$name")"
((total > 0)) || die "no engine log found at $logpath"
((total <= 36 * 1024 * 1024)) || die "the container put $total bytes of output into the host's $logpath*"
tf_ok launch logs --name "$name" --tail 1
expect_contains "$TF_OUT" FILL-DONE "launch logs shows the newest output"
tf_ok launch stop --name "$name"
expect_nothing_left "$name"
