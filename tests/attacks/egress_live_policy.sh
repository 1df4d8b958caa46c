#!/usr/bin/env bash
# Live policy changes through the control op `egress` (what `tokfence egress allow|deny|list`
# sends): they apply from the next connection on; a deny wins over presets and wildcards; `list`
# shows one caller's policy or every socket's; an unknown caller is an error naming the open ones.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"presets":["npm"]}'
op() { ctl "{\"op\":\"egress\",\"caller\":\"${2:-codex}\",\"action\":\"$1\"${3:+,\"rule\":\"$3\"}}"; }

through https://allowed.example/hello
expect_eq "$CONNECT_CODE" 403 "before allow"
reply=$(op allow codex "allowed.example")
expect_eq "$(jq -c '[.ok, .allow, .presets]' <<<"$reply")" '[true,["allowed.example:443"],["npm"]]' "allow answer"
through https://allowed.example/hello
expect_eq "$CODE" 200 "after allow"

log "a deny beats the preset"
through https://registry.npmjs.org/hello
expect_eq "$CODE" 200 "preset npm"
reply=$(op deny codex registry.npmjs.org)
expect_eq "$(jq -c .deny <<<"$reply")" '["registry.npmjs.org:443"]' "deny answer"
through https://registry.npmjs.org/hello
expect_eq "$CONNECT_CODE" 403 "after deny"
expect_eq "$(egress_header)" "deny:registry.npmjs.org:443" "X-Tokfence-Egress names the deny rule"

log "deny removes an allow rule"
op deny codex allowed.example >/dev/null
through https://allowed.example/hello
expect_eq "$CONNECT_CODE" 403 "after deny of an allowed host"

log "a tunnel already open is not cut by a policy change (next connection only)"
op allow codex allowed.example >/dev/null
curl -sS --max-time 60 --proxy "$AGENT_PROXY" --cacert "$WORK/cert.pem" -o "$WORK/slow.body" https://allowed.example/slow 2>/dev/null &
slow=$!
_pids_to_kill+=($slow)
wait_until "test \$(stat -c %s '$WORK/slow.body' 2>/dev/null || echo 0) -gt 2048" 20
op deny codex allowed.example >/dev/null
before=$(stat -c %s "$WORK/slow.body")
sleep 1.5
(($(stat -c %s "$WORK/slow.body") > before)) || die "the open tunnel stopped after a policy change"
kill "$slow" 2>/dev/null || true

log "list, and errors"
reply=$(op list codex)
expect_eq "$(jq -c '[.caller, .allow, .deny, .presets]' <<<"$reply")" \
  '["codex",[],["registry.npmjs.org:443","allowed.example:443"],["npm"]]' "list"
reply=$(ctl '{"op":"egress","action":"list"}')
expect_eq "$(jq -c '[.listeners[] | .caller]' <<<"$reply")" '["codex"]' "list without caller"
reply=$(op allow nosuch x.example)
expect_eq "$(jq -r .ok <<<"$reply")" false "unknown caller"
expect_contains "$(jq -r .error <<<"$reply")" "no proxy socket is open for caller 'nosuch' (open: 'codex')"
expect_contains "$(op allow codex 'bad host' | jq -r .error)" "rule 'bad host'"
expect_contains "$(op frobnicate codex | jq -r .error)" "'action' must be"
expect_contains "$(ctl '{"op":"egress","action":"allow","rule":"x.example"}' | jq -r .error)" "'caller' is required"

log "a persisted socket keeps its policy, and its changes, across a daemon restart"
reply=$(ctl "{\"op\":\"open_proxy_socket\",\"path\":\"$WORK/run/kept.sock\",\"caller\":\"openclaw:kept\",\"persist\":true,\"egress\":{\"allow\":[\"allowed.example\"],\"presets\":[\"github\"]}}")
expect_eq "$(jq -r .ok <<<"$reply")" true "open a persisted socket: $reply"
op deny openclaw:kept api.github.com >/dev/null
tf_ok stop
start_daemon
reply=$(op list openclaw:kept)
expect_eq "$(jq -c '[.allow, .deny, .presets]' <<<"$reply")" '[["allowed.example:443"],["api.github.com:443"],["github"]]' \
  "policy after restart: $reply"
