#!/usr/bin/env bash
# Escape class: links planted where `tokfence launch` puts a session's decoys (ImmuneFence,
# issue 19). The container's $HOME is its state home, TOKFENCE_HOME/openclaw/<name>/home, which the
# container writes and which is kept between launches. An earlier launch (or its agent) leaves
# there ~/.aws, ~/.config and ~/.env as symlinks to host paths of the user's. A host that planted
# the next session's decoys by path would write through them, as the user, into those paths (and
# removing them after the launch by path would delete the user's files).
# Checked: launch puts the decoys in through the engine (PUT archive, extracted in the container's
# view, links replaced, not followed), the container sees real decoy files, and every victim keeps
# its bytes, also after the launch removed the decoys again.
#
# Proving it can fail: the control step writes through one planted link by path and sees the
# victim change.
source "$(dirname "$0")/../integration/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

launch_test_setup
start_daemon
name="tfs-$RUN_ID"
V="$WORK/victim"
mkdir -p "$V/aws" "$V/config/gh"
printf 'VICTIM-AWS\n' >"$V/aws/credentials"
printf 'VICTIM-GH\n' >"$V/config/gh/hosts.yml"
printf 'VICTIM-ENV\n' >"$V/env"
victims() { (cd "$V" && find . -printf '%p %y %m %s %u\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(victims)

# What an earlier launch left in the kept state home (as the container user would have).
STATE_HOME="$TOKFENCE_HOME/openclaw/$name/home"
mkdir -p "$STATE_HOME"
chmod 700 "$TOKFENCE_HOME/openclaw" "$TOKFENCE_HOME/openclaw/$name" "$STATE_HOME"
ln -s "$V/aws" "$STATE_HOME/.aws"
ln -s "$V/config" "$STATE_HOME/.config"
ln -s "$V/env" "$STATE_HOME/.env"
chown -h "$(launch_default_ids)" "$STATE_HOME" "$STATE_HOME/.aws" "$STATE_HOME/.config" "$STATE_HOME/.env"

log "control: a write by path follows the planted link"
cp -a "$V" "$WORK/vcopy"
mkdir -p "$WORK/hcopy"
ln -s "$WORK/vcopy/env" "$WORK/hcopy/.env"
printf 'decoy\n' >"$WORK/hcopy/.env"
[[ "$(cat "$WORK/vcopy/env")" == decoy ]] || die "control: the link was not followed; the trap is not live"
rm -rf "$WORK/vcopy" "$WORK/hcopy"

script=$(cat <<'EOF'
for f in .aws/credentials .config/gh/hosts.yml .env; do
  if [ -L "$HOME/${f%%/*}" ]; then echo "R link $f 1"; else echo "R link $f 0"; fi
  grep -q VICTIM "$HOME/$f"; echo "R victim $f $?"
  test -f "$HOME/$f"; echo "R file $f $?"
done
grep -c aws_access_key_id "$HOME/.aws/credentials"
EOF
)
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" -- /bin/sh -c "$script"
expect_eq "$TF_RC" 0 "launch over a trapped state home: $TF_ERR"
result() { sed -n "s|^R $1 \([0-9]*\)$|\1|p" <<<"$TF_OUT" | tail -1; }
for f in .aws/credentials .config/gh/hosts.yml .env; do
  expect_eq "$(result "link $f")" 0 "$f's directory in the container is no longer the planted link"
  expect_eq "$(result "file $f")" 0 "decoy $f is a file in the container"
  expect_eq "$(result "victim $f")" 1 "the container reads the victim through $f"
done
[[ "$(victims)" == "$before" ]] || die "a victim behind a planted link changed: $(diff <(echo "$before") <(victims) || true)"
for f in .aws/credentials .config/gh/hosts.yml .env .netrc; do
  [[ ! -e "$STATE_HOME/$f" ]] || die "decoy $f left in the state home"
done
expect_nothing_left "$name"
