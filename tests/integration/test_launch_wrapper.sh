#!/usr/bin/env bash
# scripts/tokfence: quiet when nothing changed (the build's lines go to a log), one line when it
# rebuilds, the log's tail and a non-zero exit when the build fails. The real cmake for the
# "nothing changed" case (run twice: the second run prints nothing on stderr); a stand-in cmake
# (TOKFENCE_CMAKE) for the rebuild and failure cases, so the test never rebuilds the tree.
source "$(dirname "$0")/lib.sh"

wrapper=$SOURCE_DIR/scripts/tokfence
[[ -f $BUILD_DIR/CMakeCache.txt ]] || die "no configured build directory at $BUILD_DIR"

run_wrapper() {  # sets W_RC, W_OUT, W_ERR
  set +e
  W_OUT=$(env "$@" TOKFENCE_BUILD_DIR="$BUILD_DIR" "$wrapper" --version 2>"$WORK/out/wrapper.err" </dev/null)
  W_RC=$?
  set -e
  W_ERR=$(cat "$WORK/out/wrapper.err")
}

# Nothing changed: the second run prints nothing but tokfence's own output.
run_wrapper
expect_eq "$W_RC" 0 "first run: $W_ERR"
run_wrapper
expect_eq "$W_RC" 0 "second run: $W_ERR"
expect_eq "$W_ERR" "" "second run's stderr"
expect_contains "$W_OUT" "tokfence "

# A rebuild: make's progress lines stay in the log, one line is printed.
fake=$WORK/fake-cmake
cat >"$fake" <<'SH'
#!/usr/bin/env bash
[[ $1 == --build ]] || exit 0
case ${FAKE_CMAKE_MODE:-} in
  rebuild)
    echo "[ 10%] Building CXX object launcher/openclaw/CMakeFiles/x.dir/launch.cpp.o"
    echo "[ 50%] Building CXX object launcher/openclaw/CMakeFiles/x.dir/image.cpp.o"
    echo "[100%] Linking CXX executable bin/tokfence"
    echo "[100%] Built target tokfence" ;;
  fail)
    echo "[ 10%] Building CXX object launcher/openclaw/CMakeFiles/x.dir/launch.cpp.o"
    echo "launch.cpp:1:1: error: FAKE-COMPILER-ERROR" >&2
    exit 2 ;;
esac
SH
chmod +x "$fake"
run_wrapper TOKFENCE_CMAKE="$fake" FAKE_CMAKE_MODE=rebuild
expect_eq "$W_RC" 0 "rebuild: $W_ERR"
expect_eq "$(wc -l <<<"$W_ERR")" 1 "one line on a rebuild: $W_ERR"
expect_contains "$W_ERR" "tokfence: sources changed, rebuilding (log: $BUILD_DIR/wrapper-build.log)"
expect_not_contains "$W_ERR" "Building CXX"
expect_contains "$(cat "$BUILD_DIR/wrapper-build.log")" "Linking CXX executable bin/tokfence"

run_wrapper TOKFENCE_CMAKE="$fake" FAKE_CMAKE_MODE=fail
expect_eq "$W_RC" 1 "failed build"
expect_contains "$W_ERR" "FAKE-COMPILER-ERROR"
expect_contains "$W_ERR" "tokfence: build failed (log: $BUILD_DIR/wrapper-build.log)"
expect_not_contains "$W_OUT" "tokfence " "tokfence must not run after a failed build"
log "ok"
