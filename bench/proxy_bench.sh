#!/usr/bin/env bash
# Proxy benchmark: the same load, in one run on loopback, against
#   direct    the fake upstream itself (tests/fake_upstream),
#   nginx     Debian's nginx as a plain keep-alive reverse proxy in front of it,
#   tokfence  the tokfence daemon (temp TOKFENCE_HOME, file vault, generated key, logging on).
# Measures requests/s, p50 and p99 at concurrency 1, 64, 256 (wrk --latency), CPU time per
# request of the proxy process(es), time to the first SSE event (median of N sequential streams),
# and memory with 1,000 streams open at once. Prints a table with tokfence's ratios.
#
#   bench/proxy_bench.sh [--build DIR] [--duration S] [--ttfc N] [--streams N] [--quick] [--no-token]
#
# tokfence's requests carry an ImmuneFence session token (the default [immunefence] require_token
# = true, so each request pays for the token check and the secret scan); --no-token runs with
# require_token = false and a dummy key, to measure what ImmuneFence costs.
#
# Needs: wrk, nginx (nginx-light), curl, jq, python3, g++ (scripts/setup --test installs them).
# Every number is printed; nothing here asserts a speed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
DURATION=5
TTFC_N=50
STREAMS=1000
CONCURRENCIES=(1 64 256)
REQUIRE_TOKEN=true
while (($#)); do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --ttfc) TTFC_N=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --quick) DURATION=2; TTFC_N=20; STREAMS=200; shift ;;
    --no-token) REQUIRE_TOKEN=false; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "proxy_bench: error: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 60 ]] || { echo "proxy_bench: error: --duration: 1..60 seconds: $DURATION" >&2; exit 2; }
[[ $TTFC_N =~ ^[0-9]+$ && $TTFC_N -ge 1 && $TTFC_N -le 1000 ]] || { echo "proxy_bench: error: --ttfc: 1..1000: $TTFC_N" >&2; exit 2; }
[[ $STREAMS =~ ^[0-9]+$ && $STREAMS -ge 1 && $STREAMS -le 5000 ]] || { echo "proxy_bench: error: --streams: 1..5000: $STREAMS" >&2; exit 2; }

TOKFENCE=$BUILD/bin/tokfence
FAKE=$BUILD/bin/fake_upstream
for bin in "$TOKFENCE" "$FAKE"; do
  [[ -x $bin ]] || { echo "proxy_bench: error: not built: $bin: run scripts/build (or pass --build DIR)" >&2; exit 2; }
done
for tool in wrk curl jq python3 g++; do
  command -v "$tool" >/dev/null || { echo "proxy_bench: error: missing tool: $tool: run scripts/setup --test" >&2; exit 2; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { echo "proxy_bench: error: missing nginx: run scripts/setup --test" >&2; exit 2; }

# 1,000 streams through a proxy take 3,000+ descriptors on this side of the loopback.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BENCH_NAME=proxy_bench
source "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/tokfence-bench.XXXXXX)
PIDS=()
cleanup() {
  set +e
  if [[ -n ${TOKFENCE_HOME:-} && -f $TOKFENCE_HOME/daemon.json ]]; then
    timeout 30 "$TOKFENCE" stop >/dev/null 2>&1
  fi
  [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null
  stop_pids "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT

KEY="bench-$(random_token 40)"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOADAVG_START%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average $LOADAVG_START on $(nproc) cores: other work will distort the numbers"
fi
CLK_TCK=$(getconf CLK_TCK)

# ---- the three targets ---------------------------------------------------------------------------
log "building the stream client"
g++ -O2 -std=c++20 -o "$WORK/stream_client" "$ROOT/bench/stream_client.cpp"

log "starting the fake upstream"
"$FAKE" --port 0 --port-file "$WORK/fake.port" --require-key "$KEY" --record 0 >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
PIDS+=("$FAKE_PID")
wait_until "test -s '$WORK/fake.port'"
FAKE_PORT=$(cat "$WORK/fake.port")

log "starting nginx"
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
# As root, nginx would hand its workers to 'nobody', who cannot write into $WORK.
nginx_user=""
[[ $(id -u) -eq 0 ]] && nginx_user="user root;"
cat >"$WORK/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log $WORK/nginx/access.log combined buffer=64k flush=1s;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream fake {
    server 127.0.0.1:$FAKE_PORT;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 600s;
    }
  }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK/nginx" >"$WORK/nginx/stdout.log" 2>&1 &
PIDS+=($!)
wait_until "curl -fsS -o /dev/null -H 'Authorization: Bearer $KEY' http://127.0.0.1:$NGINX_PORT/v1/models"
NGINX_MASTER=$(cat "$WORK/nginx.pid")

log "starting tokfence"
export TOKFENCE_HOME=$WORK/home
export TOKFENCE_VAULT_PASSPHRASE="bench-$(random_token 20)"
mkdir -p "$TOKFENCE_HOME"
chmod 700 "$TOKFENCE_HOME"
cat >"$TOKFENCE_HOME/config.toml" <<EOF
[daemon]
port = 0

[vault]
backend = "file"

[immunefence]
require_token = $REQUIRE_TOKEN

[providers.openai]
upstream = "http://127.0.0.1:$FAKE_PORT"
EOF
printf '%s' "$KEY" | "$TOKFENCE" vault add openai - >"$WORK/vault-add.log" 2>&1 || die "tokfence vault add failed: $(cat "$WORK/vault-add.log")"
# The daemon runs in the foreground under this script, not with 'start -d': 'start -d' puts it in a
# session (so an autogroup) of its own, and on a loaded machine the kernel then schedules it
# unlike nginx, wrk and the fake upstream, which all share this script's session. Same code.
"$TOKFENCE" start >"$WORK/start.log" 2>&1 &
PIDS+=($!)
wait_until "test -s '$TOKFENCE_HOME/daemon.json'" 60
TF_PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
TF_PID=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
wait_until "curl -fsS http://127.0.0.1:$TF_PORT/__tokfence/health" 20
# What tokfence's client sends as its API key: a session token, or a dummy key with --no-token.
TF_KEY=tokfence-managed
if [[ $REQUIRE_TOKEN == true ]]; then
  TF_KEY=$("$TOKFENCE" session new --name bench --json | jq -r .token)
  [[ $TF_KEY == tfc1.* ]] || die "tokfence session new gave no token"
fi
# The proxy must really work (key injected, answer relayed) before it is timed.
probe=$(curl -sS -w ' %{http_code}' "http://127.0.0.1:$TF_PORT/openai/v1/chat/completions" -H "Authorization: Bearer $TF_KEY" \
  -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}')
[[ $probe == *'"pong"'*' 200' ]] || die "tokfence does not proxy to the fake upstream: $probe"

declare -A URL=(
  [direct]="http://127.0.0.1:$FAKE_PORT/v1/chat/completions"
  [nginx]="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
  [tokfence]="http://127.0.0.1:$TF_PORT/openai/v1/chat/completions"
)
declare -A PORT=([direct]=$FAKE_PORT [nginx]=$NGINX_PORT [tokfence]=$TF_PORT)
declare -A PREFIX=([direct]="" [nginx]="" [tokfence]="/openai")
TARGETS=(direct nginx tokfence)

# Processes whose CPU time counts as the target's own (the fake upstream is shared by all three).
proc_pids() {
  case $1 in
    direct) echo "$FAKE_PID" ;;
    nginx) echo "$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER" || true) ;;
    tokfence) echo "$TF_PID" ;;
  esac
}
rss_kb() {
  local total=0 pid
  for pid in "$@"; do
    [[ -r /proc/$pid/status ]] || continue
    total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
  done
  echo "$total"
}
to_ms() {  # wrk durations: 12.34us, 1.20ms, 1.01s, 2.00m
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.3f", n }'
}

# ---- 1. throughput and latency ---------------------------------------------------------------------
BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
for t in "${TARGETS[@]}"; do
  {
    echo 'wrk.method = "POST"'
    echo "wrk.body = '$BODY'"
    echo 'wrk.headers["Content-Type"] = "application/json"'
    # tokfence injects the real key (its client sends a session token); the others need the key.
    if [[ $t == tokfence ]]; then echo "wrk.headers[\"Authorization\"] = \"Bearer $TF_KEY\""
    else echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""; fi
  } >"$WORK/$t.lua"
done

declare -A RPS P50 P99 CPU
for c in "${CONCURRENCIES[@]}"; do
  threads=$((c < 2 ? 1 : 2))
  for t in "${TARGETS[@]}"; do
    log "wrk: $t, concurrency $c, ${DURATION}s"
    pids=$(proc_pids "$t")
    before=$(cpu_ticks $pids)
    out=$(timeout $((DURATION + 30)) wrk -t "$threads" -c "$c" -d "${DURATION}s" --timeout 10s --latency -s "$WORK/$t.lua" "${URL[$t]}")
    after=$(cpu_ticks $pids)
    echo "$out" >"$WORK/wrk-$t-$c.txt"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    [[ -z $non2xx ]] || log "warning: $t at $c: $non2xx non-2xx answers"
    RPS[$t,$c]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    P50[$t,$c]=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    P99[$t,$c]=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    CPU[$t,$c]=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="${reqs:-0}" 'BEGIN { if (n > 0) printf "%.1f", d * 1e6 / hz / n; else print "n/a" }')
  done
done

# ---- 2. time to the first SSE event ---------------------------------------------------------------
SSE_BODY='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"ping"}]}'
declare -A TTFC
for t in "${TARGETS[@]}"; do
  log "first SSE event: $t, $TTFC_N sequential streams"
  auth=(--header "Authorization: Bearer $KEY")
  [[ $t == tokfence ]] && auth=(--header "Authorization: Bearer $TF_KEY")
  out=$(timeout 120 "$WORK/stream_client" ttfc --port "${PORT[$t]}" --path "${PREFIX[$t]}/v1/chat/completions" \
    --body "$SSE_BODY" --header "x-fake-chunks: 3" "${auth[@]}" --count "$TTFC_N")
  TTFC[$t]=$(awk '/^median_us/ {printf "%.3f", $2 / 1000}' <<<"$out")
done

# ---- 3. memory with many streams open ------------------------------------------------------------
# Each stream sends an event every 200 ms for up to 20 s; the client holds them all open for 2 s
# once every one has delivered its first event, then hangs up (which cancels them upstream).
declare -A RSS_IDLE RSS_OPEN READY
for t in nginx tokfence; do
  pids=$(proc_pids "$t")
  RSS_IDLE[$t]=$(rss_kb $pids)
  log "$STREAMS open streams: $t"
  auth=(--header "Authorization: Bearer $KEY")
  [[ $t == tokfence ]] && auth=(--header "Authorization: Bearer $TF_KEY")
  rm -f "$WORK/ready"
  timeout 150 "$WORK/stream_client" hold --port "${PORT[$t]}" --path "${PREFIX[$t]}/v1/chat/completions" \
    --body "$SSE_BODY" --header "x-fake-chunks: 100" --header "x-fake-delay-ms: 200" "${auth[@]}" \
    --count "$STREAMS" --hold-ms 2000 --timeout-s 60 --ready-file "$WORK/ready" >"$WORK/hold-$t.txt" 2>&1 &
  client=$!
  wait_until "test -s '$WORK/ready'" 90
  sleep 0.5  # let the last buffers settle
  RSS_OPEN[$t]=$(rss_kb $pids)
  READY[$t]=$(awk '{print $2}' "$WORK/ready")
  wait "$client" || true
  # Give the upstream side up to 30 s to see the hang-ups before the next run.
  for ((i = 0; i < 300; i++)); do
    open=$(curl -fsS "http://127.0.0.1:$FAKE_PORT/__fake/stats" | jq .open_connections)
    ((open < STREAMS / 2 + 10)) && break
    sleep 0.1
  done
done

# ---- report ----------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
diff_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'; }

echo
echo "tokfence proxy benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, loopback; wrk ${DURATION}s per cell; tokfence with a session token: $REQUIRE_TOKEN)"
echo "load average at start: $LOADAVG_START (numbers from a busy machine are noise: rerun when it is idle)"
echo "load: POST /v1/chat/completions, JSON reply; CPU = proxy process time per request (direct: the fake upstream's own)"
echo
printf '%-5s %-9s %10s %9s %9s %12s\n' conc target req/s p50_ms p99_ms cpu_us/req
for c in "${CONCURRENCIES[@]}"; do
  for t in "${TARGETS[@]}"; do
    printf '%-5s %-9s %10s %9s %9s %12s\n' "$c" "$t" "${RPS[$t,$c]}" "${P50[$t,$c]}" "${P99[$t,$c]}" "${CPU[$t,$c]}"
  done
done
echo
echo "tokfence vs the others"
printf '%-5s %14s %14s %16s %16s %14s\n' conc rps/direct rps/nginx 'p50 +ms direct' 'p50 +ms nginx' cpu/nginx
for c in "${CONCURRENCIES[@]}"; do
  printf '%-5s %14s %14s %16s %16s %14s\n' "$c" \
    "$(ratio "${RPS[tokfence,$c]}" "${RPS[direct,$c]}")" "$(ratio "${RPS[tokfence,$c]}" "${RPS[nginx,$c]}")" \
    "$(diff_ms "${P50[tokfence,$c]}" "${P50[direct,$c]}")" "$(diff_ms "${P50[tokfence,$c]}" "${P50[nginx,$c]}")" \
    "$(ratio "${CPU[tokfence,$c]}" "${CPU[nginx,$c]}")"
done
echo
echo "time to first SSE event (median of $TTFC_N, new connection each)"
printf '%-9s %10s %12s\n' target ms added_ms
for t in "${TARGETS[@]}"; do
  printf '%-9s %10s %12s\n' "$t" "${TTFC[$t]}" "$(diff_ms "${TTFC[$t]}" "${TTFC[direct]}")"
done
echo
echo "memory with $STREAMS streams open (RSS; nginx = master + workers)"
printf '%-9s %8s %12s %12s %14s\n' target ready idle_MiB open_MiB KiB/stream
for t in nginx tokfence; do
  printf '%-9s %8s %12s %12s %14s\n' "$t" "${READY[$t]}" \
    "$(awk -v k="${RSS_IDLE[$t]}" 'BEGIN {printf "%.1f", k / 1024}')" \
    "$(awk -v k="${RSS_OPEN[$t]}" 'BEGIN {printf "%.1f", k / 1024}')" \
    "$(awk -v a="${RSS_OPEN[$t]}" -v b="${RSS_IDLE[$t]}" -v n="$STREAMS" 'BEGIN {printf "%.1f", (a - b) / n}')"
done
echo
echo "targets: tokfence added p50 < 0.1 ms, throughput >= 0.80 x nginx (logging on)"
