#!/usr/bin/env bash
# GET /metrics on the daemon's loopback dashboard listener ([dashboard] enabled, port 0): after a
# known load through the proxy (priced and unpriced models, cache tokens, a refusal, an upstream
# error), the Prometheus text parses strictly and its counters equal the request log's
# (`tokfence log --json`). The data plane's gauges follow a held-open stream (active streams and
# connections up while it runs, back to 0 after), the egress counters an allowed CONNECT (from
# `tokfence run`) and refused ones, equal to `tokfence log --egress`; the log writer's commit
# times are observed. Other users, other Host names, other paths and methods are refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
command -v python3 >/dev/null || skip "python3 is needed to parse the metrics"

egress_tls_setup
start_fake_upstream
mapfile -t EGRESS_LINES < <(egress_config_lines)
write_test_config '[budget]' 'timezone = "UTC"' '[dashboard]' 'enabled = true' 'port = 0' "${EGRESS_LINES[@]}"
for p in openai anthropic mistral; do
  add_canary_key $p
done
start_daemon
DASH_PORT=$(jq .dashboard_port "$TOKFENCE_HOME/daemon.json")
[[ $DASH_PORT =~ ^[0-9]+$ && $DASH_PORT != 0 ]] || die "daemon.json has no dashboard_port: $(cat "$TOKFENCE_HOME/daemon.json")"
METRICS_URL="http://127.0.0.1:$DASH_PORT/metrics"
tf_ok budget set global 5 monthly
tf_ok revoke mistral

send() {  # PROVIDER MODEL [curl args]: prints the status
  local provider=$1 model=$2 url
  shift 2
  case $provider in
    anthropic) url="$PROXY_URL/anthropic/v1/messages" ;;
    *) url="$PROXY_URL/$provider/v1/chat/completions" ;;
  esac
  curl -sS --max-time 30 -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -H 'authorization: Bearer dummy' -H 'x-api-key: dummy' "$@" \
    --data "{\"model\":\"$model\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$url"
}
expect_eq "$(send openai gpt-4o -H 'x-fake-reasoning: 500')" 200
expect_eq "$(send openai gpt-4o -H 'x-fake-cache: 64')" 200
expect_eq "$(send openai gpt-4o-mini -H 'x-fake-chunks: 40')" 200
expect_eq "$(send anthropic claude-sonnet-4-5 -H 'x-fake-cache: 2000' -H 'x-fake-cache-write: 300')" 200
expect_eq "$(send anthropic claude-sonnet-4-5)" 200
expect_eq "$(send openai gpt-4o -H 'x-fake-status: 500')" 500
expect_eq "$(send mistral mistral-large-latest)" 403
# A model with no price (allowed: no budget refuses unknown cost unless [budget] says so).
tf_ok budget clear global
expect_eq "$(send openai no-such-model-9000)" 200
# A model name with quotes and a backslash must be escaped, not break the format.
expect_eq "$(send openai 'we\\\"ird model')" 200

tf_ok log -n 1000 --json
LOG="$WORK/out/log.json"
printf '%s\n' "$TF_OUT" >"$LOG"
expect_eq "$(jq length "$LOG")" 9 "rows logged"
curl -sS --max-time 10 -D "$WORK/out/metrics.h" -o "$WORK/out/metrics.txt" "$METRICS_URL"
expect_contains "$(tr -d '\r' <"$WORK/out/metrics.h")" "Content-Type: text/plain; version=0.0.4"
python3 "$SOURCE_DIR/tests/integration/metrics_check.py" "$WORK/out/metrics.txt" "$LOG" || die "metrics do not match the log"
M=$(cat "$WORK/out/metrics.txt")
# Every series the Grafana dashboard in docs/ queries is one the daemon serves.
python3 - "$SOURCE_DIR/docs/grafana/tokfence-dashboard.json" "$WORK/out/metrics.txt" <<'PY' || die "the Grafana dashboard queries a series /metrics does not have"
import json, re, sys
served = {l.split()[2] for l in open(sys.argv[2]) if l.startswith("# TYPE ")}
used = {m for p in json.load(open(sys.argv[1]))["panels"] for t in p["targets"]
        for m in re.findall(r"\b(?:gen_ai|tokfence)_[a-z_]+", re.sub(r"by \([^)]*\)|\{[^}]*\}", "", t["expr"]))}
missing = {m for m in used if re.sub(r"_(bucket|sum|count)$", "", m) not in served}
print("grafana: missing " + ", ".join(sorted(missing)), file=sys.stderr) if missing else None
sys.exit(1 if missing else 0)
PY
expect_contains "$M" 'tokfence_provider_revoked{gen_ai_provider_name="mistral"} 1'
# The log writer committed the load in at least one timed batch.
(($(awk '$1 == "tokfence_request_log_commit_duration_seconds_count" {print $2}' <<<"$M") >= 1)) ||
  die "no commit time observed: $(grep commit_duration <<<"$M")"

# --- the data plane's gauges: a stream held open ----------------------------------------------------
metric() {  # SAMPLE (name with its labels, as printed): its value in a fresh scrape
  curl -sS --max-time 10 "$METRICS_URL" | awk -v n="$1" '$1 == n {print $2}'
}
expect_eq "$(metric tokfence_active_streams)" 0 "active streams with nothing in flight"
# The load's connections are closed by now, or very soon.
wait_until '[[ $(metric tokfence_active_connections) == 0 ]]' 10
# The fake sends the first event, then holds the stream open for 3 s.
curl -sS --max-time 30 -o "$WORK/out/held.txt" -H 'content-type: application/json' -H 'authorization: Bearer dummy' \
  -H 'x-fake-first-chunk-then-wait-ms: 3000' -H 'x-fake-chunks: 3' \
  --data '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
  "$PROXY_URL/openai/v1/chat/completions" &
HELD=$!
wait_until '[[ $(metric tokfence_active_streams) == 1 ]]' 10
(($(metric tokfence_active_connections) >= 1)) || die "active connections while a stream is held open: $(metric tokfence_active_connections)"
wait "$HELD" || die "the held stream failed"
expect_contains "$(cat "$WORK/out/held.txt")" "[DONE]" "the held stream ended normally"
wait_until '[[ $(metric tokfence_active_streams) == 0 ]]' 10
wait_until '[[ $(metric tokfence_active_connections) == 0 ]]' 10

# --- egress decisions ---------------------------------------------------------------------------------
expect_eq "$(metric 'tokfence_egress_decisions_total{decision="allowed"}')" 0 "allowed egress before any"
expect_eq "$(metric 'tokfence_egress_decisions_total{decision="denied"}')" 0 "denied egress before any"
# The main listener refuses every CONNECT (no-egress-on-main-listener).
! curl -sS --max-time 10 -o /dev/null -x "$PROXY_URL" https://allowed.test/ 2>/dev/null || die "CONNECT on the main listener succeeded"
PROJECT="$WORK/project"
mkdir -p "$PROJECT"
CURL=$(command -v curl) || skip "curl missing"
RUN_FLAGS=(--allow allowed.test)
curl_in_run -sS --max-time 20 --cacert "$TLS_DIR/ca.pem" https://allowed.test/
expect_eq "$TF_OUT" "hello from allowed.test over tls" "allowed egress through 'tokfence run': $TF_ERR"
curl_in_run -sS --max-time 20 --cacert "$TLS_DIR/ca.pem" https://denied.test/
[[ $TF_RC -ne 0 ]] || die "egress to denied.test succeeded: $TF_OUT"
expect_eq "$(metric 'tokfence_egress_decisions_total{decision="allowed"}')" 1 "allowed egress"
expect_eq "$(metric 'tokfence_egress_decisions_total{decision="denied"}')" 2 "denied egress"
tf_ok log --egress -n 100 --json
expect_eq "$(jq '[.[] | select(.decision == "allowed")] | length' <<<"$TF_OUT")" 1 "allowed rows in 'log --egress'"
expect_eq "$(jq '[.[] | select(.decision == "denied")] | length' <<<"$TF_OUT")" 2 "denied rows in 'log --egress'"
expect_contains "$M" 'tokfence_kill_switch 0'
expect_contains "$M" '# TYPE gen_ai_client_token_usage histogram'
expect_contains "$M" 'gen_ai_request_model="we\\\"ird model"' "escaped label value"
tf_ok kill
expect_contains "$(curl -sS --max-time 10 "$METRICS_URL")" 'tokfence_kill_switch 1' "kill switch gauge"
tf_ok unkill
tf_ok budget set openai 2 daily
expect_contains "$(curl -sS --max-time 10 "$METRICS_URL")" 'tokfence_budget_limit_usd{scope="openai",period="daily"} 2'

# --- refusals ---------------------------------------------------------------------------------
code() { curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$@"; }
expect_eq "$(code -H 'Host: attacker.example' "$METRICS_URL")" 421 "a rebound Host name"
expect_eq "$(code -H "Host: localhost:$DASH_PORT" "$METRICS_URL")" 200 "localhost"
expect_eq "$(code "http://127.0.0.1:$DASH_PORT/")" 401 "the web dashboard without its cookie (docs/DASHBOARD.md)"
expect_eq "$(code -X POST "$METRICS_URL")" 405 "POST"
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  other=$(setpriv --reuid 65534 --regid 65534 --clear-groups curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$METRICS_URL" || true)
  expect_eq "$other" 403 "another uid"
else
  log "not root: the other-uid refusal is not tested here"
fi
# Still serving after the refusals (one thread, each connection bounded).
expect_eq "$(code "$METRICS_URL")" 200 "after refusals"

# --- off by default -------------------------------------------------------------------------------
stop_daemon
write_test_config
start_daemon
expect_eq "$(jq .dashboard_port "$TOKFENCE_HOME/daemon.json")" null "no listener unless [dashboard] enabled"
