# shellcheck shell=bash
# A stand-in for a launch container's UI behind tokfence-relay, started as launch starts its
# dashboard relay (unixat: the socket name inside a directory descriptor, with the socket owner's
# uid), without a container: the UI attacks (launch_ui_cross_site, launch_ui_page_exfil) test the
# relay's checks on what crosses it.
#
# start_ui_relay NAME STUB [STUB ARGS...] -- [RELAY FLAGS...]: runs python3 STUB $WORK/NAME/ui.sock
# STUB ARGS (its output in $WORK/NAME/stub.out) and a relay with
# RELAY FLAGS in front of it (its log in $WORK/NAME/relay.log); sets ui_port.
start_ui_relay() {
  local name=$1 stub=$2 fd
  shift 2
  local stub_args=()
  while [[ $# -gt 0 && $1 != -- ]]; do stub_args+=("$1"); shift; done
  [[ ${1:-} == -- ]] && shift
  mkdir -p "$WORK/$name"
  python3 "$stub" "$WORK/$name/ui.sock" "${stub_args[@]}" >>"$WORK/$name/stub.out" 2>&1 &
  _pids_to_kill+=($!)
  wait_until "test -S '$WORK/$name/ui.sock'"
  exec {fd}<"$WORK/$name"
  "$TOKFENCE_RELAY_BIN" --forward "tcp:127.0.0.1:0=unixat:$fd/ui.sock@$(id -u)" "$@" \
    --ready-file "$WORK/$name/relay.ready" >"$WORK/$name/relay.log" 2>&1 &
  _pids_to_kill+=($!)
  exec {fd}<&-
  wait_until "test -s '$WORK/$name/relay.ready'"
  ui_port=$(sed -n 's/^tcp:127.0.0.1:\([0-9]*\)=.*/\1/p' "$WORK/$name/relay.ready")
}
