#!/usr/bin/env bash
# A provider whose upstream is plain http:// to a host that is not loopback sends the owner's key
# across the network in clear text, where anyone on the path reads it. Before issue 15 such a
# config was accepted silently. Now it is refused when the config is read (daemon start, every
# command), with a positioned error that says why, unless the provider sets allow_insecure = true;
# `tokfence provider set` refuses to write it. Loopback http:// (a local model server) is fine.
# No request is ever sent to the non-loopback names used here (.invalid, TEST-NET-1).
source "$(dirname "$0")/../integration/lib.sh"

start_fake_upstream
write_test_config
tf provider list
expect_eq "$TF_RC" 0 "loopback http:// upstreams: $TF_ERR"

for upstream in http://llm.example.invalid:8080/v1 http://192.0.2.1 "http://[2001:db8::1]:11434" http://127.0.0.1.example.invalid; do
  printf '[daemon]\nport = 0\n\n[providers.remote]\nupstream = "%s"\n' "$upstream" >"$TOKFENCE_HOME/config.toml"
  tf start -d
  [[ $TF_RC -ne 0 ]] || die "the daemon started with a clear-text upstream $upstream"
  expect_contains "$TF_ERR" "config.toml:5:"
  expect_contains "$TF_ERR" "the key would travel in clear text"
  expect_contains "$TF_ERR" "allow_insecure = true"
  [[ ! -e "$TOKFENCE_HOME/daemon.json" ]] || die "daemon.json written for a refused config"
done

log "allow_insecure = true is the owner's explicit choice"
printf '[daemon]\nport = 0\n\n[providers.remote]\nupstream = "http://192.0.2.1:8080"\nallow_insecure = true\n' \
  >"$TOKFENCE_HOME/config.toml"
tf_ok provider list --json
expect_eq "$(jq -r '.[] | select(.name == "remote") | .upstream' <<<"$TF_OUT")" "http://192.0.2.1:8080" "allowed upstream"

log "provider set refuses to write a clear-text upstream"
printf '[daemon]\nport = 0\n' >"$TOKFENCE_HOME/config.toml"
before=$(cat "$TOKFENCE_HOME/config.toml")
tf provider set remote http://llm.example.invalid:8080
[[ $TF_RC -ne 0 ]] || die "provider set wrote a clear-text upstream"
expect_contains "$TF_ERR" "the key would travel in clear text"
expect_eq "$(cat "$TOKFENCE_HOME/config.toml")" "$before" "config changed by a refused provider set"
tf_ok provider set localmodel http://localhost:11434
tf_ok provider set localmodel6 "http://[::1]:11434"
