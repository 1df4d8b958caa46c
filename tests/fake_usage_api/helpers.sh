# Helpers for the `tokfence watch` integration tests (tests/integration/test_watch_*.sh).
# Source after lib.sh:  source "$(dirname "$0")/../fake_usage_api/helpers.sh"
: "${FAKE_USAGE_API_BIN:?run through ctest}"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI not installed (scripts/setup installs it)"

# Starts a fake usage API on a free loopback port. Sets USAGE_URL (and returns it in $1's variable
# name if given: start_fake_usage_api NAME [fake args...]).
start_fake_usage_api() {
  local name=$1
  shift
  local port_file="$WORK/usage-$name.port"
  rm -f "$port_file"
  "$FAKE_USAGE_API_BIN" --port 0 --port-file "$port_file" "$@" >"$WORK/usage-$name.log" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -s '$port_file'"
  printf -v "$name" 'http://127.0.0.1:%s' "$(cat "$port_file")"
}

# fake_post URL PATH JSON: a control call to a fake usage API.
fake_post() {
  curl -fsS --max-time 5 -X POST -H 'content-type: application/json' --data "$3" "$1$2" >/dev/null ||
    die "fake usage api control call $2 failed"
}
fake_requests() { curl -fsS --max-time 5 "$1/__fake/requests"; }

# Minimal config: file vault, daemon on port 0, providers pointed at $FAKE_URL when a fake upstream runs.
watch_config() {
  mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
  printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[notifications]\ndesktop = false\n' >"$TOKFENCE_HOME/config.toml"
}

vault_add() { # vault_add NAME KEY
  tf_in "$2" vault add "$1" -
  [[ $TF_RC -eq 0 ]] || die "vault add $1 failed: $TF_ERR"
}

WATCH_DB="$TOKFENCE_HOME/tokfence.db"
_local_seq=0
# local_row PROVIDER TS_MS STATUS INPUT OUTPUT COST_PICO|NULL: one row in the request log, in the
# schema documented in proxy/metering/request_log.hpp (what the daemon writes for a proxied request).
local_row() {
  _local_seq=$((_local_seq + 1))
  sqlite3 "$WATCH_DB" <<SQL
CREATE TABLE IF NOT EXISTS requests(id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT, model TEXT, method TEXT,
  path TEXT, status INTEGER, streaming INTEGER, input_tokens INTEGER, output_tokens INTEGER,
  cache_read_tokens INTEGER, cache_write_tokens INTEGER, cost_pico INTEGER, latency_ms REAL, ttfb_ms REAL,
  caller_pid INTEGER, caller_name TEXT, error TEXT);
INSERT INTO requests VALUES ('req_watch$(printf '%012d' $_local_seq)', $2, '$1', 'test-model', 'POST', '/v1/chat/completions',
  $3, 0, $4, $5, 0, 0, $6, 100.0, 50.0, 4242, 'test', '');
SQL
}

now_s() { date +%s; }
# A moment $1 seconds ago, in the middle of its minute, so minute buckets never split a test's usage.
ago_s() { local t=$(($(now_s) - $1)); echo $((t - t % 60 + 30)); }
