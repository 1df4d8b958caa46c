#!/usr/bin/env bash
# Writers never lose each other's keys, and an interrupted write leaves the old vault intact.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME"
printf '[vault]\nbackend = "file"\n' >"$TOKFENCE_HOME/config.toml"
VAULT="$TOKFENCE_HOME/vault.enc"

add_canary_key openai

log "two concurrent adds both survive (each is a locked read-modify-write)"
pids=()
for p in anthropic groq; do
  printf '%s' "tfconc-$p-$(random_token 20)" | "$TOKFENCE_BIN" vault add "$p" - >"$WORK/out/conc-$p.stdout" 2>"$WORK/out/conc-$p.stderr" &
  pids+=($!)
done
for i in 0 1; do wait "${pids[$i]}" || die "concurrent add $i failed: $(cat "$WORK"/out/conc-*.stderr)"; done
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "anthropic,groq,openai"

log "four concurrent writers of different kinds"
pids=()
printf '%s' "tfconc-m-$(random_token 20)" | "$TOKFENCE_BIN" vault add mistral - >"$WORK/out/c4a.out" 2>&1 &
pids+=($!)
printf '%s' "tfconc-g-$(random_token 20)" | "$TOKFENCE_BIN" vault add google - >"$WORK/out/c4b.out" 2>&1 &
pids+=($!)
"$TOKFENCE_BIN" vault remove groq >"$WORK/out/c4c.out" 2>&1 </dev/null &
pids+=($!)
printf '%s' "tfconc-r-$(random_token 20)" | "$TOKFENCE_BIN" vault rotate anthropic - >"$WORK/out/c4d.out" 2>&1 &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid" || die "a concurrent writer failed: $(cat "$WORK"/out/c4*.out)"; done
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "anthropic,google,mistral,openai"
[[ $(jq -r '.[] | select(.provider=="anthropic") | .rotated_at' <<<"$TF_OUT") != null ]] || die "rotation lost"

log "kill -9 in the middle of an add leaves the old vault whole"
cp "$VAULT" "$WORK/vault.enc.before"
# The add spends most of its time in Argon2id (two derivations of ~0.6 s): kill it at several
# points in that window, each time checking that the old file is untouched.
interrupted=0
for delay in 0.2 0.5 0.9 1.3; do
  printf '%s' "tfkilled-$(random_token 20)" | "$TOKFENCE_BIN" vault add killed - >"$WORK/out/kill.out" 2>&1 &
  pid=$!
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if cmp -s "$VAULT" "$WORK/vault.enc.before"; then
    interrupted=$((interrupted + 1))
    continue
  fi
  # The add won the race and finished: that is the new file, whole. Start over from it.
  tf_ok vault list --json
  expect_contains "$TF_OUT" '"killed"'
  tf_ok vault remove killed
  cp "$VAULT" "$WORK/vault.enc.before"
done
[[ $interrupted -gt 0 ]] || die "no add was interrupted: every one finished before its kill"
log "$interrupted of 4 adds were killed before they wrote"
tf_ok vault list --json
expect_eq "$(jq -r 'map(.provider) | join(",")' <<<"$TF_OUT")" "anthropic,google,mistral,openai"

log "a write that cannot finish (no space for the temporary file) leaves the old vault whole"
# A tiny tmpfs as the home: the vault fits once, a bigger rewrite does not.
if [[ $(id -u) -eq 0 ]]; then
  cp "$VAULT" "$WORK/vault.enc.before"
  set +e
  printf '%s' "tfbig-$(head -c 6000 /dev/urandom | base64 -w0 | tr -dc A-Za-z0-9 | head -c 6000)" | unshare -m bash -c '
    mount -t tmpfs -o size=12k,mode=700 tmpfs "$TOKFENCE_HOME" || exit 99
    cp "'"$WORK"'/vault.enc.before" "$TOKFENCE_HOME/vault.enc"
    printf "[vault]\nbackend = \"file\"\n" >"$TOKFENCE_HOME/config.toml"
    "$TOKFENCE_BIN" vault add huge -
    rc=$?
    cmp -s "$TOKFENCE_HOME/vault.enc" "'"$WORK"'/vault.enc.before" || { echo "vault changed" >&2; exit 98; }
    ls "$TOKFENCE_HOME" | grep -q "vault.enc.tmp-" && { echo "temporary left behind" >&2; exit 97; }
    exit $rc' >"$WORK/out/full.stdout" 2>"$WORK/out/full.stderr"
  rc=$?
  set -e
  [[ $rc -ne 99 ]] || die "could not mount a tmpfs"
  [[ $rc -ne 98 && $rc -ne 97 ]] || die "$(cat "$WORK/out/full.stderr")"
  [[ $rc -ne 0 ]] || die "an add into a full home succeeded"
  expect_contains "$(cat "$WORK/out/full.stderr")" "tokfence: error: vault: cannot write: "
  expect_contains "$(cat "$WORK/out/full.stderr")" "No space left on device"
else
  log "not root: the tmpfs part is covered by the kill -9 part only"
fi
