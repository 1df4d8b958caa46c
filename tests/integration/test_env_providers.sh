#!/usr/bin/env bash
# `tokfence provider list` and `provider set`: the built-in table, key presence without prompting,
# editing [providers.<name>] in config.toml while keeping the rest of the file (comments included),
# and a clear error that changes nothing for every bad input.
source "$(dirname "$0")/lib.sh"

mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
CONFIG="$TOKFENCE_HOME/config.toml"
cat >"$CONFIG" <<'TOML'
# my tokfence settings
[daemon]
port = 0 # chosen at start

[vault]
backend = "file"

# local models
[providers.openai]
# the real one is far away
upstream = "https://api.openai.com"   # default

[pricing."my-model"]
input = 1.5
output = 3
TOML

# --- list ---
tf_ok provider list --json
expect_eq "$(jq length <<<"$TF_OUT")" 11 "the built-in providers"
for p in openai anthropic google mistral groq openrouter xai deepseek together fireworks cerebras; do
  expect_eq "$(jq -r --arg p $p '[.[] | select(.name == $p)] | length' <<<"$TF_OUT")" 1 "provider $p listed"
done
expect_eq "$(jq -r '.[] | select(.name == "anthropic") | .auth' <<<"$TF_OUT")" "x-api-key"
expect_eq "$(jq -r '.[] | select(.name == "anthropic") | .upstream' <<<"$TF_OUT")" "https://api.anthropic.com"
expect_eq "$(jq -r '.[] | select(.name == "google") | .auth + " " + .api' <<<"$TF_OUT")" "x-goog-api-key gemini"
expect_eq "$(jq -r '.[] | select(.name == "openai") | .source' <<<"$TF_OUT")" "config"
expect_eq "$(jq -r '.[] | select(.name == "groq") | .source' <<<"$TF_OUT")" "builtin"
expect_eq "$(jq -r '.[] | select(.name == "groq") | .proxy_path' <<<"$TF_OUT")" "/groq/v1"
# No vault yet, passphrase known: nobody has a key.
expect_eq "$(jq -r '[.[] | select(.key != false)] | length' <<<"$TF_OUT")" 0 "no keys yet"

# With a key in the vault, list says so (and never shows the key).
tf_in "$CANARY" vault add anthropic -
if [[ $TF_RC -eq 0 ]]; then
  tf_ok provider list --json
  expect_eq "$(jq -r '.[] | select(.name == "anthropic") | .key' <<<"$TF_OUT")" "true"
  expect_eq "$(jq -r '.[] | select(.name == "openai") | .key' <<<"$TF_OUT")" "false"
  tf_ok provider list
  expect_eq "$(awk '$1 == "anthropic" {print $5}' <<<"$TF_OUT")" "yes"
  expect_eq "$(awk '$1 == "openai" {print $5}' <<<"$TF_OUT")" "no"
else
  die "tokfence vault add failed ($TF_RC): $TF_ERR"
fi
# Without a passphrase, the existing file vault is not opened (no prompt): key presence is unknown.
(unset TOKFENCE_VAULT_PASSPHRASE; tf_ok provider list --json; printf '%s' "$TF_OUT" >"$WORK/list-nopass.json")
expect_eq "$(jq -r '[.[] | select(.key != null)] | length' "$WORK/list-nopass.json")" 0 "key unknown without passphrase"
(unset TOKFENCE_VAULT_PASSPHRASE; tf_ok provider list; printf '%s' "$TF_OUT" >"$WORK/list-nopass.txt")
expect_contains "$(cat "$WORK/list-nopass.txt")" "KEY '?'"

tf_ok provider list
expect_contains "$(head -1 <<<"$TF_OUT")" "UPSTREAM"
expect_contains "$(grep '^mistral' <<<"$TF_OUT")" "https://api.mistral.ai"

# Opening the file vault costs an Argon2id derivation; the checks below only need upstreams, so
# they run without the passphrase (key presence then reads as unknown, without opening the vault).
tf_fast() { TOKFENCE_VAULT_PASSPHRASE= tf_ok "$@"; }

# --- set: an existing [providers.openai] section is edited in place ---
tf_ok provider set openai http://127.0.0.1:8080/
expect_contains "$TF_OUT" "provider openai: upstream http://127.0.0.1:8080"
expect_contains "$(cat "$CONFIG")" 'upstream = "http://127.0.0.1:8080"  # default'
for keep in "# my tokfence settings" "port = 0 # chosen at start" "# the real one is far away" '[pricing."my-model"]' "input = 1.5"; do
  expect_contains "$(cat "$CONFIG")" "$keep" "provider set keeps the rest of the file"
done
expect_not_contains "$(cat "$CONFIG")" "api.openai.com"
tf_fast provider list --json
expect_eq "$(jq -r '.[] | select(.name == "openai") | .upstream' <<<"$TF_OUT")" "http://127.0.0.1:8080"

# --- set: a new provider is appended, with auth and api ---
tf_ok provider set local-llm http://127.0.0.1:11434/v1 --api anthropic --auth x-api-key
tf_fast provider list --json
expect_eq "$(jq -r '.[] | select(.name == "local-llm") | [.upstream, .auth, .api, .source] | join(" ")' <<<"$TF_OUT")" \
  "http://127.0.0.1:11434/v1 x-api-key anthropic config"
expect_eq "$(jq length <<<"$TF_OUT")" 12
# ... and changing only the auth of it keeps its other keys.
tf_ok provider set local-llm http://127.0.0.1:11434/v1 --auth bearer
tf_fast provider list --json
expect_eq "$(jq -r '.[] | select(.name == "local-llm") | .auth + " " + .api' <<<"$TF_OUT")" "bearer anthropic"
expect_eq "$(grep -c '^\[providers.local-llm\]' "$CONFIG")" 1 "one section per provider"

# --- set: a provider known only through a sub-table gets its own keys, not the sub-table's ---
printf '\n[providers.groq.headers]\nx-extra = "1"\n' >>"$CONFIG"
tf_ok provider set groq http://127.0.0.1:9999
tf_fast provider list --json
expect_eq "$(jq -r '.[] | select(.name == "groq") | .upstream' <<<"$TF_OUT")" "http://127.0.0.1:9999"
expect_contains "$(cat "$CONFIG")" 'x-extra = "1"'
expect_contains "$(cat "$CONFIG")" "# the real one is far away" "comments survive a new section"
[[ ! -e "$CONFIG.bak" ]] || die "an in-place edit made a backup"

# --- set: a layout that cannot be edited in place is rewritten, with a backup and a note ---
cp "$CONFIG" "$WORK/config.keep"
printf 'providers.xai.upstream = "http://127.0.0.1:7777"\n# gone after the rewrite\n' >"$CONFIG"
cp "$CONFIG" "$WORK/config.dotted"
tf_ok provider set xai http://127.0.0.1:7778 --api openai
expect_contains "$TF_ERR" "was rewritten"
cmp -s "$CONFIG.bak" "$WORK/config.dotted" || die "the backup is not the previous file"
tf_fast provider list --json
expect_eq "$(jq -r '.[] | select(.name == "xai") | .upstream' <<<"$TF_OUT")" "http://127.0.0.1:7778"
cp "$WORK/config.keep" "$CONFIG"

# --- bad input: clear error, config unchanged ---
cp "$CONFIG" "$WORK/config.before"
unchanged() { cmp -s "$CONFIG" "$WORK/config.before" || die "config.toml changed after: $*"; }
bad() {  # expected-message args...
  local msg=$1
  shift
  tf "$@"
  [[ $TF_RC -ne 0 ]] || die "accepted: tokfence $*"
  expect_contains "$TF_ERR" "tokfence: error: "
  expect_contains "$TF_ERR" "$msg"
  unchanged "$@"
}
bad "upstream 'ftp://example.com': must start with http:// or https://" provider set openai ftp://example.com
bad "must not contain credentials" provider set openai "https://user:secret@api.openai.com"
bad "must not have a query or fragment" provider set openai "https://api.openai.com/?key=x"
bad "contains a space" provider set openai "https://api.openai.com/a b"
bad "has no host" provider set openai "https://"
bad "has a port outside 1-65535" provider set openai "http://127.0.0.1:70000"
bad "provider name 'Bad_Name'" provider set Bad_Name http://127.0.0.1:1
bad "provider name '../etc'" provider set ../etc http://127.0.0.1:1
bad "--auth 'basic': unknown auth scheme: use bearer, x-api-key or x-goog-api-key" provider set openai http://127.0.0.1:1 --auth basic
bad "--api 'soap': unknown API style: use openai, anthropic or gemini" provider set openai http://127.0.0.1:1 --api soap
tf provider set openai
[[ $TF_RC -ne 0 ]] || die "provider set without a URL accepted"
unchanged "missing url"
# A config file with a syntax error is not touched.
printf '[daemon\n' >>"$CONFIG"
cp "$CONFIG" "$WORK/config.before"
bad "config.toml:" provider set openai http://127.0.0.1:1

tf_ok provider --help
expect_contains "$TF_OUT" "Example"
tf_ok provider set --help
expect_contains "$TF_OUT" "Example"
