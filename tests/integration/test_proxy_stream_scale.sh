#!/usr/bin/env bash
# Thousands of concurrent streams from ONE client process (issue 21), sized for CI: 2,000 slow
# SSE streams (5 events, 1 s apart) through the daemon over loopback against the fake upstream.
#  - every stream completes;
#  - every request's row is in tokfence.db 1 s after the burst's last stream ended, read directly
#    with sqlite3 (no `tokfence log`/`status`, which would flush the writer);
#  - the daemon is idle after the burst: its CPU time (utime+stime from /proc/<pid>/stat) over the
#    second after that is at most 0.25 s (the old per-connection caller look-up kept one core busy
#    for many seconds: 2,000 connections of one process cost 2,000 reads of its 2,000 descriptors);
#  - kill -9 after a second burst loses no row: the daemon is killed 0.3 s after the burst's last
#    stream ended (a row is committed at most the writer's linger, 50 ms, plus a commit after the
#    response), and the rows are counted in the database it left.
# Streams: SCALE_STREAMS (default 2000). Loopback only; every wait is bounded.
source "$(dirname "$0")/lib.sh"

for tool in sqlite3 jq curl g++; do command -v "$tool" >/dev/null || skip "needs $tool"; done
STREAMS=${SCALE_STREAMS:-2000}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# The client holds STREAMS descriptors, the daemon 2 x STREAMS, the fake STREAMS (each its own
# process, so the per-process limit is what counts).
(($(ulimit -n) >= 2 * STREAMS + 512)) || skip "descriptor limit $(ulimit -n) is too low for $STREAMS streams"

g++ -O2 -std=c++20 -o "$WORK/stream_client" "$SOURCE_DIR/bench/stream_client.cpp" || die "cannot build stream_client"

start_fake_upstream --record 0
write_test_config
sed -i "s/^port = 0$/port = 0\nmax_connections = $((STREAMS + 1000))\nmax_connections_per_listener = $((STREAMS + 1000))/" \
  "$TOKFENCE_HOME/config.toml"
add_canary_key openai
start_daemon
DB="$TOKFENCE_HOME/tokfence.db"
HZ=$(getconf CLK_TCK)

daemon_pid() { jq -r .pid "$TOKFENCE_HOME/daemon.json"; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
rows() { sqlite3 "$DB" "PRAGMA busy_timeout=2000; SELECT count(*) FROM requests WHERE model = '$1'" | tail -1; }
now_ms() { date +%s%3N; }
sleep_until_ms() {
  local wait_ms=$(($1 - $(now_ms)))
  ((wait_ms > 0)) && sleep "$(awk -v ms="$wait_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
  return 0
}

# One burst: STREAMS streams at once from one stream_client process; the model name tags its rows.
burst() {
  local model=$1 result=$WORK/out/burst-$1
  local body='{"model":"'"$model"'","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
  log "burst '$model': $STREAMS streams from one process"
  set +e
  timeout 150 "$WORK/stream_client" burst --port "$PROXY_PORT" --path /openai/v1/chat/completions --body "$body" \
    --header 'x-fake-chunks: 5' --header 'x-fake-delay-ms: 1000' --count "$STREAMS" --timeout-s 120 \
    --result-file "$result" >"$result.stdout" 2>&1
  local rc=$?
  set -e
  [[ -s $result ]] || die "stream_client gave no result (exit $rc): $(cat "$result.stdout")"
  log "$(tr '\n' ' ' <"$result")"
  expect_eq "$(awk '/^completed/ {print $2}' "$result")" "$STREAMS" "streams completed (statuses: $(grep statuses "$result"))"
  BURST_END_MS=$(awk '/^end_unix_ms/ {print $2}' "$result")
}

# ---- 1. rows on disk 1 s after the burst, and the daemon idle ------------------------------------
pid=$(daemon_pid)
burst scale-a
sleep_until_ms $((BURST_END_MS + 1000))
t0=$(cpu_ticks "$pid")
on_disk=$(rows scale-a)
log "rows on disk 1 s after the burst: $on_disk of $STREAMS"
sleep 1
t1=$(cpu_ticks "$pid")
cpu_ms=$(((t1 - t0) * 1000 / HZ))
log "daemon CPU in the second after that: $cpu_ms ms"
expect_eq "$on_disk" "$STREAMS" "rows in tokfence.db 1 s after the burst (no flush)"
((cpu_ms <= 250)) || die "daemon busy after the burst: $cpu_ms ms of CPU in one second (expected idle)"
# Callers: the one client process, or the look-up's time-out, never a missing row.
log "callers: $(sqlite3 -separator ': ' "$DB" "SELECT coalesce(nullif(caller_name, ''), '(none)') AS c, count(*) FROM requests WHERE model = 'scale-a' GROUP BY c" | tr '\n' ' ')"
named=$(sqlite3 "$DB" "SELECT count(*) FROM requests WHERE model = 'scale-a' AND caller_name = 'stream_client'")
((named > 0)) || die "no row names the client process (stream_client)"

# ---- 2. kill -9 right after a burst loses no row --------------------------------------------------
burst scale-b
sleep_until_ms $((BURST_END_MS + 300))
kill -9 "$pid"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && die "daemon survived kill -9"
rm -f "$TOKFENCE_HOME/daemon.json"  # a killed daemon leaves it; the cleanup must not try to stop it
after_kill=$(rows scale-b)
log "rows after kill -9 0.3 s after the burst: $after_kill of $STREAMS"
expect_eq "$after_kill" "$STREAMS" "rows kept through kill -9"
expect_eq "$(rows scale-a)" "$STREAMS" "first burst's rows after kill -9"
