#!/usr/bin/env bash
# `tokfence env` output evaluates in bash, zsh and fish, and sets the proxy base URLs and dummy keys.
# The proxy address comes from the config when no daemon runs; a host containing quotes, $, `
# and backslashes checks the quoting of every shell.
source "$(dirname "$0")/lib.sh"
for sh in bash zsh fish; do command -v $sh >/dev/null || skip "$sh not installed (scripts/setup installs it)"; done

mkdir -p "$TOKFENCE_HOME" && chmod 700 "$TOKFENCE_HOME"
cat >"$TOKFENCE_HOME/config.toml" <<'TOML'
[daemon]
port = 9555

[vault]
backend = "file"

[providers.my-llm]
upstream = "http://127.0.0.1:11434"

[providers.01ai]
upstream = "http://127.0.0.1:11435"
TOML

B=http://127.0.0.1:9555
declare -A want=(
  [OPENAI_BASE_URL]=$B/openai/v1
  [ANTHROPIC_BASE_URL]=$B/anthropic
  [GOOGLE_GEMINI_BASE_URL]=$B/google
  [TOKFENCE_PROXY_URL]=$B
  [OPENAI_API_KEY]=tokfence-managed
  [CODEX_API_KEY]=tokfence-managed
  [ANTHROPIC_API_KEY]=tokfence-managed
  [GEMINI_API_KEY]=tokfence-managed
  [GOOGLE_API_KEY]=tokfence-managed
  [MISTRAL_API_KEY]=tokfence-managed
  [GROQ_API_KEY]=tokfence-managed
  [XAI_API_KEY]=tokfence-managed
  [MY_LLM_API_KEY]=tokfence-managed
)
names="${!want[*]}"

# Prints NAME=VALUE for every wanted variable after evaluating `env --shell $1` in that shell.
eval_in() {
  local shell=$1 script="$WORK/env.$1"
  shift
  tf_ok env --shell "$shell" "$@"
  printf '%s\n' "$TF_OUT" >"$script"
  case $shell in
    bash) env -i PATH="$PATH" bash --norc --noprofile -c "set -eu; eval \"\$(cat '$script')\"; for n in $names; do printf '%s=%s\n' \$n \"\${!n-UNSET}\"; done" ;;
    zsh) env -i PATH="$PATH" zsh -f -c "set -eu; eval \"\$(cat '$script')\"; for n in ${names}; do printf '%s=%s\n' \$n \"\${(P)n-UNSET}\"; done" ;;
    fish) env -i PATH="$PATH" HOME="$WORK" fish --no-config -c "source '$script'; or exit 1; for n in $names; if set -q \$n; printf '%s=%s\n' \$n \$\$n; else; printf '%s=UNSET\n' \$n; end; end" ;;
  esac
}

for shell in bash zsh fish; do
  got=$(eval_in $shell) || die "$shell could not evaluate 'tokfence env --shell $shell'"
  for n in "${!want[@]}"; do
    expect_eq "$(grep "^$n=" <<<"$got")" "$n=${want[$n]}" "$shell: $n"
  done
done
# fish syntax is its own; bash/zsh get export lines.
tf_ok env --shell fish
expect_contains "$TF_OUT" "set -gx OPENAI_BASE_URL 'http://127.0.0.1:9555/openai/v1';"
tf_ok env --shell bash
expect_contains "$TF_OUT" "export OPENAI_BASE_URL='http://127.0.0.1:9555/openai/v1';"
# A provider name that is not a valid variable name is explained, not exported.
expect_contains "$TF_OUT" "01AI_API_KEY is not a valid variable name"
expect_not_contains "$TF_OUT" "export 01AI"
# Default shell from $SHELL.
SHELL=/usr/bin/fish tf_ok env
expect_contains "$TF_OUT" "set -gx "

# --provider: only that provider's variables.
for shell in bash zsh fish; do
  got=$(eval_in $shell --provider anthropic)
  expect_eq "$(grep '^ANTHROPIC_BASE_URL=' <<<"$got")" "ANTHROPIC_BASE_URL=$B/anthropic" "$shell --provider anthropic"
  expect_eq "$(grep '^ANTHROPIC_API_KEY=' <<<"$got")" "ANTHROPIC_API_KEY=tokfence-managed"
  expect_eq "$(grep '^OPENAI_BASE_URL=' <<<"$got")" "OPENAI_BASE_URL=UNSET" "$shell: --provider anthropic sets no OpenAI variable"
  expect_eq "$(grep '^OPENAI_API_KEY=' <<<"$got")" "OPENAI_API_KEY=UNSET"
done
tf_ok env --provider my-llm
expect_contains "$TF_OUT" "# my-llm: openai API at $B/my-llm/v1"

# Quoting: a hostile host string survives each shell unchanged and runs nothing.
weird=$'we\'ird"h$HOME`touch pwned`\\x'
cat >"$TOKFENCE_HOME/config.toml" <<TOML
[daemon]
host = '''$weird'''
port = 9556
TOML
for shell in bash zsh fish; do
  got=$(cd "$WORK" && eval_in $shell)
  expect_eq "$(grep '^TOKFENCE_PROXY_URL=' <<<"$got")" "TOKFENCE_PROXY_URL=http://$weird:9556" "$shell quoting"
  [[ ! -e "$WORK/pwned" ]] || die "$shell: env output ran a command"
done

# A newline in the address cannot turn a comment line into a command.
printf '[daemon]\nhost = "evil\\ntouch pwned2\\n"\nport = 9557\n' >"$TOKFENCE_HOME/config.toml"
for shell in bash zsh fish; do
  got=$(cd "$WORK" && eval_in $shell)
  [[ ! -e "$WORK/pwned2" ]] || die "$shell: a newline in the host ran a command"
done

# Bad input.
printf '[daemon]\nport = 9555\n' >"$TOKFENCE_HOME/config.toml"
tf env --shell tcsh
[[ $TF_RC -ne 0 ]] || die "--shell tcsh accepted"
expect_contains "$TF_ERR" "tokfence: error: --shell 'tcsh': unsupported shell: use bash, zsh or fish"
tf env --provider nosuch
[[ $TF_RC -ne 0 ]] || die "unknown provider accepted"
expect_contains "$TF_ERR" "provider 'nosuch': unknown: known providers are anthropic, cerebras"
tf env --provider 'NO WAY'
[[ $TF_RC -ne 0 ]] || die "bad provider name accepted"
expect_contains "$TF_ERR" "provider name 'NO WAY'"
printf '[daemon]\nport = 0\n' >"$TOKFENCE_HOME/config.toml"
tf env
[[ $TF_RC -ne 0 ]] || die "port 0 without a daemon accepted"
expect_contains "$TF_ERR" "run 'tokfence start -d' first"

tf_ok env --help
expect_contains "$TF_OUT" "Example"
