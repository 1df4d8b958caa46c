#!/usr/bin/env bash
# ImmuneFence (issue 19) in `tokfence launch`: every launch is a session. In the container (the
# probe image: busybox sh as the "agent") the session's decoys are in $HOME (~/.aws/credentials,
# ~/.config/gh/hosts.yml, ~/.env, ~/.netrc; put there through the engine before the start, owned
# by the container user, 0600) and in the environment (GH_TOKEN); OpenClaw's rendered apiKey is the session's capability token. Checked, over two
# launches of the same name:
#  - the decoys exist, parse, are the container user's and 0600, and differ between launches;
#  - a chat request with the token is served, one with the old dummy key refused;
#  - the token appears in no host process's argv, not in the container's engine-side config
#    (docker inspect: Env, Cmd, Args), not in `launch config` (masked), and after the launch not in
#    the daemon's log, the database (sqlite3 .dump) or anywhere under TOKFENCE_HOME;
#  - after each launch no decoy file is left in the kept state home, and the host's own HOME
#    (with a real ~/.aws/credentials) is untouched.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
command -v sqlite3 >/dev/null || skip "sqlite3 (the CLI) is not installed"

launch_test_setup
start_daemon
name="tfi-$RUN_ID"
UHOME="$WORK/uhome"
mkdir -p "$UHOME/.aws"
HOST_MARK="hostsecret$(random_token 24)"
# The host's own access key id: made at run time (no key-shaped literal in the tree).
HOST_KEY_ID="AKIA$(random_token 16 | tr 'a-z' 'A-Z')"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$HOST_KEY_ID" "$HOST_MARK" >"$UHOME/.aws/credentials"
home_before=$(cd "$UHOME" && find . -printf '%p %y %m %s %T@\n' | sort && sha256sum .aws/credentials)
export HOME="$UHOME" AWS_ACCESS_KEY_ID="$HOST_KEY_ID" AWS_SECRET_ACCESS_KEY="$HOST_MARK"

# Inside: what the agent finds goes to /workspace/r (the launch's workspace, readable on the host);
# then it waits (at most 20 s) for the host to look at processes and the engine while it runs.
script=$(cat <<'EOF'
r=/workspace/r; rm -rf $r; mkdir -p $r
for f in .aws/credentials .config/gh/hosts.yml .env .netrc; do
  cat "$HOME/$f" >"$r/$(echo $f | tr / _)"; echo "R file $f $?"
  echo "$f $(stat -c '%a %u' "$HOME/$f")" >>$r/meta
done
env | grep -E '^(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|GH_TOKEN)=' | sort >$r/envdecoys
key=$(sed -n 's/.*"apiKey": "\([^"]*\)".*/\1/p' /tokfence/config/openclaw.json | head -1)
case "$key" in tfc1.*) echo "R key_is_token 0";; *) echo "R key_is_token 1";; esac
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
wget -Y off -q -O - --header "Authorization: Bearer $key" --header 'Content-Type: application/json' \
  --post-data "$body" http://127.0.0.1:9471/openai/v1/chat/completions >$r/chat 2>&1; echo "R chat_token $?"
wget -Y off -q -O - --header "Authorization: Bearer tokfence-managed" --header 'Content-Type: application/json' \
  --post-data "$body" http://127.0.0.1:9471/openai/v1/chat/completions >$r/chat_dummy 2>&1; echo "R chat_dummy $?"
touch $r/ready
i=0; while [ ! -e $r/go ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
EOF
)

WS="$TOKFENCE_HOME/openclaw/$name/workspace"
STATE_HOME="$TOKFENCE_HOME/openclaw/$name/home"
one_launch() {
  local tag=$1 o="$WORK/out/launch-$1.stdout" e="$WORK/out/launch-$1.stderr" i
  rm -rf "$WS/r"  # the previous launch's results
  "$TOKFENCE_BIN" launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /bin/sh -c "$script" >"$o" 2>"$e" </dev/null &
  local pid=$!
  _pids_to_kill+=("$pid")  # if a check below fails while it runs
  for ((i = 0; i < 600; i++)); do
    [[ -e "$WS/r/ready" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -e "$WS/r/ready" ]] || { wait "$pid" || true; die "launch $tag: the agent did not get ready: $(cat "$e")"; }
  local token
  token=$(jq -r '.models.providers.openai.apiKey' "$TOKFENCE_HOME/openclaw/$name/openclaw.json")
  [[ $token == tfc1.* ]] || die "launch $tag: the rendered apiKey is not a session token"
  TOKENS+=("$token")
  local hits=0 f
  for f in /proc/[0-9]*/cmdline; do
    if { tr '\0' ' ' <"$f"; } 2>/dev/null | grep -qF -- "$token"; then hits=$((hits + 1)); fi
  done
  expect_eq "$hits" 0 "launch $tag: the session token in a process's argv on the host"
  if docker inspect "$name" | grep -qF -- "$token"; then die "launch $tag: the session token in the engine's container config"; fi
  expect_contains "$(docker inspect -f '{{join .Config.Env " "}}' "$name")" "GH_TOKEN=ghp_" "launch $tag: decoy variable in the container"
  LAUNCH_UID=$(launch_container_user "$name")
  LAUNCH_UID=${LAUNCH_UID%%:*}
  tf launch config --name "$name"
  expect_eq "$TF_RC" 0 "launch config: $TF_ERR"
  expect_not_contains "$TF_OUT" "$token" "launch config shows the session token"
  expect_contains "$TF_OUT" "session token, not shown"
  mkdir -p "$WORK/$tag"
  cp -r "$WS/r/." "$WORK/$tag/"
  touch "$WS/r/go"
  wait "$pid" && LAUNCH_RC=0 || LAUNCH_RC=$?
  LAUNCH_OUT=$(cat "$o")
  [[ $LAUNCH_RC -eq 0 ]] || die "launch $tag exited $LAUNCH_RC: $(cat "$e")"
}

TOKENS=()
for tag in l1 l2; do
  log "launch $tag"
  one_launch "$tag"
  result() { sed -n "s|^R $1 \([0-9]*\)$|\1|p" <<<"$LAUNCH_OUT" | tail -1; }
  for f in .aws/credentials .config/gh/hosts.yml .env .netrc; do
    expect_eq "$(result "file $f")" 0 "$tag: decoy $f in the container's HOME"
  done
  expect_eq "$(result key_is_token)" 0 "$tag: OpenClaw's apiKey is the session token"
  expect_eq "$(result chat_token)" 0 "$tag: chat with the session token: $(cat "$WORK/$tag/chat")"
  expect_contains "$(cat "$WORK/$tag/chat")" '"content":"pong"'
  [[ $(result chat_dummy) != 0 ]] || die "$tag: the old dummy key was served"
  # Owned by the container user (as root: the id no host account has, docs/LAUNCH.md).
  expect_eq "$LAUNCH_UID" "$(ids=$(launch_default_ids); echo "${ids%%:*}")" "$tag: the container's uid"
  python3 - "$WORK/$tag" "$LAUNCH_UID" <<'PY' || die "$tag: decoy files do not parse"
import configparser, re, sys
d = sys.argv[1]
c = configparser.ConfigParser(); c.read(d + "/.aws_credentials")
assert re.fullmatch(r"AKIA[A-Z2-7]{16}", c["default"]["aws_access_key_id"]), "aws key id"
gh = open(d + "/.config_gh_hosts.yml").read()
assert re.search(r"oauth_token: gho_[A-Za-z0-9]{36}\n", gh), "gh"
env = dict(l.split("=", 1) for l in open(d + "/.env").read().split())
assert env["OPENAI_API_KEY"].startswith("sk-proj-"), ".env"
assert "machine api.heroku.com" in open(d + "/.netrc").read(), ".netrc"
for line in open(d + "/meta"):
    name, mode, owner = line.split()
    assert mode == "600" and owner == sys.argv[2], line
PY
  ev=$(cat "$WORK/$tag/envdecoys")
  expect_contains "$ev" "GH_TOKEN=ghp_"
  expect_not_contains "$ev" "AWS_ACCESS_KEY_ID=" "$tag: an AWS variable in the container"
  expect_not_contains "$ev" "$HOST_KEY_ID" "the host's AWS variables reached the container"
  log "$tag: nothing of the session left in the state home"
  for f in .aws/credentials .config/gh/hosts.yml .env .netrc; do
    [[ ! -e "$STATE_HOME/$f" && ! -L "$STATE_HOME/$f" ]] || die "$tag: decoy $f left in the state home"
  done
  expect_nothing_left "$name"
done

log "fresh decoys and tokens per launch"
for f in .aws_credentials .config_gh_hosts.yml .env .netrc envdecoys; do
  [[ "$(cat "$WORK/l1/$f")" != "$(cat "$WORK/l2/$f")" ]] || die "decoy $f identical in two launches"
done
[[ ${TOKENS[0]} != "${TOKENS[1]}" ]] || die "two launches got the same token"
hits=$(grep -rlF -e "$HOST_MARK" "$WORK/l1" "$WORK/l2" || true)
[[ -z $hits ]] || die "the host's credentials reached the container: $hits"
home_after=$(cd "$UHOME" && find . -printf '%p %y %m %s %T@\n' | sort && sha256sum .aws/credentials)
[[ $home_before == "$home_after" ]] || die "the host's HOME changed"

log "the tokens are nowhere on the host after the launches"
for t in "${TOKENS[@]}"; do
  hits=$(grep -rlaF -- "$t" "$TOKFENCE_HOME" "$WORK/out" 2>/dev/null || true)
  [[ -z $hits ]] || die "a session token left on the host: $hits"
  [[ -f $TOKFENCE_HOME/tokfence.db ]] || die "no database: the dump check cannot run"
  if sqlite3 "$TOKFENCE_HOME/tokfence.db" .dump | grep -qF -- "$t"; then die "a session token in the database"; fi
done
[[ -s $TOKFENCE_HOME/daemon.log ]] || die "no daemon log: the log check did not run"
TOKENS=()
