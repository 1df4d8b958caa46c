#!/usr/bin/env bash
# What the widget snapshot file and /metrics cost the proxy: one daemon ([dashboard] enabled, the
# snapshot file always kept current), wrk at c=N, rounds cycling through "quiet" (nobody asks),
# "metrics" (GET /metrics once a second, as Prometheus would) and "widget" (`tokfence widget
# render --json` once a second: a menu bar refreshing 20 times more often than the default).
# Prints requests/s and the daemon's CPU time per request for each round, the CPU time of its
# snapshot writer thread (tf-snapshot) and dashboard thread (tf-dashboard), and the medians per
# mode. Nothing is asserted.
#
#   bench/widget_cost.sh [--build DIR] [--conc N] [--rounds R] [--duration S]
#
# Everything stays on 127.0.0.1; every run is bounded; the temp dir and processes go at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONC=64 ROUNDS=3 DURATION=5 BUILD=${BUILD_DIR:-$ROOT/build}
while [[ $# -gt 0 ]]; do
  case $1 in
    --conc) CONC=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    *) echo "usage: bench/widget_cost.sh [--build DIR] [--conc N] [--rounds R] [--duration S]" >&2; exit 2 ;;
  esac
done
[[ $CONC =~ ^[0-9]+$ && $CONC -ge 2 && $CONC -le 1000 ]] || { echo "widget_cost: --conc: 2..1000" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "widget_cost: --rounds: 1..20" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 60 ]] || { echo "widget_cost: --duration: 1..60" >&2; exit 2; }
TOKFENCE=$BUILD/bin/tokfence FAKE=$BUILD/bin/fake_upstream
for bin in "$TOKFENCE" "$FAKE"; do [[ -x $bin ]] || { echo "widget_cost: not built: $bin" >&2; exit 2; }; done
for tool in wrk curl jq; do command -v "$tool" >/dev/null || { echo "widget_cost: missing $tool: run scripts/setup --test" >&2; exit 2; }; done

BENCH_NAME=widget_cost
source "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/tokfence-widget.XXXXXX)
PIDS=()
export TOKFENCE_HOME=$WORK/home
cleanup() {
  set +e
  [[ -f $TOKFENCE_HOME/daemon.json ]] && timeout 30 "$WORK/tokfence" stop >/dev/null 2>&1
  stop_pids "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT

cp "$TOKFENCE" "$WORK/tokfence"
KEY="wc-$(random_token 40)"
export TOKFENCE_VAULT_PASSPHRASE="wc-$(random_token 20)"
"$FAKE" --port 0 --port-file "$WORK/fake.port" --require-key "$KEY" --record 0 >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_until "test -s '$WORK/fake.port'"
mkdir -m 700 "$TOKFENCE_HOME"
printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[dashboard]\nenabled = true\nport = 0\n\n[providers.openai]\nupstream = "http://127.0.0.1:%s"\n' \
  "$(cat "$WORK/fake.port")" >"$TOKFENCE_HOME/config.toml"
printf '%s' "$KEY" | "$WORK/tokfence" vault add openai - >/dev/null
"$WORK/tokfence" start -d >/dev/null
wait_until "test -s '$TOKFENCE_HOME/daemon.json'"
PORT=$(jq -r .port "$TOKFENCE_HOME/daemon.json")
PID=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")
DASH=$(jq -r .dashboard_port "$TOKFENCE_HOME/daemon.json")
wait_until "curl -fsS http://127.0.0.1:$PORT/__tokfence/health"
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA

thread_ticks() {  # NAME: utime+stime of the daemon's thread called NAME
  local t
  for t in /proc/"$PID"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$1" ]] || continue
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "$t/stat"
    return
  done
  echo 0
}
HZ=$(getconf CLK_TCK)
printf '%-6s %-8s %10s %12s %14s %15s %8s\n' round mode req/s cpu_us/req snapshot_cpu_ms dashboard_cpu_ms scrapes
declare -A RPS CPU
MODES=(quiet metrics widget)
for ((r = 1; r <= ROUNDS; r++)); do
  for mode in "${MODES[@]}"; do
    scraper=
    : >"$WORK/scrapes"
    if [[ $mode == metrics ]]; then
      (for ((i = 0; i < DURATION + 2; i++)); do
        curl -fsS --max-time 5 "http://127.0.0.1:$DASH/metrics" >/dev/null && echo m >>"$WORK/scrapes"
        sleep 1
      done) &
      scraper=$!
    elif [[ $mode == widget ]]; then
      (for ((i = 0; i < DURATION + 2; i++)); do
        "$WORK/tokfence" widget render --json >/dev/null && echo w >>"$WORK/scrapes"
        sleep 1
      done) &
      scraper=$!
    fi
    t0=$(cpu_ticks "$PID") s0=$(thread_ticks tf-snapshot) d0=$(thread_ticks tf-dashboard)
    out=$(timeout $((DURATION + 30)) wrk -t2 -c"$CONC" -d"${DURATION}s" -s "$WORK/post.lua" \
      "http://127.0.0.1:$PORT/openai/v1/chat/completions")
    t1=$(cpu_ticks "$PID") s1=$(thread_ticks tf-snapshot) d1=$(thread_ticks tf-dashboard)
    [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    [[ -z $errors ]] || die "$errors non-2xx responses"
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    printf '%-6s %-8s %10s %12s %14s %15s %8s\n' "$r" "$mode" "$rps" "$cpu" "$(((s1 - s0) * 1000 / HZ))" \
      "$(((d1 - d0) * 1000 / HZ))" "$(wc -l <"$WORK/scrapes")"
    RPS[$mode]+="$rps " CPU[$mode]+="$cpu "
  done
done
echo
for mode in "${MODES[@]}"; do
  # shellcheck disable=SC2086
  printf 'median  %-8s %8s req/s  %6s us CPU/req\n' "$mode" "$(median ${RPS[$mode]})" "$(median ${CPU[$mode]})"
done
printf '(c=%s, %s rounds of %s s)\n' "$CONC" "$ROUNDS" "$DURATION"
