#!/usr/bin/env bash
# scripts/setup's engine part (what `scripts/tokfence launch` runs first): when the engine does not
# answer, a user who cannot start it gets the exact command and exit 1; permission denied on the
# socket names the group to join; --no-engine skips all of it. (Installing docker.io and starting
# dockerd as root need a machine without them: the fresh-machine run, not this test.)
source "$(dirname "$0")/lib.sh"

setup=$SOURCE_DIR/scripts/setup
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env -u DOCKER_HOST HOME=/nonexistent "$@"; }
run_setup() {  # sets S_RC, S_ERR
  set +e
  S_ERR=$("$@" 2>&1 >/dev/null)
  S_RC=$?
  set -e
}
[[ -r $setup ]] && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$setup" ||
  skip "scripts/setup is not readable by an unprivileged user here"

# An engine socket nothing listens on (DOCKER_HOST): the user is told to start it or unset it.
run_setup as_nobody DOCKER_HOST=unix://$WORK/no-engine.sock "$setup"
expect_eq "$S_RC" 1 "setup with no engine answering: $S_ERR"
expect_contains "$S_ERR" "tokfence setup: no container engine answers at $WORK/no-engine.sock (DOCKER_HOST): start it, or unset DOCKER_HOST"

# --no-engine: the same situation is not setup's business.
run_setup as_nobody DOCKER_HOST=unix://$WORK/no-engine.sock "$setup" --no-engine
expect_eq "$S_RC" 0 "setup --no-engine: $S_ERR"
expect_eq "$S_ERR" ""

# The real socket, as a user outside the docker group.
if [[ -S /var/run/docker.sock && $(stat -c %a /var/run/docker.sock) != *[2367] ]]; then
  run_setup as_nobody "$setup"
  expect_eq "$S_RC" 1 "setup without access to the socket"
  expect_contains "$S_ERR" "tokfence setup: permission denied on /var/run/docker.sock: join the docker group and log in again:"
  expect_contains "$S_ERR" "sudo usermod -aG docker nobody"
fi

# As root with the engine up: quiet, exit 0.
run_setup "$setup"
expect_eq "$S_RC" 0 "setup as root: $S_ERR"
expect_eq "$S_ERR" ""

run_setup "$setup" --bogus
expect_eq "$S_RC" 2
expect_contains "$S_ERR" "unknown argument: --bogus"
log "ok"
