#!/usr/bin/env bash
# Many concurrent slow streams from ONE client process (issue 21), through tokfence and, side by
# side, through Debian's nginx proxying the same fake upstream. For each count N it starts a fresh
# daemon (and a fresh nginx), opens N streams at once (5 SSE events, 1 s apart, by default) from
# one stream_client process, reads every one to its end, and prints:
#   completed       streams that got a 200 and reached "[DONE]"
#   peak RSS        VmHWM of the proxy's processes (nginx: master + workers) during the burst, MiB
#                   (reset through /proc/<pid>/clear_refs just before it)
#   KiB/stream      (peak RSS - RSS before the burst) / N
#   cpu during      the proxy's user+system CPU seconds from the first connect to the last stream's end
#   cpu after       ... in the 5 s after the last stream ended (idle is ~0)
#   rows +1s        request-log rows in tokfence.db (sqlite3, no flush) 1 s after the last stream
#                   ended; nginx: lines in its access log (written per request, unbuffered)
#   rows +6s        the same, 6 s after
#
#   bench/stream_scale.sh [--build DIR] [--tokfence BIN] [--counts "1000 5000 max"]
#                         [--events N] [--interval-ms MS] [--no-nginx]
#
# "max" is as many streams as the descriptor limit allows (the daemon holds two descriptors a
# stream). Loopback only; every run is bounded in time; the temp dir and every process it started
# are removed at exit. Needs nginx, curl, jq, sqlite3, g++ (scripts/setup --test). Prints numbers;
# asserts nothing about speed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
TOKFENCE=""
COUNTS="1000 5000 max"
EVENTS=5
INTERVAL_MS=1000
WITH_NGINX=1
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --tokfence) TOKFENCE=$2; shift 2 ;;
    --counts) COUNTS=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    --interval-ms) INTERVAL_MS=$2; shift 2 ;;
    --no-nginx) WITH_NGINX=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "stream_scale: error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ $EVENTS =~ ^[0-9]+$ && $EVENTS -ge 1 && $EVENTS -le 100 ]] || { echo "stream_scale: error: --events: 1..100" >&2; exit 2; }
[[ $INTERVAL_MS =~ ^[0-9]+$ && $INTERVAL_MS -le 10000 ]] || { echo "stream_scale: error: --interval-ms: 0..10000" >&2; exit 2; }
TOKFENCE=${TOKFENCE:-$BUILD/bin/tokfence}
FAKE=$BUILD/bin/fake_upstream
for bin in "$TOKFENCE" "$FAKE"; do
  [[ -x $bin ]] || { echo "stream_scale: error: not built: $bin (pass --build DIR)" >&2; exit 2; }
done
for tool in curl jq sqlite3 g++; do
  command -v "$tool" >/dev/null || { echo "stream_scale: error: missing tool: $tool: run scripts/setup --test" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ((WITH_NGINX)) && [[ ! -x $NGINX ]]; then
  echo "stream_scale: error: missing nginx: run scripts/setup --test (or --no-nginx)" >&2
  exit 2
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
LIMIT=$(ulimit -n)
# Two descriptors a stream in the proxy, reserves for everything else.
MAX_STREAMS=$(((LIMIT - 512) / 2))
((MAX_STREAMS > 20000)) && MAX_STREAMS=20000

BENCH_NAME=stream_scale
source "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/tokfence-scale.XXXXXX)
PIDS=()
TF_PID="" NGINX_MASTER=""
cleanup() {
  set +e
  [[ -n $NGINX_MASTER ]] && kill "$NGINX_MASTER" 2>/dev/null
  [[ -n $TF_PID ]] && kill "$TF_PID" 2>/dev/null
  stop_pids "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT
CLK_TCK=$(getconf CLK_TCK)
KEY="scale-$(random_token 40)"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores: other work will distort the numbers"
fi

log "building the stream client"
g++ -O2 -std=c++20 -o "$WORK/stream_client" "$ROOT/bench/stream_client.cpp"
log "starting the fake upstream"
"$FAKE" --port 0 --port-file "$WORK/fake.port" --require-key "$KEY" --record 0 >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_until "test -s '$WORK/fake.port'"
FAKE_PORT=$(cat "$WORK/fake.port")

kib() {  # sum of a /proc/<pid>/status field (VmRSS, VmHWM) over pids, KiB
  local field=$1 total=0 pid
  shift
  for pid in "$@"; do
    [[ -r /proc/$pid/status ]] || continue
    total=$((total + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status")))
  done
  echo "$total"
}
now_ms() { date +%s%3N; }
sleep_until_ms() {
  local wait_ms=$(($1 - $(now_ms)))
  ((wait_ms > 0)) && sleep "$(awk -v ms="$wait_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
  return 0
}

start_tokfence() {  # fresh home per run, so VmHWM is this run's peak
  local n=$1
  export TOKFENCE_HOME=$WORK/home-$n
  export TOKFENCE_VAULT_PASSPHRASE="scale-$(random_token 20)"
  mkdir -m 700 "$TOKFENCE_HOME"
  cat >"$TOKFENCE_HOME/config.toml" <<EOF
[daemon]
port = 0
max_connections = $((n + 1000))
max_connections_per_listener = $((n + 1000))

[vault]
backend = "file"

[providers.openai]
upstream = "http://127.0.0.1:$FAKE_PORT"
EOF
  printf '%s' "$KEY" | "$TOKFENCE" vault add openai - >"$WORK/vault-$n.log" 2>&1 || die "vault add failed"
  # Foreground under this script (as proxy_bench.sh does): same session and scheduling as nginx.
  "$TOKFENCE" start >"$WORK/start-$n.log" 2>&1 &
  wait_until "test -s '$TOKFENCE_HOME/daemon.json'" 60
  TF_PID=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
  PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
  wait_until "curl -fsS http://127.0.0.1:$PORT/__tokfence/health" 20
  PREFIX=/openai
  # The client's key is an ImmuneFence session token (the default [immunefence] require_token =
  # true), as an agent's would be: each stream pays for the token check and the response scan.
  # (A binary from before ImmuneFence has no sessions and needs no key.)
  AUTH=()
  if "$TOKFENCE" --help 2>/dev/null | grep -qE "^  session "; then
    local token
    token=$("$TOKFENCE" session new --name scale --json | jq -r .token)
    [[ $token == tfc1.* ]] || die "tokfence session new gave no token"
    AUTH=(--header "Authorization: Bearer $token")
  fi
  PROC_PIDS=("$TF_PID")
}
stop_tokfence() {
  timeout 60 "$TOKFENCE" stop >/dev/null 2>&1 || kill "$TF_PID" 2>/dev/null || true
  wait "$TF_PID" 2>/dev/null || true
  TF_PID=""
}
rows_tokfence() { sqlite3 "$TOKFENCE_HOME/tokfence.db" "PRAGMA busy_timeout=2000; SELECT count(*) FROM requests WHERE model = 'scale'" | tail -1; }

start_nginx() {
  local n=$1 dir=$WORK/nginx-$1
  PORT=$(free_port)
  mkdir -p "$dir"
  local user=""
  [[ $(id -u) -eq 0 ]] && user="user root;"
  cat >"$dir/nginx.conf" <<EOF
$user
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $LIMIT;
events { worker_connections $((n * 2 + 512)); }
http {
  access_log $dir/access.log combined;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  upstream fake {
    server 127.0.0.1:$FAKE_PORT;
  }
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
  "$NGINX" -c "$dir/nginx.conf" -p "$dir" >"$dir/stdout.log" 2>&1 &
  wait_until "curl -fsS -o /dev/null -H 'Authorization: Bearer $KEY' http://127.0.0.1:$PORT/v1/models"
  NGINX_MASTER=$(cat "$dir/nginx.pid")
  NGINX_DIR=$dir
  : >"$dir/access.log"
  PREFIX=""
  AUTH=(--header "Authorization: Bearer $KEY")
  PROC_PIDS=("$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER" || true))
}
stop_nginx() {
  kill "$NGINX_MASTER" 2>/dev/null || true
  wait "$NGINX_MASTER" 2>/dev/null || true
  NGINX_MASTER=""
}
rows_nginx() { grep -c '"POST /v1/chat/completions' "$NGINX_DIR/access.log" || true; }

# Runs one burst of $2 streams against the target $1 started by start_$1; prints one table row.
measure() {
  local target=$1 n=$2
  local body='{"model":"scale","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
  local rss0 t0 t1 t2 result=$WORK/burst-$target-$n
  rss0=$(kib VmRSS "${PROC_PIDS[@]}")
  # Peak RSS from here on: VmHWM reset ("5" > clear_refs), since the daemon's start (the vault's
  # Argon2 key derivation) peaks far above what streams cost.
  local pid
  for pid in "${PROC_PIDS[@]}"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || log "warning: cannot reset VmHWM of $pid"; done
  t0=$(cpu_ticks "${PROC_PIDS[@]}")
  timeout $((EVENTS * INTERVAL_MS / 1000 + 200)) "$WORK/stream_client" burst --port "$PORT" \
    --path "$PREFIX/v1/chat/completions" --body "$body" "${AUTH[@]}" --header "x-fake-chunks: $EVENTS" \
    --header "x-fake-delay-ms: $INTERVAL_MS" --count "$n" --timeout-s 180 --result-file "$result" >/dev/null 2>&1 || true
  [[ -s $result ]] || die "$target: stream_client gave no result"
  t1=$(cpu_ticks "${PROC_PIDS[@]}")
  local end_ms completed statuses hwm rows1 rows6
  end_ms=$(awk '/^end_unix_ms/ {print $2}' "$result")
  completed=$(awk '/^completed/ {print $2}' "$result")
  statuses=$(sed -n 's/^statuses //p' "$result")
  hwm=$(kib VmHWM "${PROC_PIDS[@]}")
  sleep_until_ms $((end_ms + 1000))
  rows1=$(rows_$target)
  sleep_until_ms $((end_ms + 5000))
  t2=$(cpu_ticks "${PROC_PIDS[@]}")
  sleep_until_ms $((end_ms + 6000))
  rows6=$(rows_$target)
  printf '%-9s %6s %10s %10s %11s %11s %10s %9s %9s   %s\n' "$target" "$n" "$completed" \
    "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v h="$hwm" -v r="$rss0" -v n="$n" 'BEGIN { printf "%.1f", (h - r) / n }')" \
    "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
    "$(awk -v t=$((t2 - t1)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')" \
    "$rows1" "$rows6" "$statuses"
}

printf '%-9s %6s %10s %10s %11s %11s %10s %9s %9s   %s\n' target streams completed "peak MiB" KiB/stream \
  "cpu during" "cpu after" "rows +1s" "rows +6s" statuses
for count in $COUNTS; do
  n=$count
  [[ $n == max ]] && n=$MAX_STREAMS
  [[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || die "--counts: numbers or 'max': $count"
  ((n <= MAX_STREAMS)) || { log "skipping $n streams: the descriptor limit ($LIMIT) allows $MAX_STREAMS"; continue; }
  start_tokfence "$n"
  measure tokfence "$n"
  stop_tokfence
  if ((WITH_NGINX)); then
    start_nginx "$n"
    measure nginx "$n"
    stop_nginx
  fi
  # Let the fake see every hang-up before the next count.
  for ((i = 0; i < 300; i++)); do
    open=$(curl -fsS "http://127.0.0.1:$FAKE_PORT/__fake/stats" | jq .open_connections)
    ((open < 10)) && break
    sleep 0.1
  done
done
log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
