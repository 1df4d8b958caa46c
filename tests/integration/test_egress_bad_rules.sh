#!/usr/bin/env bash
# Bad --allow / --egress-preset values stop `tokfence run` and `tokfence launch` with an error that
# names the flag and the entry, before anything starts: no daemon, no socket, no container, and the
# program never runs.
source "$(dirname "$0")/lib.sh"
start_fake_upstream
write_test_config '[egress.presets.internal]' 'hosts = ["mirror.internal.test"]'
add_canary_key openai
mkdir -p "$WORK/project"
marker="$WORK/project/ran"

nothing_started() {
  [[ ! -e $marker ]] || die "$1: the program ran"
  [[ ! -e $TOKFENCE_HOME/daemon.json ]] || die "$1: a daemon was started"
  if [[ -d $TOKFENCE_HOME/sockets ]] && [[ -n $(ls -A "$TOKFENCE_HOME/sockets") ]]; then
    die "$1: sockets were created: $(ls -A "$TOKFENCE_HOME/sockets")"
  fi
  [[ ! -e $TOKFENCE_HOME/openclaw/tfbad ]] || die "$1: a launch directory was created"
  if docker info >/dev/null 2>&1; then
    [[ -z $(docker ps -aq --filter "label=org.tokfence.home=$TOKFENCE_HOME") ]] || die "$1: a container was created"
  fi
}

bad_allow=('https://api.telegram.org/' 'api.telegram.org/bot' 'two words.test' 'host.test:0' 'host.test:99999'
  'host.test:https' '*' 'a.*.test' 'user@host.test' '' ':443')
for value in "${bad_allow[@]}"; do
  log "run --allow '$value'"
  tf run codex --command /bin/touch --workdir "$WORK/project" --allow "$value" -- "$marker"
  [[ $TF_RC -ne 0 ]] || die "run --allow '$value' was accepted"
  expect_contains "$TF_ERR" "--allow" "run --allow '$value': the error names the flag"
  [[ -z $value ]] || expect_contains "$TF_ERR" "'$value'" "run --allow '$value': the error names the entry"
  nothing_started "run --allow '$value'"

  log "launch --allow '$value'"
  tf launch --image tokfence-test-none:0 --no-pull --name tfbad --allow "$value" -- /bin/touch /workspace/ran
  [[ $TF_RC -ne 0 ]] || die "launch --allow '$value' was accepted"
  expect_contains "$TF_ERR" "--allow" "launch --allow '$value': the error names the flag"
  nothing_started "launch --allow '$value'"
done

log "an unknown preset names itself and the known ones"
tf run codex --command /bin/touch --workdir "$WORK/project" --egress-preset nosuchpreset -- "$marker"
[[ $TF_RC -ne 0 ]] || die "run --egress-preset nosuchpreset was accepted"
expect_contains "$TF_ERR" "--egress-preset: unknown preset 'nosuchpreset'"
expect_contains "$TF_ERR" "npm"
expect_contains "$TF_ERR" "internal"
nothing_started "run --egress-preset nosuchpreset"
tf launch --image tokfence-test-none:0 --no-pull --name tfbad --egress-preset nosuchpreset
[[ $TF_RC -ne 0 ]] || die "launch --egress-preset nosuchpreset was accepted"
expect_contains "$TF_ERR" "unknown preset 'nosuchpreset'"
nothing_started "launch --egress-preset nosuchpreset"

log "one bad entry among good ones still stops it"
tf run codex --command /bin/touch --workdir "$WORK/project" --allow allowed.test --egress-preset npm \
  --egress-preset internal --allow 'bad host' -- "$marker"
[[ $TF_RC -ne 0 ]] || die "a bad entry after good ones was accepted"
expect_contains "$TF_ERR" "'bad host'"
nothing_started "a bad entry after good ones"

log "good values pass the check (the run then starts)"
tf run codex --command /bin/touch --workdir "$WORK/project" --allow allowed.test --allow '*.example.test:8443' \
  --allow '[::1]:9000' --allow 192.0.2.7 --egress-preset npm --egress-preset internal -- "$marker"
expect_eq "$TF_RC" 0 "run with good egress values: $TF_ERR"
[[ -e $marker ]] || die "the run with good values did not run the program"
