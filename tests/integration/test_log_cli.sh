#!/usr/bin/env bash
# `tokfence log` and `tokfence stats` read the request log directly (no daemon needed): rows are
# inserted here with the sqlite3 CLI in the schema documented in proxy/metering/request_log.hpp, then the
# table, JSON, filters, one-request view, grouping, cost sums (unknown never counted as $0) and
# every bad input are checked.
source "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || skip "sqlite3 CLI not installed (scripts/setup installs it)"

mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
DB="$TOKFENCE_HOME/tokfence.db"

# No database yet: nothing logged, not an error, and reading does not create the file.
tf_ok log
expect_contains "$TF_ERR" "no requests logged yet"
tf_ok log --json
expect_eq "$(jq length <<<"$TF_OUT")" 0 "empty log as JSON"
tf_ok stats --json
expect_eq "$(jq .total.requests <<<"$TF_OUT")" 0 "empty stats"
[[ ! -e "$DB" ]] || die "reading the log created $DB"

now=$(($(date +%s) * 1000))
hour=3600000
sqlite3 "$DB" <<SQL
CREATE TABLE requests(id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT, model TEXT, method TEXT,
  path TEXT, status INTEGER, streaming INTEGER, input_tokens INTEGER, output_tokens INTEGER,
  cache_read_tokens INTEGER, cache_write_tokens INTEGER, cost_pico INTEGER, latency_ms REAL, ttfb_ms REAL,
  caller_pid INTEGER, caller_name TEXT, error TEXT);
INSERT INTO requests VALUES
 ('req_00000000000000a1', $((now - 48 * hour)), 'openai', 'gpt-4o', 'POST', '/v1/chat/completions', 200, 0,
   1000, 100, 0, 0, 3500000000, 812.5, 300.25, 4242, 'python3', ''),
 ('req_00000000000000a2', $((now - 2 * hour)), 'anthropic', 'claude-sonnet-4-5', 'POST', '/v1/messages', 200, 1,
   20, 300, 5000, 1000, 9000000000, 2400.0, 120.0, 777, 'claude', ''),
 ('req_00000000000000a3', $((now - 30 * 60000)), 'openai', 'mystery-model', 'POST', '/v1/chat/completions', 200, 0,
   50, 5, 0, 0, NULL, 40.0, 30.0, 4242, 'python3', ''),
 ('req_00000000000000a4', $((now - 60000)), 'openai', 'gpt-4o', 'POST', '/v1/chat/completions', 502, 1,
   10, 2, 0, 0, 35000000, 99.0, 50.0, 0, '', 'upstream reset mid-stream');
SQL
sqlite3 "$DB" 'PRAGMA journal_mode=WAL' >/dev/null

# --- log: table ---
tf_ok log
lines=$(wc -l <<<"$TF_OUT")
expect_eq "$lines" 5 "header + 4 rows"
expect_contains "$(head -1 <<<"$TF_OUT")" "TIME"
for col in ID PROVIDER MODEL STATUS IN OUT COST LATENCY CALLER; do expect_contains "$(head -1 <<<"$TF_OUT")" "$col"; done
# Oldest first, newest last.
expect_contains "$(sed -n 2p <<<"$TF_OUT")" "req_00000000000000a1"
expect_contains "$(sed -n 5p <<<"$TF_OUT")" "req_00000000000000a4"
row3=$(grep req_00000000000000a3 <<<"$TF_OUT")
expect_contains "$row3" "unknown" "unknown cost shown as unknown"
expect_not_contains "$row3" '$0.' "unknown cost never shown as a dollar amount"
expect_contains "$(grep req_00000000000000a2 <<<"$TF_OUT")" "claude[777]"
expect_contains "$(grep req_00000000000000a2 <<<"$TF_OUT")" "5000/1000"
expect_contains "$(grep req_00000000000000a4 <<<"$TF_OUT")" "upstream reset mid-stream"

tf_ok log -n 2
expect_eq "$(wc -l <<<"$TF_OUT")" 3 "-n 2: header + the 2 newest rows"
expect_contains "$TF_OUT" "req_00000000000000a3"
expect_contains "$TF_OUT" "req_00000000000000a4"

tf_ok log --provider anthropic
expect_eq "$(wc -l <<<"$TF_OUT")" 2 "--provider anthropic"
expect_contains "$TF_OUT" "req_00000000000000a2"

tf_ok log --since 1h
expect_eq "$(wc -l <<<"$TF_OUT")" 3 "--since 1h"
expect_not_contains "$TF_OUT" "req_00000000000000a2"

tf_ok log --since "$(date -d '-1 day' +%F)"
expect_contains "$TF_OUT" "req_00000000000000a2"
expect_not_contains "$TF_OUT" "req_00000000000000a1"

tf_ok log --provider groq
expect_eq "$TF_OUT" "" "no matching rows"
expect_contains "$TF_ERR" "no requests logged that match"

# --- log: JSON ---
tf_ok log --json
expect_eq "$(jq length <<<"$TF_OUT")" 4
expect_eq "$(jq -r '.[0].id' <<<"$TF_OUT")" "req_00000000000000a1"
expect_eq "$(jq -r '.[0].cost_pico' <<<"$TF_OUT")" 3500000000
expect_eq "$(jq -r '.[0].input_tokens' <<<"$TF_OUT")" 1000
expect_eq "$(jq -r '.[0].caller_name' <<<"$TF_OUT")" "python3"
expect_eq "$(jq -r '.[1].streaming' <<<"$TF_OUT")" "true"
expect_eq "$(jq -r '.[1].cache_read_tokens' <<<"$TF_OUT")" 5000
expect_eq "$(jq -r '.[2].cost_pico' <<<"$TF_OUT")" null "unknown cost is null in JSON"
expect_eq "$(jq -r '.[2].cost_usd' <<<"$TF_OUT")" null
expect_eq "$(jq -r '.[3].error' <<<"$TF_OUT")" "upstream reset mid-stream"
expect_eq "$(jq -r '.[3].status' <<<"$TF_OUT")" 502

tf_ok log --json -n 1 --provider openai
expect_eq "$(jq -r 'length, .[0].id' <<<"$TF_OUT" | tr '\n' ' ')" "1 req_00000000000000a4 "

# --- log: one request ---
tf_ok log req_00000000000000a2
expect_contains "$TF_OUT" "claude-sonnet-4-5"
expect_contains "$TF_OUT" "POST /v1/messages"
expect_contains "$TF_OUT" "cache read 5000"
expect_contains "$TF_OUT" "streaming:"
tf_ok log req_00000000000000a2 --json
expect_eq "$(jq -r .id <<<"$TF_OUT")" "req_00000000000000a2" "one id gives one object"
expect_eq "$(jq -r .output_tokens <<<"$TF_OUT")" 300
tf_ok log req_00000000000000a3
expect_contains "$TF_OUT" "unknown (no price for this model"

# --- stats ---
tf_ok stats --json
expect_eq "$(jq .total.requests <<<"$TF_OUT")" 4 "7d covers every row"
expect_eq "$(jq .total.cost_pico <<<"$TF_OUT")" $((3500000000 + 9000000000 + 35000000))
expect_eq "$(jq .total.unknown_cost_requests <<<"$TF_OUT")" 1
expect_eq "$(jq .total.input_tokens <<<"$TF_OUT")" 1080
expect_eq "$(jq .total.output_tokens <<<"$TF_OUT")" 407
expect_eq "$(jq .total.cache_read_tokens <<<"$TF_OUT")" 5000
expect_eq "$(jq .total.cache_write_tokens <<<"$TF_OUT")" 1000
expect_eq "$(jq -r '[.groups[].model] | join(",")' <<<"$TF_OUT")" "claude-sonnet-4-5,gpt-4o,mystery-model"
expect_eq "$(jq '.groups[] | select(.model == "gpt-4o") | .requests' <<<"$TF_OUT")" 2
expect_eq "$(jq '.groups[] | select(.model == "mystery-model") | .unknown_cost_requests' <<<"$TF_OUT")" 1

tf_ok stats --by provider --period 24h --json
expect_eq "$(jq .total.requests <<<"$TF_OUT")" 3 "--period 24h drops the 2-day-old row"
expect_eq "$(jq '.groups[] | select(.provider == "openai") | .requests' <<<"$TF_OUT")" 2
expect_eq "$(jq '.groups[] | select(.provider == "openai") | .cost_pico' <<<"$TF_OUT")" 35000000

tf_ok stats --by caller --json
expect_eq "$(jq '.groups[] | select(.caller == "python3") | .requests' <<<"$TF_OUT")" 2
expect_eq "$(jq '.groups[] | select(.caller == "(unknown)") | .requests' <<<"$TF_OUT")" 1

tf_ok stats --by model
expect_contains "$(head -2 <<<"$TF_OUT" | tail -1)" "MODEL"
expect_contains "$(grep '^mystery-model' <<<"$TF_OUT")" "unknown"
expect_not_contains "$(grep '^mystery-model' <<<"$TF_OUT")" '$0.'
expect_contains "$(grep '^TOTAL' <<<"$TF_OUT")" "+ 1 unknown"
expect_contains "$TF_OUT" "without a known price"

tf_ok stats --period all --provider anthropic --json
expect_eq "$(jq .total.requests <<<"$TF_OUT")" 1

# --- bad input: clear errors, exit non-zero ---
tf log --since 5x
[[ $TF_RC -ne 0 ]] || die "--since 5x accepted"
expect_contains "$TF_ERR" "tokfence: error: --since '5x': expected a duration like 30m"
tf log --since 2026-02-31
[[ $TF_RC -ne 0 ]] || die "--since 2026-02-31 accepted"
expect_contains "$TF_ERR" "--since '2026-02-31'"
tf log -n 0
[[ $TF_RC -ne 0 ]] || die "-n 0 accepted"
expect_contains "$TF_ERR" "tokfence: error: -n '0': expected a whole number of rows from 1 to 1000000"
tf log -n many
[[ $TF_RC -ne 0 ]] || die "-n many accepted"
expect_contains "$TF_ERR" "-n 'many'"
tf log --provider 'Bad Name!'
[[ $TF_RC -ne 0 ]] || die "bad provider name accepted"
expect_contains "$TF_ERR" "provider name 'Bad Name!'"
tf log req_ffffffffffffffff
[[ $TF_RC -ne 0 ]] || die "unknown request id accepted"
expect_contains "$TF_ERR" "tokfence: error: request 'req_ffffffffffffffff': not in the request log"
tf log "req_x'; DROP TABLE requests; --"
[[ $TF_RC -ne 0 ]] || die "malformed request id accepted"
expect_contains "$TF_ERR" "not a request id"
tf log req_00000000000000a1 -f
[[ $TF_RC -ne 0 ]] || die "id with --follow accepted"
expect_contains "$TF_ERR" "--follow cannot be combined with a request id"
tf stats --by color
[[ $TF_RC -ne 0 ]] || die "--by color accepted"
tf stats --period yesterday
[[ $TF_RC -ne 0 ]] || die "--period yesterday accepted"
expect_contains "$TF_ERR" "--period 'yesterday'"
# Nothing was lost by any of that.
expect_eq "$(sqlite3 "$DB" 'SELECT count(*) FROM requests')" 4

# A file that is not a database: a clear error naming it.
printf 'not a database at all, just text that is long enough to not be a header....\n' >"$WORK/bad.db"
printf '[logging]\ndb_path = "%s"\n' "$WORK/bad.db" >>"$TOKFENCE_HOME/config.toml"
tf log
[[ $TF_RC -ne 0 ]] || die "a corrupt database was read"
expect_contains "$TF_ERR" "$WORK/bad.db"

# --help explains with an example.
tf_ok log --help
expect_contains "$TF_OUT" "Example"
tf_ok stats --help
expect_contains "$TF_OUT" "Example"
