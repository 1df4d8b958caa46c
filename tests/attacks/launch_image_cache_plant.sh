#!/usr/bin/env bash
# Escape class: another local user plants the OpenClaw image build cache. `launch image build` (and
# `launch` when the pinned image is absent) runs <cache>/context/node/bin/node --version and
# <cache>/context/openclaw/bin/openclaw --version on the host, as the user who runs tokfence
# (root, for a rootful engine), and COPYs the cache into the image. The cache's owner is never
# checked, and with HOME unset (a system service, cron, `env -i`) the default cache is
# /tmp/.cache/tokfence/openclaw-image: any local user can create it first.
#   1. a cache directory owned by another uid (as /tmp's would be) must be refused, its node
#      never run;
#   2. with HOME unset, the default cache must not be below /tmp.
# No network: npm and debootstrap are stubs that fail; nothing is pulled.
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (to plant as another uid)"
command -v setpriv >/dev/null || skip "setpriv missing"
docker info >/dev/null 2>&1 || skip "no Docker engine"
ATTACKER=65534
TAG="localhost/tokfence-attack-cache:$(random_token 8 | tr 'A-Z' 'a-z')"
STUBS="$WORK/stubs"
mkdir -p "$STUBS" "$TOKFENCE_HOME"
chmod 700 "$TOKFENCE_HOME"
for tool in npm debootstrap; do printf '#!/bin/sh\necho stub %s >&2\nexit 1\n' "$tool" >"$STUBS/$tool"; chmod 755 "$STUBS/$tool"; done
STUB_PATH="$STUBS:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
chmod 755 "$WORK"

# The attacker's cache: a world-writable directory of theirs, as /tmp/.cache would be.
SHARED="$WORK/shared"
MARK="$WORK/shared/ran-as"
setpriv --reuid $ATTACKER --regid $ATTACKER --clear-groups true || skip "cannot switch to uid $ATTACKER"
mkdir -m 1777 "$SHARED"
setpriv --reuid $ATTACKER --regid $ATTACKER --clear-groups sh -c "
  umask 0; mkdir -p '$SHARED/cache/context/node/bin'
  printf '#!/bin/sh\nid -u >\"%s\"\necho v0.0.0\nexit 1\n' '$MARK' >'$SHARED/cache/context/node/bin/node'
  chmod 755 '$SHARED/cache/context/node/bin/node'"

log "1. a build cache owned by uid $ATTACKER: its node must not run as $(id -u)"
_out_seq=$((_out_seq + 1))
set +e
env PATH="$STUB_PATH" timeout 120 "$TOKFENCE_BIN" launch image build --tag "$TAG" --cache "$SHARED/cache" \
  >"$WORK/out/$_out_seq.stdout" 2>"$WORK/out/$_out_seq.stderr" </dev/null
rc=$?
set -e
log "build exited $rc: $(tail -3 "$WORK/out/$_out_seq.stderr" | tr '\n' ' ')"
[[ $rc -ne 0 ]] || die "the build with stub npm succeeded?"
if [[ -e $MARK ]]; then
  die "the planted node ran on the host as uid $(cat "$MARK") (cache owned by uid $ATTACKER)"
fi

log "2. HOME unset: the default cache is not below /tmp"
if [[ -e /tmp/.cache ]]; then
  log "part 2 skipped: /tmp/.cache exists already (not ours to touch)"
else
  _out_seq=$((_out_seq + 1))
  set +e
  env -u HOME -u XDG_CACHE_HOME -u TOKFENCE_IMAGE_CACHE PATH="$STUB_PATH" timeout 120 "$TOKFENCE_BIN" \
    launch image build --tag "$TAG" >"$WORK/out/$_out_seq.stdout" 2>"$WORK/out/$_out_seq.stderr" </dev/null
  set -e
  made=""
  [[ -e /tmp/.cache/tokfence ]] && made=1
  # Only what this test made: /tmp/.cache did not exist before.
  rm -rf /tmp/.cache
  log "build said: $(tail -3 "$WORK/out/$_out_seq.stderr" | tr '\n' ' ')"
  [[ -z $made ]] || die "with HOME unset the image cache went to /tmp/.cache/tokfence (any local user can plant it first)"
  expect_not_contains "$(cat "$WORK/out/$_out_seq.stderr")" "/tmp/.cache" "default cache below /tmp with HOME unset"
fi
docker rmi "$TAG" >/dev/null 2>&1 || true
