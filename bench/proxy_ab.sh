#!/usr/bin/env bash
# A/B of two tokfence binaries: both daemons run side by side on one fake upstream, and wrk runs
# alternate between them (A, B, A, B, ...), so that a machine whose speed drifts during the runs
# (a shared VM) affects both alike. Prints requests/s and the daemon's CPU time per request for
# every run, then the medians.
#
#   bench/proxy_ab.sh BIN_A BIN_B [--conc N] [--rounds R] [--duration S] [--no-token-a]
#
# e.g. build the previous commit in a worktree and compare it with the current build:
#   git worktree add /tmp/prev HEAD~1 && cmake -S /tmp/prev -B /tmp/prev/build && \
#     cmake --build /tmp/prev/build --target tokfence -j2
#   bench/proxy_ab.sh /tmp/prev/build/bin/tokfence build/bin/tokfence --conc 64
#
# A binary that knows ImmuneFence sessions (`tokfence session`) runs with its default
# [immunefence] require_token = true and its client sends a session token; an older one gets a
# dummy key. So A/B against a commit before ImmuneFence measures what the token check costs;
# --no-token-a runs side A with [immunefence] require_token = false and a dummy key (the same
# binary on both sides then measures the token check alone; the secret scan runs on both).
#
# Everything stays on 127.0.0.1; every run is bounded in time; the temp dir and all processes are
# removed at exit. Needs wrk, curl, jq (scripts/setup --test) and a built fake_upstream.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
usage() { echo "usage: bench/proxy_ab.sh BIN_A BIN_B [--conc N] [--rounds R] [--duration S] [--build DIR]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
shift 2
CONC=64 ROUNDS=3 DURATION=4 BUILD=$ROOT/build NO_TOKEN_A=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --conc) CONC=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --no-token-a) NO_TOKEN_A=true; shift ;;
    *) usage ;;
  esac
done
[[ $CONC =~ ^[0-9]+$ && $CONC -ge 1 && $CONC -le 1000 ]] || { echo "proxy_ab: --conc: 1..1000" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || { echo "proxy_ab: --rounds: 1..20" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 60 ]] || { echo "proxy_ab: --duration: 1..60" >&2; exit 2; }
FAKE=$BUILD/bin/fake_upstream
for bin in "$BIN_A" "$BIN_B" "$FAKE"; do [[ -x $bin ]] || { echo "proxy_ab: not executable: $bin" >&2; exit 2; }; done
for tool in wrk curl jq; do command -v "$tool" >/dev/null || { echo "proxy_ab: missing $tool: run scripts/setup --test" >&2; exit 2; }; done

BENCH_NAME=proxy_ab
source "$ROOT/bench/lib.sh"
WORK=$(mktemp -d /tmp/tokfence-ab.XXXXXX)
PIDS=()
cleanup() {
  set +e
  for side in a b; do
    [[ -f $WORK/$side/daemon.json ]] && TOKFENCE_HOME=$WORK/$side timeout 30 "$WORK/tokfence-$side" stop >/dev/null 2>&1
  done
  stop_pids "${PIDS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT

KEY="ab-$(random_token 40)"
PASS="ab-$(random_token 20)"
"$FAKE" --port 0 --port-file "$WORK/fake.port" --require-key "$KEY" --record 0 >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_until "test -s '$WORK/fake.port'"
FAKE_PORT=$(cat "$WORK/fake.port")
cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Copies of the binaries, so a rebuild during the runs changes nothing.
for side in a b; do
  bin=$BIN_A
  [[ $side == b ]] && bin=$BIN_B
  cp "$bin" "$WORK/tokfence-$side"
  home=$WORK/$side
  mkdir -m 700 "$home"
  printf '[daemon]\nport = 0\n\n[vault]\nbackend = "file"\n\n[providers.openai]\nupstream = "http://127.0.0.1:%s"\n' \
    "$FAKE_PORT" >"$home/config.toml"
  no_token=false
  [[ $side == a && $NO_TOKEN_A == true ]] && no_token=true
  [[ $no_token == true ]] && printf '\n[immunefence]\nrequire_token = false\n' >>"$home/config.toml"
  printf '%s' "$KEY" | TOKFENCE_HOME=$home TOKFENCE_VAULT_PASSPHRASE=$PASS "$WORK/tokfence-$side" vault add openai - >/dev/null
  TOKFENCE_HOME=$home TOKFENCE_VAULT_PASSPHRASE=$PASS "$WORK/tokfence-$side" start -d >/dev/null
  wait_until "test -s '$home/daemon.json'"
  wait_until "curl -fsS http://127.0.0.1:\$(jq -r .port '$home/daemon.json')/__tokfence/health"
  key=tokfence-managed
  if [[ $no_token == false ]] && "$WORK/tokfence-$side" --help 2>/dev/null | grep -qE "^  session "; then
    key=$(TOKFENCE_HOME=$home "$WORK/tokfence-$side" session new --name ab --json | jq -r .token)
  fi
  { cat "$WORK/post.lua"; printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$key"; } >"$WORK/post-$side.lua"
done

THREADS=$((CONC < 2 ? 1 : 2))  # wrk needs at least one connection per thread
printf '%-6s %-5s %10s %12s\n' round side req/s cpu_us/req
declare -a RPS_A RPS_B CPU_A CPU_B
for ((r = 1; r <= ROUNDS; r++)); do
  for side in a b; do
    home=$WORK/$side
    port=$(jq -r .port "$home/daemon.json")
    pid=$(jq -r .pid "$home/daemon.json")
    t0=$(cpu_ticks "$pid")
    out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONC" -d"${DURATION}s" -s "$WORK/post-$side.lua" \
      "http://127.0.0.1:$port/openai/v1/chat/completions")
    t1=$(cpu_ticks "$pid")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    [[ -z $errors ]] || die "side $side answered $errors non-2xx responses"
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    printf '%-6s %-5s %10s %12s\n' "$r" "$side" "$rps" "$cpu"
    if [[ $side == a ]]; then RPS_A+=("$rps"); CPU_A+=("$cpu"); else RPS_B+=("$rps"); CPU_B+=("$cpu"); fi
  done
done
echo
printf 'median  A: %s req/s, %s us CPU/req   B: %s req/s, %s us CPU/req   (c=%s, %s rounds of %s s)\n' \
  "$(median "${RPS_A[@]}")" "$(median "${CPU_A[@]}")" "$(median "${RPS_B[@]}")" "$(median "${CPU_B[@]}")" \
  "$CONC" "$ROUNDS" "$DURATION"
