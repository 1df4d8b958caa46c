# Shared set-up for integration tests. Source it first thing:  source "$(dirname "$0")/lib.sh"
#
# Every test gets its own work dir ($WORK) under $TEST_ARTIFACTS, its own TOKFENCE_HOME, a fresh
# random canary key ($CANARY) and passphrase. On exit, every file under $WORK (except the
# encrypted vault) and every captured output is scanned for the canary: a hit fails the test.
# Exit code 77 means "skipped: needs something absent" (ctest reports it as skipped).
set -euo pipefail

: "${TOKFENCE_BIN:?run through ctest}" "${TEST_ARTIFACTS:?run through ctest}"
TEST_NAME=$(basename "$0" .sh)
WORK="$TEST_ARTIFACTS/$TEST_NAME"
rm -rf "$WORK"
mkdir -p "$WORK/out"
export TOKFENCE_HOME="$WORK/home"
# Keep the tests away from the user's real keyring unless a test asks for it.
export TOKFENCE_TEST_BACKEND=${TOKFENCE_TEST_BACKEND:-file}
random_token() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-32}"; }
CANARY="tfcanary-$(random_token 40)"
export TOKFENCE_VAULT_PASSPHRASE="pass-$(random_token 20)"
_pids_to_kill=()
_out_seq=0

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }
die() { printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }
skip() { printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*" >&2; exit 77; }

# Sets CHROMIUM (Debian's, or $CHROMIUM) and PUPPETEER (puppeteer-core in build/browser-test) for
# the tests that drive a real headless browser, or dies naming what is missing: the browser is part
# of the suite (scripts/setup --test installs both), so its absence is a failure, never a skip.
need_browser() {
  CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  [[ -x $CHROMIUM ]] || die "chromium not found at $CHROMIUM: run scripts/setup --test (installs Debian's chromium)"
  command -v node >/dev/null || die "node not found: run scripts/setup --test"
  PUPPETEER=""
  local dir
  for dir in "${BUILD_DIR:-}/browser-test" "$SOURCE_DIR/build/browser-test"; do
    [[ -f $dir/node_modules/puppeteer-core/package.json ]] && { PUPPETEER=$dir/node_modules/puppeteer-core; break; }
  done
  [[ -n $PUPPETEER ]] || die "puppeteer-core not installed: run scripts/setup --test (npm install into build/browser-test)"
}

# Runs tokfence; stdout+stderr are kept in $WORK/out for the canary scan, and echoed.
# Sets TF_RC, TF_OUT (stdout) and TF_ERR (stderr). Never fails by itself: check TF_RC.
tf() {
  _out_seq=$((_out_seq + 1))
  local o="$WORK/out/$_out_seq.stdout" e="$WORK/out/$_out_seq.stderr"
  set +e
  "$TOKFENCE_BIN" "$@" >"$o" 2>"$e" </dev/null
  TF_RC=$?
  set -e
  TF_OUT=$(cat "$o")
  TF_ERR=$(cat "$e")
}
# Like tf, with stdin from the given string.
tf_in() {
  local input=$1
  shift
  _out_seq=$((_out_seq + 1))
  local o="$WORK/out/$_out_seq.stdout" e="$WORK/out/$_out_seq.stderr"
  set +e
  printf '%s' "$input" | "$TOKFENCE_BIN" "$@" >"$o" 2>"$e"
  TF_RC=$?
  set -e
  TF_OUT=$(cat "$o")
  TF_ERR=$(cat "$e")
}
# tf, and die unless it exited 0.
tf_ok() {
  tf "$@"
  [[ $TF_RC -eq 0 ]] || die "tokfence $* exited $TF_RC: $TF_ERR"
}

# add_canary_key PROVIDER: $CANARY becomes PROVIDER's key in the vault (read from stdin, as a user
# pipes one in); the test fails if that does not work.
add_canary_key() {
  tf_in "$CANARY" vault add "$1" -
  [[ $TF_RC -eq 0 ]] || die "vault add $1 failed: $TF_ERR"
}

expect_eq() { [[ "$1" == "$2" ]] || die "${3:-values differ}: expected '$2', got '$1'"; }
expect_contains() { [[ "$1" == *"$2"* ]] || die "${3:-missing text}: '$2' not in: $1"; }
expect_not_contains() { [[ "$1" != *"$2"* ]] || die "${3:-unexpected text}: '$2' found in: $1"; }

# Waits until a command succeeds (up to $2 seconds, default 10).
wait_until() {
  local cmd=$1 limit=${2:-10} i
  for ((i = 0; i < limit * 20; i++)); do
    eval "$cmd" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "timed out waiting for: $cmd"
}

# Starts the fake provider API on a free loopback port: sets FAKE_PORT and FAKE_URL.
start_fake_upstream() {
  local port_file="$WORK/fake.port"
  rm -f "$port_file"
  "$FAKE_UPSTREAM_BIN" --port 0 --port-file "$port_file" "$@" >"$WORK/fake_upstream.log" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -s '$port_file'"
  FAKE_PORT=$(cat "$port_file")
  FAKE_URL="http://127.0.0.1:$FAKE_PORT"
}

# One JSON line to the daemon's control socket; prints the reply line. Connects through an O_PATH
# alias of the socket's directory, since a test's path may exceed sun_path's 108 bytes.
ctl() {
  /usr/bin/python3 - "$TOKFENCE_HOME/control.sock" "$1" <<'PY'
import os, socket, sys
path, request = sys.argv[1], sys.argv[2]
d = os.open(os.path.dirname(path), os.O_PATH)
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(f"/proc/self/fd/{d}/{os.path.basename(path)}")
s.sendall(request.encode() + b"\n")
print(s.makefile().readline().strip())
PY
}

# Writes config.toml pointing the main providers at the fake upstream, daemon on port 0.
# Extra TOML lines may be passed as arguments.
write_test_config() {
  mkdir -p "$TOKFENCE_HOME"
  chmod 700 "$TOKFENCE_HOME"
  {
    printf '[daemon]\nport = 0\n\n[vault]\nbackend = "%s"\n\n' "$TOKFENCE_TEST_BACKEND"
    # Most scenarios test something other than ImmuneFence on the main listener and send a dummy
    # key; the immune_* tests set TOKFENCE_TEST_REQUIRE_TOKEN=true (the product's default).
    printf '[immunefence]\nrequire_token = %s\n\n' "${TOKFENCE_TEST_REQUIRE_TOKEN:-false}"
    for p in openai anthropic google mistral groq; do
      printf '[providers.%s]\nupstream = "%s"\n\n' "$p" "$FAKE_URL"
    done
    printf '%s\n' "$@"
  } >"$TOKFENCE_HOME/config.toml"
}

# Starts the daemon detached; sets PROXY_URL (http://127.0.0.1:<port>) and PROXY_SOCKET.
start_daemon() {
  tf start -d
  [[ $TF_RC -eq 0 ]] || die "tokfence start -d failed ($TF_RC): $TF_ERR"
  wait_until "test -s '$TOKFENCE_HOME/daemon.json'"
  PROXY_PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
  PROXY_URL="http://127.0.0.1:$PROXY_PORT"
  PROXY_SOCKET=$(jq -r .proxy_socket "$TOKFENCE_HOME/daemon.json")
  wait_until "curl -fsS '$PROXY_URL/__tokfence/health'"
}

stop_daemon() {
  [[ -f "$TOKFENCE_HOME/daemon.json" ]] || return 0
  "$TOKFENCE_BIN" stop >>"$WORK/out/stop.log" 2>&1 || true
}

# Fails if the canary appears in any artifact except the encrypted vault. Also checks the
# daemon's log and every captured output.
scan_for_canary() {
  local hits
  hits=$(grep -rlaF -- "$CANARY" "$WORK" 2>/dev/null | grep -v -E '/vault\.enc(\.|$)' || true)
  if [[ -n "$hits" ]]; then
    printf '[%s] FAIL: canary key found in:\n%s\n' "$TEST_NAME" "$hits" >&2
    return 1
  fi
}

_cleanup() {
  local rc=$?
  stop_daemon
  local pid
  for pid in "${_pids_to_kill[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${_pids_to_kill[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n "${EXTRA_CLEANUP:-}" ]] && eval "$EXTRA_CLEANUP" || true
  if ! scan_for_canary; then rc=1; fi
  if [[ $rc -eq 0 ]]; then log "passed"; fi
  exit $rc
}
trap _cleanup EXIT
