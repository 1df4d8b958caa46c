#!/usr/bin/env bash
# The kill switch covers egress: `tokfence kill` cuts a live tunnel (a long transfer stops within
# about a second, the sweep's period) and refuses new ones (403 kill-switch); `unkill` restores.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"allow":["allowed.example"]}'

log "a long transfer runs through the tunnel"
curl -sS --max-time 60 --proxy "$AGENT_PROXY" --cacert "$WORK/cert.pem" -o "$WORK/slow.body" \
  https://allowed.example/slow 2>"$WORK/slow.err" &
slow=$!
_pids_to_kill+=($slow)
wait_until "test \$(stat -c %s '$WORK/slow.body' 2>/dev/null || echo 0) -gt 4096" 20
tf_ok kill
start=$(date +%s%N)
for ((i = 0; i < 100; i++)); do kill -0 "$slow" 2>/dev/null || break; sleep 0.1; done
kill -0 "$slow" 2>/dev/null && die "the tunnel still runs 10 s after the kill switch"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
log "tunnel cut ${elapsed_ms} ms after kill"
size=$(stat -c %s "$WORK/slow.body")
((size < 600 * 1024)) || die "the whole transfer went through ($size bytes)"

log "no new tunnel while killed"
through https://allowed.example/hello
expect_eq "$CONNECT_CODE" 403 "CONNECT while killed"
expect_eq "$(egress_header)" kill-switch "X-Tokfence-Egress"
tf_ok unkill
through https://allowed.example/hello
expect_eq "$CODE" 200 "after unkill"

rows=$(egress_rows)
expect_eq "$(jq -r '.[0] | .decision, .error' <<<"$rows" | paste -sd'|')" "allowed|cut by the kill switch" "the cut tunnel's row"
(($(jq -r '.[0].bytes_down' <<<"$rows") > 4096)) || die "the cut tunnel's bytes were not counted"
expect_eq "$(jq -r '.[1] | .decision, .rule' <<<"$rows" | paste -sd' ')" "denied kill-switch" "refused row"
