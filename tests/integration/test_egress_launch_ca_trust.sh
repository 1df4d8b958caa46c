#!/usr/bin/env bash
# The launch container trusts tokfence's local CA (docs/EGRESS.md "Inside the fence: the local CA"):
# egress-ca.pem and egress-ca-bundle.pem sit in the launch's host-owned proxy/ directory, mounted
# read-only at /run/tokfence; NODE_EXTRA_CA_CERTS and SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
# CURL_CA_BUNDLE, GIT_SSL_CAINFO point at them; the container user can read them and change none of
# them. `launch --secret VAR=NAME` puts the placeholder in VAR; a bad entry starts nothing.
source "$(dirname "$0")/lib.sh"
source "$SOURCE_DIR/tests/images/launch_lib.sh"
launch_test_setup
start_daemon
name="tfca-$RUN_ID"
ca_sum=$(sha256sum <"$TOKFENCE_HOME/egress-ca.pem" | cut -d' ' -f1)

script=$(cat <<'SH'
env | grep -E '^(NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|GIT_SSL_CAINFO|TELEGRAM_BOT_TOKEN)=' | sort
sum() { sha256sum <"$1" | cut -d' ' -f1; }
echo "CA $(sum "$NODE_EXTRA_CA_CERTS")"
tail -n "$(wc -l <"$NODE_EXTRA_CA_CERTS")" "$SSL_CERT_FILE" | sha256sum | cut -d' ' -f1 | sed 's/^/BUNDLE_TAIL /'
(echo evil >"$SSL_CERT_FILE") 2>/dev/null; echo "W truncate $?"
rm -f "$NODE_EXTRA_CA_CERTS" 2>/dev/null; echo "W rm $?"
ln -sf /tmp/evil /run/tokfence/egress-ca-bundle.pem 2>/dev/null; echo "W symlink $?"
echo evil >/run/tokfence/new.pem 2>/dev/null; echo "W create $?"
echo "CA_AFTER $(sum "$NODE_EXTRA_CA_CERTS")"
SH
)
tf_in "tg$(random_token 30)" vault add telegram-bot - --host api.telegram.org
expect_eq "$TF_RC" 0 "vault add telegram-bot: $TF_ERR"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --secret TELEGRAM_BOT_TOKEN=telegram-bot -- /bin/sh -c "$script"
log "launch exited $TF_RC"
out=$TF_OUT
grep -qx 'NODE_EXTRA_CA_CERTS=/run/tokfence/egress-ca.pem' <<<"$out" || die "NODE_EXTRA_CA_CERTS in the container: $out $TF_ERR"
for var in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  grep -qx "$var=/run/tokfence/egress-ca-bundle.pem" <<<"$out" || die "$var in the container: $out"
done
grep -qx 'TELEGRAM_BOT_TOKEN=tokfence-secret:telegram-bot' <<<"$out" || die "--secret placeholder in the container: $out"
expect_contains "$out" "CA $ca_sum" "the container's CA file"
expect_contains "$out" "BUNDLE_TAIL $ca_sum" "the bundle does not end with the CA"
expect_eq "$(grep -c '^W ' <<<"$out")" 4 "write attempts reported: $out"
while read -r what rc; do
  [[ $rc != 0 ]] || die "the container could change the trust files ($what succeeded): $out"
done < <(sed -n 's/^W //p' <<<"$out")
expect_contains "$out" "CA_AFTER $ca_sum"
expect_nothing_left "$name"

log "a bad --secret starts nothing"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --secret HTTPS_PROXY=x -- /bin/sh -c 'echo started'
[[ $TF_RC -ne 0 ]] || die "launch --secret HTTPS_PROXY=x was accepted"
expect_contains "$TF_ERR" "--secret: 'HTTPS_PROXY=x'"
expect_not_contains "$TF_OUT" "started"
[[ -z $(docker ps -aq --filter "label=org.tokfence.launch=$name") ]] || die "a container was created"

log "a --secret or --telegram-secret naming no bound secret starts nothing"
for flags in "--secret X_TOKEN=nothing-here" "--secret X_TOKEN=openai" "--telegram-secret nothing-here"; do
  # shellcheck disable=SC2086
  tf launch --image "$TEST_IMAGE" --no-pull --name "$name" $flags -- /bin/sh -c 'echo started'
  [[ $TF_RC -ne 0 ]] || die "launch $flags was accepted"
  expect_contains "$TF_ERR" "nothing was started" "launch $flags"
  expect_not_contains "$TF_OUT" "started"
  [[ -z $(docker ps -aq --filter "label=org.tokfence.launch=$name") ]] || die "a container was created for $flags"
done

log "--telegram-secret naming a secret bound for credential fields only starts nothing (the token goes in the path)"
tf launch --image "$TEST_IMAGE" --no-pull --name "$name" --telegram-secret telegram-bot -- /bin/sh -c 'echo started'
[[ $TF_RC -ne 0 ]] || die "launch --telegram-secret with a header-only binding was accepted"
expect_contains "$TF_ERR" "--host api.telegram.org --in path"
expect_not_contains "$TF_OUT" "started"
[[ -z $(docker ps -aq --filter "label=org.tokfence.launch=$name") ]] || die "a container was created"
