#!/usr/bin/env bash
# `tokfence log -f` prints rows committed after it started, live, and stops cleanly on SIGINT.
# Rows are written by another process (the sqlite3 CLI, in the documented schema) while the
# follower runs; that is exactly the daemon's situation (WAL, a separate writer process).
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI not installed (scripts/setup installs it)"

mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
DB="$TOKFENCE_HOME/tokfence.db"
now=$(($(date +%s) * 1000))

insert() {  # id provider model
  sqlite3 "$DB" "INSERT INTO requests(id, ts_ms, provider, model, method, path, status, streaming, input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, cost_pico, latency_ms, ttfb_ms, caller_pid, caller_name, error)
    VALUES ('$1', $now, '$2', '$3', 'POST', '/v1/chat/completions', 200, 0, 11, 7, 0, 0, 1000, 5.0, 1.0, 1, 'test', '')"
}

# The follower starts before the database exists (daemon never started yet) and waits for it.
"$TOKFENCE_BIN" log -f --json >"$WORK/out/follow1.jsonl" 2>"$WORK/out/follow1.err" &
follower=$!
_pids_to_kill+=($follower)
sleep 0.5
sqlite3 "$DB" <<'SQL'
CREATE TABLE requests(id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT, model TEXT, method TEXT,
  path TEXT, status INTEGER, streaming INTEGER, input_tokens INTEGER, output_tokens INTEGER,
  cache_read_tokens INTEGER, cache_write_tokens INTEGER, cost_pico INTEGER, latency_ms REAL, ttfb_ms REAL,
  caller_pid INTEGER, caller_name TEXT, error TEXT);
SQL
sqlite3 "$DB" 'PRAGMA journal_mode=WAL' >/dev/null
insert req_00000000000000f1 openai gpt-4o
wait_until "grep -q req_00000000000000f1 '$WORK/out/follow1.jsonl'" 20
insert req_00000000000000f2 anthropic claude-haiku-4-5
wait_until "grep -q req_00000000000000f2 '$WORK/out/follow1.jsonl'" 20
kill -INT $follower
rc=0
wait $follower || rc=$?
expect_eq "$rc" 0 "log -f exits 0 on SIGINT"
expect_eq "$(wc -l <"$WORK/out/follow1.jsonl")" 2 "one JSON object per line, each row once"
expect_eq "$(jq -r .model "$WORK/out/follow1.jsonl" | tr '\n' ' ')" "gpt-4o claude-haiku-4-5 "
expect_eq "$(jq -r .output_tokens "$WORK/out/follow1.jsonl" | head -1)" 7

# A second follower with a provider filter: shows the last rows, then only new anthropic rows.
"$TOKFENCE_BIN" log -f -n 1 --provider anthropic >"$WORK/out/follow2.txt" 2>"$WORK/out/follow2.err" &
follower=$!
_pids_to_kill+=($follower)
wait_until "grep -q req_00000000000000f2 '$WORK/out/follow2.txt'" 20
insert req_00000000000000f3 openai gpt-4o-mini
insert req_00000000000000f4 anthropic claude-sonnet-4-5
wait_until "grep -q req_00000000000000f4 '$WORK/out/follow2.txt'" 20
kill -INT $follower
rc=0
wait $follower || rc=$?
expect_eq "$rc" 0 "log -f exits 0 on SIGINT"
out=$(cat "$WORK/out/follow2.txt")
expect_contains "$(head -1 <<<"$out")" "TIME"
expect_not_contains "$out" "req_00000000000000f3" "--provider filters followed rows"
expect_not_contains "$out" "req_00000000000000f1" "-n 1 shows only the newest matching row first"
expect_eq "$(grep -c req_00000000000000f2 <<<"$out")" 1 "no row printed twice"
