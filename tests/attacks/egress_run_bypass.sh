#!/usr/bin/env bash
# Escape class: egress around the policy proxy from `tokfence run`. The agent ignores HTTPS_PROXY
# (curl --noproxy '*', or a raw TCP connect) and goes straight to the address of a host it may
# reach through the proxy, or asks the proxy for that address as an IP literal. Unprotected
# (--no-sandbox) the direct connection works; sandboxed it fails (no route: the network namespace
# has only its own lo), the IP-literal CONNECT is refused, and only the proxied request answers.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/egress_lib.bash"
egress_run_setup
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"
direct=(-sS --max-time 10 --noproxy '*' --cacert "$TLS_DIR/ca.pem" --resolve "allowed.test:$TLS_PORT:127.0.0.1"
  "https://allowed.test:$TLS_PORT/")

log "unprotected: --no-sandbox reaches the host's TLS server directly"
RUN_FLAGS=(--no-sandbox)
curl_in_run "${direct[@]}"
expect_eq "$TF_RC" 0 "control: direct curl with --no-sandbox: $TF_ERR"
expect_contains "$TF_OUT" "hello from allowed.test"

log "sandboxed, with allowed.test allowed: the direct connection fails"
RUN_FLAGS=(--allow allowed.test)
curl_in_run "${direct[@]}"
[[ $TF_RC -ne 0 ]] || die "a direct connection from the sandbox reached the host: $TF_OUT"
tf run codex --command "$PROBE" --workdir "$PROJECT" --allow allowed.test -- connect 127.0.0.1 "$TLS_PORT"
expect_eq "$TF_RC" 1 "raw TCP to 127.0.0.1:$TLS_PORT from the sandbox: $TF_OUT"

log "sandboxed: CONNECT to the same address as an IP literal is refused by the proxy"
# (--noproxy '': 127.0.0.1 is in NO_PROXY, so curl would otherwise go direct.)
curl_in_run -sS -v --max-time 10 --noproxy '' -k "https://127.0.0.1:$TLS_PORT/"
[[ $TF_RC -ne 0 ]] || die "CONNECT 127.0.0.1:$TLS_PORT through the proxy succeeded: $TF_OUT"
expect_egress_refusal "$TF_ERR" "CONNECT 127.0.0.1:$TLS_PORT"

log "sandboxed: through the proxy, the allowed name answers (so the refusals above are the fence)"
curl_in_run -sS --max-time 20 --cacert "$TLS_DIR/ca.pem" https://allowed.test/
expect_eq "$TF_RC" 0 "proxied curl: $TF_ERR"
expect_eq "$TF_OUT" "hello from allowed.test over tls"
