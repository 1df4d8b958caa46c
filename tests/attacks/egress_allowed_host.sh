#!/usr/bin/env bash
# Egress through the forward proxy (docs/EGRESS.md): an agent behind a per-run socket reaches a
# host its policy allows (a preset, an explicit rule), over real TLS verified by curl against the
# fake's certificate, through tokfence-relay as inside a sandbox; plain http:// goes in origin
# form with the proxy's headers stripped; an absolute-form request to the proxy's own name is an
# ordinary model request (OpenClaw's proxy mode sends those). Every connection is a row of the
# egress table, shown by `tokfence log --egress --json` and `stats --by host`.
source "$(dirname "$0")/egress_lib.bash"

egress_setup '{"presets":["telegram"],"allow":["plain.example:80"]}'

log "an allowed host answers through the tunnel (preset telegram)"
through https://api.telegram.org/hello
expect_eq "$CONNECT_CODE" 200 "CONNECT answer"
expect_eq "$CODE" 200 "status through the tunnel"
expect_eq "$OUT" "hello from the fake https server" "body through the tunnel"

log "a bigger transfer is counted both ways"
through "https://api.telegram.org/bytes?n=1000000" -o /dev/null
expect_eq "$CODE" 200 "1 MB through the tunnel"

log "plain http:// in absolute form: forwarded in origin form, Proxy-Authorization stripped"
through http://plain.example/hello -H "Proxy-Authorization: Basic $CANARY"
expect_eq "$CODE" 200 "absolute-form request"
expect_eq "$OUT" "hello from the fake http server" "plain body"
expect_eq "$(tail -1 "$WORK/PLAIN.requests")" "GET /hello plain.example" "the destination saw origin form and the URL's Host"

log "absolute form to the proxy's own name is a model request (key injected, caller label kept)"
out=$(curl -sS --max-time 20 --proxy "$AGENT_PROXY" -w '\n%{http_code}' \
  "http://127.0.0.1:$RELAY_PORT/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}')
expect_eq "$(tail -1 <<<"$out")" 200 "model request in absolute form"
last=$(curl -fsS "$FAKE_URL/__fake/requests" | jq -c '.[-1]')
expect_eq "$(jq -r .path <<<"$last")" /v1/chat/completions "upstream path"

log "every connection is a row: host, port, decision, rule, bytes, caller"
rows=$(egress_rows)
expect_eq "$(jq length <<<"$rows")" 3 "egress rows (the model request is a request row, not egress)"
first=$(jq -c '.[0]' <<<"$rows")
expect_eq "$(jq -r '.host, .port, .decision, .rule, .caller, .kind' <<<"$first" | paste -sd' ')" \
  "api.telegram.org 443 allowed preset:telegram:api.telegram.org:443 codex connect" "first row"
expect_eq "$(jq -r .address <<<"$first")" "127.0.0.1:$TLS_PORT" "the mapped address was connected"
(($(jq -r .bytes_up <<<"$first") > 200)) || die "bytes_up too small: $first"
(($(jq -r .bytes_down <<<"$first") > 500)) || die "bytes_down too small: $first"
(($(jq -r '.[1].bytes_down' <<<"$rows") > 1000000)) || die "1 MB not counted: $(jq -c '.[1]' <<<"$rows")"
expect_eq "$(jq -r '.[2] | .host, .port, .kind, .rule' <<<"$rows" | paste -sd' ')" \
  "plain.example 80 http allow:plain.example:80" "plain row"
tf_ok log --egress
expect_contains "$TF_OUT" "api.telegram.org:443"
tf_ok stats --by host --json
expect_eq "$(jq -r '.groups[] | select(.host == "api.telegram.org") | .allowed' <<<"$TF_OUT")" 2 "stats --by host"
