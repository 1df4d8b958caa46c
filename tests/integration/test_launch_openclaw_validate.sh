#!/usr/bin/env bash
# `launch` runs OpenClaw's own `openclaw config validate` in the image on the rendered config
# before starting it (a one-shot container, no network) and refuses with OpenClaw's message when
# the config is rejected: here a template with a key OpenClaw does not know (through
# TOKFENCE_TEMPLATES_DIR, a copy of templates/). An accepted config is not checked again for the
# same image. Needs the real OpenClaw image (built and cached like test_launch_openclaw).
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"

oc_image=$("$SOURCE_DIR/scripts/build-openclaw-image" --cache "$BUILD_DIR/openclaw-image") ||
  die "could not build the OpenClaw image (needs Debian's mirror and the npm registry)"
launch_test_setup
name="tfv-$RUN_ID"

bad=$WORK/templates
mkdir -p "$bad/openclaw"
# The unknown key goes right after the opening brace of the template's object.
python3 - "$SOURCE_DIR/templates/openclaw/openclaw.json.tmpl" "$bad/openclaw/openclaw.json.tmpl" <<'PY'
import sys
text = open(sys.argv[1]).read()
at = text.index("\n{") + 2
open(sys.argv[2], "w").write(text[:at] + '\n  "tokfenceTestUnknownKey": true,' + text[at:])
PY

TOKFENCE_TEMPLATES_DIR=$bad tf launch --image "$oc_image" --no-pull --name "$name" -- openclaw --log-level error agent --local --agent main --message ping
expect_eq "$TF_RC" 1 "launch with a config OpenClaw rejects: $TF_OUT"
expect_contains "$TF_ERR" "launch: checking the config with 'openclaw config validate' in $oc_image"
expect_contains "$TF_ERR" "launch: OpenClaw in $oc_image rejects the config tokfence rendered ('openclaw config validate' exited"
expect_contains "$TF_ERR" "tokfenceTestUnknownKey" "OpenClaw's own message names the key"
log "OpenClaw said: $(sed -n '/rejects the config/,$p' <<<"$TF_ERR" | head -8)"
expect_not_contains "$TF_OUT" "pong" "the agent must not have run"
expect_nothing_left "$name"
[[ -z $(docker ps -aq --filter "label=org.tokfence.validate=$name") ]] || die "the validate container was left"

# The real template: checked once, then remembered for this image.
tf launch --image "$oc_image" --no-pull --name "$name" -- openclaw --log-level error config validate
expect_eq "$TF_RC" 0 "valid config: $TF_ERR"
expect_contains "$TF_ERR" "launch: checking the config with 'openclaw config validate'"
tf launch --image "$oc_image" --no-pull --name "$name" -- openclaw --log-level error config validate
expect_eq "$TF_RC" 0 "valid config, second launch: $TF_ERR"
expect_not_contains "$TF_ERR" "checking the config" "an accepted config is not checked again"
# --no-validate skips it even for a config never seen.
TOKFENCE_TEMPLATES_DIR=$bad tf launch --image "$oc_image" --no-pull --no-validate --name "$name" -- true
expect_not_contains "$TF_ERR" "checking the config"
expect_nothing_left "$name"
log "ok"
