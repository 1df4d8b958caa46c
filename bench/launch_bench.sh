#!/usr/bin/env bash
# Launch overhead: time from `tokfence launch --detach` to the OpenClaw gateway answering on the
# host (through the host relay, ui.sock and the in-container relay), against a bare
# `docker run -p 127.0.0.1:P:18789` of the same image with an equivalent config, in the same run.
# Runs alternate (tokfence, bare, tokfence, bare, ...) so drift affects both alike.
#
#   bench/launch_bench.sh [RUNS] [--cold]   (default 3; needs the OpenClaw image, built if missing)
# Prints each run and the medians. Traffic: loopback and the containers only (the image build,
# when it has to run, fetches from npm and Debian's mirror).
# Also times `tokfence launch image build`: warm (image up to date), --force (every stage cached,
# the engine's build only), and with --cold a build into an empty cache under a throw-away tag
# (downloads ~700 MB). Run 1 of tokfence includes the one-time `openclaw config validate` check
# of a config not seen before; runs 2+ do not.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TOKFENCE_BUILD_DIR:-$root/build}
runs=3 cold=0
for arg in "$@"; do
  case $arg in
    --cold) cold=1 ;;
    *) runs=$arg ;;
  esac
done
tf=$build/bin/tokfence
[[ -x $tf ]] || { echo "launch_bench: build first (scripts/build): $tf" >&2; exit 1; }
image=$("$root/scripts/build-openclaw-image" --cache "$build/openclaw-image")
# Prints "LABEL: N ms" for a command that must succeed (its output goes to $build/launch_bench.log).
timed() {
  local label=$1 t0 t1
  shift
  t0=$(date +%s%3N)
  "$@" >>"$build/launch_bench.log" 2>&1 || { echo "launch_bench: failed: $* (see $build/launch_bench.log)" >&2; exit 1; }
  t1=$(date +%s%3N)
  printf '%s: %d ms\n' "$label" $((t1 - t0))
}
: >"$build/launch_bench.log"
timed "image build warm (up to date)" "$tf" launch image build --cache "$build/openclaw-image"
timed "image build --force (stages cached, engine build only)" \
  "$tf" launch image build --cache "$build/openclaw-image" --tag localhost/tokfence-openclaw-bench:force --force
docker rmi localhost/tokfence-openclaw-bench:force >/dev/null 2>&1 || true
if ((cold)); then
  cold_cache=$(mktemp -d)
  timed "image build cold (empty cache)" "$tf" launch image build --cache "$cold_cache" --tag localhost/tokfence-openclaw-bench:cold
  docker rmi localhost/tokfence-openclaw-bench:cold >/dev/null 2>&1 || true
  rm -rf "$cold_cache"
fi

work=$(mktemp -d)
export TOKFENCE_HOME=$work/home TOKFENCE_VAULT_PASSPHRASE=bench-$RANDOM$RANDOM
mkdir -m 700 "$TOKFENCE_HOME"
bare_name=tf-bench-bare-$$
cleanup() {
  "$tf" launch stop --name tf-bench-$$ >/dev/null 2>&1 || true
  docker rm -f "$bare_name" >/dev/null 2>&1 || true
  "$tf" stop >/dev/null 2>&1 || true
  [[ -n ${fake_pid:-} ]] && kill "$fake_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

"$build/bin/fake_upstream" --port 0 --port-file "$work/fake.port" >/dev/null 2>&1 &
fake_pid=$!
for _ in $(seq 100); do [[ -s $work/fake.port ]] && break; sleep 0.05; done
printf '[daemon]\nport = 0\n[vault]\nbackend = "file"\n[providers.openai]\nupstream = "http://127.0.0.1:%s"\n' \
  "$(cat "$work/fake.port")" >"$TOKFENCE_HOME/config.toml"
printf 'bench-key-%s' "$RANDOM" | "$tf" vault add openai - >/dev/null
"$tf" start -d >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }
# Waits (at most 300 s) until an HTTP answer of any status comes from the URL; gives up when the
# container $2 stops.
wait_http() {
  local url=$1 container=$2 i
  for ((i = 0; i < 6000; i++)); do
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)
    [[ $code != 000 && -n $code ]] && return 0
    if ((i % 20 == 0)) && [[ $(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null) != true ]]; then
      echo "launch_bench: container $container is not running:" >&2
      docker logs --tail 20 "$container" >&2 2>&1 || true
      return 1
    fi
    sleep 0.05
  done
  echo "launch_bench: no answer from $url" >&2
  return 1
}

# The bare run's config: same gateway settings, bound to the container's interface so -p works.
mkdir -p "$work/bare"
cat >"$work/bare/openclaw.json" <<EOF
{"models": {"providers": {"openai": {"baseUrl": "http://127.0.0.1:9471/openai/v1", "apiKey": "x",
  "api": "openai-completions", "models": [{"id": "gpt-5", "name": "gpt-5"}]}}},
 "agents": {"defaults": {"model": {"primary": "openai/gpt-5"}}},
 "gateway": {"mode": "local", "port": 18789, "bind": "lan", "auth": {"mode": "token", "token": "bench"}}}
EOF
chmod 644 "$work/bare/openclaw.json"

tf_times=() bare_times=()
for ((r = 1; r <= runs; r++)); do
  port=$(free_port)
  t0=$(now_ms)
  "$tf" launch --image "$image" --no-pull --name tf-bench-$$ --detach --no-open --port "$port" >/dev/null
  wait_http "http://127.0.0.1:$port/" tf-bench-$$
  t1=$(now_ms)
  "$tf" launch stop --name tf-bench-$$ >/dev/null
  tf_times+=($((t1 - t0)))

  port=$(free_port)
  t0=$(now_ms)
  docker run -d --name "$bare_name" -p "127.0.0.1:$port:18789" -v "$work/bare/openclaw.json:/cfg/openclaw.json:ro" \
    -e OPENCLAW_CONFIG_PATH=/cfg/openclaw.json "$image" openclaw gateway run --bind lan --port 18789 >/dev/null
  wait_http "http://127.0.0.1:$port/" "$bare_name"
  t1=$(now_ms)
  docker rm -f "$bare_name" >/dev/null
  bare_times+=($((t1 - t0)))
  printf 'run %d: tokfence launch %6d ms   bare docker run %6d ms\n' "$r" "${tf_times[-1]}" "${bare_times[-1]}"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
tm=$(median "${tf_times[@]}")
bm=$(median "${bare_times[@]}")
printf 'median: tokfence launch %d ms, bare docker run %d ms, overhead %d ms (%s%%)\n' "$tm" "$bm" "$((tm - bm))" \
  "$(awk -v a="$tm" -v b="$bm" 'BEGIN {printf "%.1f", b ? 100 * (a - b) / b : 0}')"
