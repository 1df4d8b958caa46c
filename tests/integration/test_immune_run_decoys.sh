#!/usr/bin/env bash
# ImmuneFence (issue 19) in `tokfence run`: every run is a session. Inside the sandbox a shell (the
# "agent") finds the session's decoys where an attacker looks - ~/.aws/credentials,
# ~/.config/gh/hosts.yml, ~/.env, ~/.netrc and the GH_TOKEN variable -
# and its key variable holds the session's capability token. Checked:
#  - the decoy files exist, parse as their formats, are 0600 and the agent's, and differ between
#    two runs; the decoy variables too; none equals anything of the host (a real ~/.aws/credentials
#    and AWS_* in the parent environment stay invisible and untouched);
#  - the host's HOME is byte-for-byte as before (no file or directory created there);
#  - entries of the real HOME and ~/.config stay visible (the tmpfs over them brings them back);
#  - the token is the agent's key (a request with it is served; the old dummy key is refused) and
#    differs per run, but appears in no process's argv on the host while the run is live, not in
#    the daemon's log, not in the database (sqlite3 .dump), and nowhere under TOKFENCE_HOME after
#    the run.
source "$(dirname "$0")/lib.sh"
PROBE="$BUILD_DIR/bin/tokfence-probe"
[[ -x "$PROBE" ]] || die "tokfence-probe not built: $PROBE"
command -v sqlite3 >/dev/null || skip "sqlite3 (the CLI) is not installed"

start_fake_upstream --require-key "$CANARY"
write_test_config
add_canary_key openai
start_daemon

# A user's home of the test's own, with real credentials where the decoys go (and a neighbour in
# ~/.config that must stay visible). HOME is what the sandbox plants under.
UHOME="$WORK/uhome"
mkdir -p "$UHOME/.aws" "$UHOME/.config/other" "$WORK/project"
HOST_MARK="hostsecret$(random_token 24)"
# The host's own access key id: made at run time (no key-shaped literal in the tree).
HOST_KEY_ID="AKIA$(random_token 16 | tr 'a-z' 'A-Z')"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$HOST_KEY_ID" "$HOST_MARK" >"$UHOME/.aws/credentials"
printf 'keep me\n' >"$UHOME/.config/other/file"
printf 'plain dotfile\n' >"$UHOME/.profile"
chmod 700 "$UHOME"
snapshot_home() { (cd "$UHOME" && find . -printf '%p %y %m %s %T@\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(snapshot_home)
export HOME="$UHOME" AWS_ACCESS_KEY_ID="$HOST_KEY_ID" AWS_SECRET_ACCESS_KEY="$HOST_MARK" GH_TOKEN="$HOST_MARK"

# The agent: copies what it finds into the workdir, proves the token works, then waits (at most
# 20 s) for the host to look at the process table while it runs.
# (The sandbox passes only allow-listed variables: the probe's path goes into the script itself.)
AGENT="PROBE='$PROBE'
"$(cat <<'EOF'
out="$PWD/$1"; mkdir -p "$out"
cat ~/.aws/credentials >"$out/aws" 2>&1; echo "rc $?" >>"$out/status"
cat ~/.config/gh/hosts.yml >"$out/gh" 2>&1; echo "rc $?" >>"$out/status"
cat ~/.env >"$out/dotenv" 2>&1; echo "rc $?" >>"$out/status"
cat ~/.netrc >"$out/netrc" 2>&1; echo "rc $?" >>"$out/status"
stat -c '%n %a %u' ~/.aws/credentials ~/.config/gh/hosts.yml ~/.env ~/.netrc >"$out/meta" 2>&1
cat ~/.config/other/file ~/.profile >"$out/visible" 2>&1
env | grep -E '^(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|GH_TOKEN)=' | sort >"$out/envdecoys"
"$PROBE" http-get "$OPENAI_BASE_URL/models" "Authorization: Bearer $OPENAI_API_KEY" >"$out/http_token" 2>&1; echo "rc $?" >>"$out/http_token"
"$PROBE" http-get "$OPENAI_BASE_URL/models" "Authorization: Bearer tokfence-managed" >"$out/http_dummy" 2>&1; echo "rc $?" >>"$out/http_dummy"
printf %s "$OPENAI_API_KEY" >"$out/token.tmp" && mv "$out/token.tmp" "$out/token"
i=0; while [ ! -e "$out/go" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
EOF
)

# One run in the background; while it waits, the host checks argv of every process for the token.
run_agent() {
  local tag=$1 o="$WORK/out/run-$1.stdout" e="$WORK/out/run-$1.stderr"
  "$TOKFENCE_BIN" run codex --command /bin/sh --workdir "$WORK/project" -- -c "$AGENT" agent "$tag" >"$o" 2>"$e" </dev/null &
  local pid=$!
  _pids_to_kill+=("$pid")  # if a check below fails while it runs
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -s "$WORK/project/$tag/token" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -s "$WORK/project/$tag/token" ]]; then
    local token
    token=$(cat "$WORK/project/$tag/token")
    local hits=0 f
    for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do
      # Our own shell's environment does not hold it; the agent's (inside the fence) does.
      [[ $f == */environ ]] && continue
      if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "$token"; then hits=$((hits + 1)); fi
    done
    expect_eq "$hits" 0 "run $tag: the session token in a process's argv on the host"
  fi
  touch "$WORK/project/$tag/go"
  wait "$pid" && RUN_RC=0 || RUN_RC=$?
  RUN_ERR=$(cat "$e")
}

log "run 1"
run_agent r1
[[ $RUN_RC -eq 0 ]] || die "run 1 exited $RUN_RC: $RUN_ERR"
[[ -s "$WORK/project/r1/token" ]] || die "run 1: the agent never saw a key: $RUN_ERR"
log "run 2"
run_agent r2
[[ $RUN_RC -eq 0 ]] || die "run 2 exited $RUN_RC: $RUN_ERR"

T1=$(cat "$WORK/project/r1/token") T2=$(cat "$WORK/project/r2/token")
rm -f "$WORK/project/r1/token" "$WORK/project/r2/token"

log "the key is the session's token, per run, and it is what the proxy wants"
[[ $T1 == tfc1.* && $T2 == tfc1.* ]] || die "the agent's key is not a tfc1 capability token"
[[ $T1 != "$T2" ]] || die "two runs got the same token"
for r in r1 r2; do
  expect_contains "$(cat "$WORK/project/$r/http_token")" "status 200" "$r: request with the session token"
  expect_contains "$(cat "$WORK/project/$r/http_dummy")" "status 403" "$r: the old dummy key must be refused"
  expect_contains "$(cat "$WORK/project/$r/http_dummy")" "tokfence_capability" "$r: refusal names the capability check"
done

log "decoy files: present, parse, 0600 and the agent's, fresh per run"
for r in r1 r2; do
  expect_eq "$(grep -c '^rc 0$' "$WORK/project/$r/status")" 4 "$r: every decoy file readable: $(cat "$WORK/project/$r/status")"
  python3 - "$WORK/project/$r" "$(id -u)" <<'PY' || die "$r: decoy files do not parse"
import configparser, re, sys
d, uid = sys.argv[1], sys.argv[2]
c = configparser.ConfigParser(); c.read(d + "/aws")
assert re.fullmatch(r"AKIA[A-Z2-7]{16}", c["default"]["aws_access_key_id"]), "aws key id"
assert len(c["default"]["aws_secret_access_key"]) == 40, "aws secret"
gh = open(d + "/gh").read()
assert re.search(r"^github\.com:\n", gh, re.M) and re.search(r"oauth_token: gho_[A-Za-z0-9]{36}\n", gh), "gh hosts.yml"
try:
    import yaml
    assert yaml.safe_load(gh)["github.com"]["oauth_token"].startswith("gho_")
except ImportError:
    pass
env = dict(l.split("=", 1) for l in open(d + "/dotenv").read().split())
assert env["OPENAI_API_KEY"].startswith("sk-proj-") and env["ANTHROPIC_API_KEY"].startswith("sk-ant-api03-"), ".env"
assert "machine api.heroku.com" in open(d + "/netrc").read(), ".netrc"
for line in open(d + "/meta"):
    name, mode, owner = line.split()
    assert mode == "600" and owner == uid, line
PY
done
for f in aws gh dotenv netrc envdecoys; do
  [[ "$(cat "$WORK/project/r1/$f")" != "$(cat "$WORK/project/r2/$f")" ]] || die "decoy $f identical in two runs"
done

log "decoy variables: set, forbidden names passed only as tokfence's own, never the parent's"
for r in r1 r2; do
  ev=$(cat "$WORK/project/$r/envdecoys")
  expect_contains "$ev" "GH_TOKEN=ghp_" "$r: GH_TOKEN decoy"
  # The decoy AWS keys are in ~/.aws/credentials only (core/decoys.cpp: a variable is what an
  # env dump sends); the parent's AWS variables never pass.
  expect_not_contains "$ev" "AWS_ACCESS_KEY_ID=" "$r: an AWS variable in the sandbox"
done

log "nothing of the host's shows through, and the host's HOME is untouched"
hits=$(grep -rlF -e "$HOST_MARK" -e "$HOST_KEY_ID" "$WORK/project" || true)
[[ -z $hits ]] || die "the host's real credentials reached the sandbox: $hits"
expect_eq "$(cat "$WORK/project/r1/visible")" "keep me
plain dotfile" "other entries of HOME and ~/.config stay visible"
after=$(snapshot_home)
[[ "$before" == "$after" ]] || die "the host's HOME changed: $(diff <(echo "$before") <(echo "$after") || true)"

log "the tokens are nowhere on the host after the runs"
for t in "$T1" "$T2"; do
  hits=$(grep -rlaF -- "$t" "$TOKFENCE_HOME" 2>/dev/null || true)
  [[ -z $hits ]] || die "a session token left under TOKFENCE_HOME: $hits"
  tail=${t: -20}
  hits=$(grep -rlaF -- "$tail" "$TOKFENCE_HOME" 2>/dev/null || true)
  [[ -z $hits ]] || die "the tail of a session token (claude's approval form) left under TOKFENCE_HOME: $hits"
  for db in $(find "$TOKFENCE_HOME" -name '*.db' -o -name '*.sqlite' 2>/dev/null); do
    if sqlite3 "$db" .dump | grep -qF -- "$t"; then die "a session token in the database $db"; fi
  done
  hits=$(grep -rlaF -- "$t" "$WORK/out" 2>/dev/null || true)
  [[ -z $hits ]] || die "a session token in tokfence's output: $hits"
done
dbs=$(find "$TOKFENCE_HOME" -name '*.db' | wc -l)
((dbs > 0)) || die "no database found under TOKFENCE_HOME: the dump check did not run"
daemon_logs=$(find "$TOKFENCE_HOME" -name '*.log' | wc -l)
((daemon_logs > 0)) || die "no daemon log found under TOKFENCE_HOME: the log check did not run"
