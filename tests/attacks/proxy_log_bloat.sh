#!/usr/bin/env bash
# Attack: disk exhaustion through the request log. Every request gets a row, and its text fields
# come from the client: the model name in the body (bodies may be 64 MiB), the path, the caller
# name in X-Tokfence-Caller. Three requests with an 8 MiB model name used to grow tokfence.db by
# 33 MB. Each field must be stored at most 256 bytes long (cut at a UTF-8 boundary) with a
# visible "…[truncated]" marker: three such requests grow the database by less than 1 MB.
# Fails against a build that stores the fields whole (TOKFENCE_BIN=/tmp/orig/build/bin/tokfence).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
add_canary_key openai
start_daemon
DB="$TOKFENCE_HOME/tokfence.db"
curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}' >/dev/null
"$TOKFENCE_BIN" log -n 1 >/dev/null 2>&1 || true  # flushed: the schema and a first row exist
db_bytes() { cat "$DB" "$DB-wal" 2>/dev/null | wc -c; }
before=$(db_bytes)

/usr/bin/python3 - "$WORK/big.json" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump({"model": "m" * (8 << 20), "messages": [{"role": "user", "content": "hi"}]}, f)
PY
long_path=$(head -c 30000 /dev/zero | tr '\0' 'p')
long_caller=$(head -c 30000 /dev/zero | tr '\0' 'c')
for i in 1 2 3; do
  curl -sS -o /dev/null --max-time 60 -H "X-Tokfence-Caller: $long_caller$i" \
    "$PROXY_URL/openai/v1/chat/completions" --data-binary @"$WORK/big.json" || die "request $i failed"
  curl -sS -o /dev/null --max-time 60 "$PROXY_URL/openai/v1/$long_path$i" -d '{}' || die "long path request $i failed"
done
wait_until "'$TOKFENCE_BIN' log --json -n 20 | jq -e 'length >= 7'" 20
after=$(db_bytes)
grown=$((after - before))
log "tokfence.db (+wal) ${before} -> ${after} bytes (+${grown})"
((grown < 1000000)) || die "three 8 MiB model names (and 30 KB paths and callers) grew the log by ${grown} bytes (limit 1 MB)"

tf_ok log --json -n 20
rows=$TF_OUT
marker='…[truncated]'
expect_eq "$(jq --arg m "$marker" '[.[] | select(.model | endswith($m))] | length' <<<"$rows")" 3 "rows whose model shows the truncation marker"
expect_eq "$(jq --arg m "$marker" '[.[] | select(.caller_name | endswith($m))] | length' <<<"$rows")" 3 "rows whose caller shows the marker"
expect_eq "$(jq --arg m "$marker" '[.[] | select(.path | endswith($m))] | length' <<<"$rows")" 3 "rows whose path shows the marker"
longest=$(jq '[.[] | .model, .caller_name, .path, .error | utf8bytelength] | max' <<<"$rows")
((longest <= 256 + ${#marker} * 3)) || die "a stored field is ${longest} bytes long"
tf_ok log -n 20
expect_contains "$TF_OUT" "$marker" "the table shows the marker"

stop_daemon
scan_for_canary
log "ok"
