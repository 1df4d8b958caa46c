#!/usr/bin/env bash
# Runs one libFuzzer target (tests/fuzz/fuzz_<TARGET>.cpp) for SECONDS seconds.
#
#   bench/fuzz.sh TARGET SECONDS [--jobs N] [--build DIR]
#   bench/fuzz.sh all SECONDS            # every target in turn, SECONDS each
#   bench/fuzz.sh list                   # the target names
#
# Configures and builds a clang build dir (default build-fuzz/) with TOKFENCE_FUZZ=ON: the
# whole tree instrumented with -fsanitize=fuzzer-no-link,address,undefined, the targets linked
# with libFuzzer. The run starts from the seed corpus in tests/fuzz/corpus/TARGET/ and keeps what
# it finds in BUILD/fuzz-corpus/TARGET/ (the seeds are never modified); crash inputs land in
# BUILD/fuzz-crashes/TARGET/. A crash: copy the input into tests/fuzz/corpus/TARGET/ once fixed,
# so the regression test ("fuzz-regression: TARGET" in the normal ctest run) keeps checking it.
# A 10-minute-per-target campaign: bench/fuzz.sh all 600.
#
# Needs clang 16 (Debian: apt-get install clang-16 libclang-rt-16-dev): clang 14 cannot compile
# libstdc++ 12's <expected>. clang 16 reports concepts as C++20-incomplete, so the build defines
# __cpp_concepts=202002L, which its concepts support in fact meets for <expected>.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGETS=(http1_request http1_response chunked usage_json usage_sse inspect_request control_protocol config vault_file scanner egress_rule capability)
usage() { echo "usage: bench/fuzz.sh TARGET|all|list SECONDS [--jobs N] [--build DIR]" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
TARGET=$1
if [[ $TARGET == list ]]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi
[[ $# -ge 2 ]] || usage
SECONDS_EACH=$2
shift 2
JOBS=1 BUILD=$ROOT/build-fuzz
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    *) usage ;;
  esac
done
[[ $SECONDS_EACH =~ ^[0-9]+$ && $SECONDS_EACH -ge 1 && $SECONDS_EACH -le 86400 ]] || { echo "fuzz: SECONDS: 1..86400" >&2; exit 2; }
[[ $JOBS =~ ^[0-9]+$ && $JOBS -ge 1 && $JOBS -le 64 ]] || { echo "fuzz: --jobs: 1..64" >&2; exit 2; }
if [[ $TARGET == all ]]; then
  selected=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $TARGET "* ]] || { echo "fuzz: unknown target '$TARGET': $(echo "${TARGETS[*]}")" >&2; exit 2; }
  selected=("$TARGET")
fi
CLANG=$(command -v clang++-16 || true)
[[ -n $CLANG ]] || { echo "fuzz: clang++-16 not found: apt-get install clang-16 libclang-rt-16-dev" >&2; exit 2; }

FLAGS="-D__cpp_concepts=202002L -Wno-macro-redefined -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CLANG" \
  -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DTOKFENCE_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j"${FUZZ_BUILD_JOBS:-2}" --target "${selected[@]/#/fuzz_}"

status=0
for t in "${selected[@]}"; do
  corpus=$BUILD/fuzz-corpus/$t crashes=$BUILD/fuzz-crashes/$t
  mkdir -p "$corpus" "$crashes"
  echo "== fuzz: $t for ${SECONDS_EACH}s" >&2
  # -rss_limit_mb: the targets keep nothing between inputs; -max_len 64 KiB is the default
  # max_header_bytes, so inputs reach the size the proxy accepts for heads.
  set +e
  (cd "$crashes" && "$BUILD/bin/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 \
    -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 "$corpus" "$ROOT/tests/fuzz/corpus/$t") \
    2>"$BUILD/fuzz-$t.log"
  rc=$?
  set -e
  # With -jobs, every worker's stats are in its own fuzz-N.log and the main log repeats them: count
  # the workers' logs when there are any (adding both counted every execution twice).
  stat_logs=("$crashes"/fuzz-*.log)
  [[ -e ${stat_logs[0]} ]] || stat_logs=("$BUILD/fuzz-$t.log")
  execs=$(grep -h 'stat::number_of_executed_units' "${stat_logs[@]}" 2>/dev/null | awk '{s += $2} END {print s + 0}')
  found=$(find "$crashes" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l)
  echo "fuzz: $t: ${execs} executions in ${SECONDS_EACH}s, exit $rc, ${found} crash/leak/timeout/oom inputs in $crashes (log: $BUILD/fuzz-$t.log)"
  [[ $rc -eq 0 && $found -eq 0 ]] || status=1
done
exit $status
