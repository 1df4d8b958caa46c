#!/usr/bin/env bash
# The vault key must not pile up in the daemon's memory. The proxy puts it into each upstream
# request's headers; that memory is wiped when freed (core/secret.hpp WipingAllocator), so after
# thousands of requests the key is still held in exactly one place: the key store's locked buffer.
# Without the wipe, every freed header block kept a readable copy (14 after ~36k requests).
#
# Reads the daemon's memory through /proc/<pid>/mem, which a non-dumpable process only allows to a
# tracer with CAP_SYS_PTRACE: root here; skipped otherwise.
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || skip "reading another process's memory needs root (CAP_SYS_PTRACE)"

start_fake_upstream
write_test_config
add_canary_key openai
start_daemon
PID=$(jq -r .pid "$TOKFENCE_HOME/daemon.json")

# Counts the canary's occurrences in every readable mapping of the daemon. Prints only the count.
copies_in_memory() {
  CANARY="$CANARY" /usr/bin/python3 - "$PID" <<'PY'
import os, re, sys
needle = os.environ["CANARY"].encode()
count = 0
with open(f"/proc/{sys.argv[1]}/maps") as maps, open(f"/proc/{sys.argv[1]}/mem", "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        if "r" not in m.group(3) or "[vvar]" in line or "[vsyscall]" in line:
            continue
        start, end = int(m.group(1), 16), int(m.group(2), 16)
        try:
            mem.seek(start)
            count += mem.read(end - start).count(needle)
        except OSError:
            pass
print(count)
PY
}

before=$(copies_in_memory)
log "key copies after start: $before"
[[ $before -ge 1 ]] || die "the scan does not find the key the daemon holds (found $before): the test cannot see anything"

# Keep-alive and fresh connections, JSON and streamed replies: every path that builds a request.
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}]}'
stream='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"ping"}]}'
urls=()
for _ in $(seq 200); do urls+=("$PROXY_URL/openai/v1/chat/completions"); done
curl -fsS -H "Content-Type: application/json" -d "$body" "${urls[@]}" >/dev/null || die "keep-alive requests failed"
for _ in $(seq 50); do
  curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$body" "$PROXY_URL/openai/v1/chat/completions" ||
    die "one-shot request failed"
  curl -fsS -o /dev/null -H 'Content-Type: application/json' -d "$stream" "$PROXY_URL/openai/v1/chat/completions" ||
    die "streamed request failed"
done

after=$(copies_in_memory)
log "key copies after 300 requests: $after"
[[ $after -le $before ]] || die "the key is in the daemon's memory $after times after 300 requests (at start: $before)"

stop_daemon
scan_for_canary
log "ok"
