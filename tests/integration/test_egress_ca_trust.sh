#!/usr/bin/env bash
# The fence trusts tokfence's local CA (docs/EGRESS.md "Inside the fence: the local CA"): the
# daemon makes <home>/egress-ca.{key,pem} at its start; `tokfence run` puts the CA and a bundle
# (system bundle + CA) beside the run's socket, which the sandbox sees read-only at
# /run/tokfence-proxy, and points NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE,
# CURL_CA_BUNDLE and GIT_SSL_CAINFO at them. The agent can read them but neither write, replace,
# remove nor add beside them. Without the CA certificate nothing starts (fail closed).
# `--secret VAR=NAME` gives VAR the placeholder tokfence-secret:NAME; a bad entry starts nothing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/egress_lib.bash"
egress_run_setup

inner=/run/tokfence-proxy
host_ca="$TOKFENCE_HOME/egress-ca.pem"

log "the daemon made the CA at its start: key 0600, certificate 0644"
[[ -f $host_ca && -f "$TOKFENCE_HOME/egress-ca.key" ]] || die "no egress-ca.pem / egress-ca.key in the home after start"
expect_eq "$(stat -c %a "$TOKFENCE_HOME/egress-ca.key")" 600 "mode of egress-ca.key"
expect_eq "$(stat -c %a "$host_ca")" 644 "mode of egress-ca.pem"
openssl x509 -in "$host_ca" -noout -subject | grep -q 'tokfence local CA' || die "egress-ca.pem is not tokfence's CA"
ca_sum=$(sha256sum <"$host_ca" | cut -d' ' -f1)

log "the trust variables point at the read-only files"
tf run codex --command /usr/bin/env --workdir "$PROJECT"
expect_eq "$TF_RC" 0 "env in the sandbox: $TF_ERR"
grep -qx "NODE_EXTRA_CA_CERTS=$inner/egress-ca.pem" <<<"$TF_OUT" || die "NODE_EXTRA_CA_CERTS: $TF_OUT"
for var in SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do
  grep -qx "$var=$inner/egress-ca-bundle.pem" <<<"$TF_OUT" || die "$var in the sandbox: $TF_OUT"
done

log "the files hold the CA (the bundle: system bundle + CA), and the agent cannot change them"
# Each attempt prints "W <what> <rc>"; every write must fail. The last step re-reads both files.
script=$(cat <<'SH'
sum() { sha256sum <"$1" | cut -d' ' -f1; }
echo "CA $(sum "$NODE_EXTRA_CA_CERTS")"
echo "BUNDLE_LAST $(awk '/BEGIN CERTIFICATE/{n++} END{print n}' "$SSL_CERT_FILE")"
tail -n "$(wc -l <"$NODE_EXTRA_CA_CERTS")" "$SSL_CERT_FILE" | sha256sum | cut -d' ' -f1 | sed 's/^/BUNDLE_TAIL /'
d=$(dirname "$SSL_CERT_FILE")
(echo evil >"$SSL_CERT_FILE") 2>/dev/null; echo "W truncate $?"
(echo evil >>"$NODE_EXTRA_CA_CERTS") 2>/dev/null; echo "W append $?"
rm -f "$SSL_CERT_FILE" 2>/dev/null; echo "W rm $?"
mv "$NODE_EXTRA_CA_CERTS" "$d/moved.pem" 2>/dev/null; echo "W mv $?"
ln -sf /tmp/evil.pem "$d/egress-ca-bundle.pem" 2>/dev/null; echo "W symlink $?"
echo evil >/tmp/evil.pem; cp /tmp/evil.pem "$d/new.pem" 2>/dev/null; echo "W create $?"
chmod 666 "$SSL_CERT_FILE" 2>/dev/null; echo "W chmod $?"
mv "$d" /tmp/moved-dir 2>/dev/null; echo "W mvdir $?"
touch "$d/../tokfence-proxy-x" 2>/dev/null; echo "W beside $?"
echo "CA_AFTER $(sum "$NODE_EXTRA_CA_CERTS") $(sum "$SSL_CERT_FILE" | head -c 8)"
ls -ln "$d" | awk 'NR>1 {print "LS", $1, $9}'
SH
)
tf run codex --command /bin/sh --workdir "$PROJECT" -- -c "$script"
expect_eq "$TF_RC" 0 "the trust script in the sandbox: $TF_ERR"
out=$TF_OUT
expect_contains "$out" "CA $ca_sum" "the sandbox's egress-ca.pem is not the daemon's CA"
expect_contains "$out" "BUNDLE_TAIL $ca_sum" "the bundle does not end with the CA"
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
  system_count=$(grep -c 'BEGIN CERTIFICATE' /etc/ssl/certs/ca-certificates.crt)
  expect_contains "$out" "BUNDLE_LAST $((system_count + 1))" "the bundle is not the system bundle + the CA"
fi
while read -r what rc; do
  [[ $rc != 0 ]] || die "the agent could change the trust files ($what succeeded): $out"
done < <(sed -n 's/^W //p' <<<"$out")
expect_eq "$(grep -c '^W ' <<<"$out")" 9 "write attempts reported"
grep -q "^CA_AFTER $ca_sum " <<<"$out" || die "the CA file changed inside the run: $out"
grep -q '^LS -rw-r--r-- egress-ca.pem$' <<<"$out" || die "egress-ca.pem is not 0644 in the sandbox: $out"
grep -q '^LS -rw-r--r-- egress-ca-bundle.pem$' <<<"$out" || die "egress-ca-bundle.pem is missing: $out"
expect_eq "$(sha256sum <"$host_ca" | cut -d' ' -f1)" "$ca_sum" "the home's CA certificate changed"

log "openssl in the sandbox reads the CA and verifies it against the bundle"
tf run codex --command /bin/sh --workdir "$PROJECT" -- -c \
  'openssl x509 -in "$NODE_EXTRA_CA_CERTS" -noout -subject; openssl verify -CAfile "$SSL_CERT_FILE" "$NODE_EXTRA_CA_CERTS"'
expect_eq "$TF_RC" 0 "openssl in the sandbox: $TF_ERR"
expect_contains "$TF_OUT" "tokfence local CA"
expect_contains "$TF_OUT" ": OK"

log "--secret VAR=NAME: the agent gets the placeholder, never anything else"
tf_in "tg$(random_token 30)" vault add telegram-bot - --host api.telegram.org
expect_eq "$TF_RC" 0 "vault add telegram-bot: $TF_ERR"
tf_in "gh$(random_token 30)" vault add github - --host api.github.com
expect_eq "$TF_RC" 0 "vault add github: $TF_ERR"
tf run codex --command /usr/bin/env --workdir "$PROJECT" --secret TELEGRAM_BOT_TOKEN=telegram-bot --secret GH_TOKEN=github
expect_eq "$TF_RC" 0 "run --secret: $TF_ERR"
grep -qx 'TELEGRAM_BOT_TOKEN=tokfence-secret:telegram-bot' <<<"$TF_OUT" || die "TELEGRAM_BOT_TOKEN: $TF_OUT"
# GH_TOKEN is also a decoy variable: the user's --secret wins.
grep -qx 'GH_TOKEN=tokfence-secret:github' <<<"$TF_OUT" || die "GH_TOKEN: $TF_OUT"

log "a bad --secret names the flag and the entry, and starts nothing"
for entry in 'HTTPS_PROXY=telegram-bot' 'SSL_CERT_FILE=x' 'TOKFENCE_HOME=x' 'OPENAI_API_KEY=x' '1BAD=x' 'NOEQUALS' \
  'TOKEN=Bad/Name' 'TOKEN='; do
  rm -f "$PROJECT/started"
  tf run codex --command /bin/sh --workdir "$PROJECT" --secret "$entry" -- -c 'touch started'
  [[ $TF_RC -ne 0 ]] || die "--secret '$entry' was accepted"
  expect_contains "$TF_ERR" "--secret: '$entry'" "the error for --secret '$entry'"
  [[ ! -e "$PROJECT/started" ]] || die "the agent started with --secret '$entry'"
done
tf run codex --command /bin/sh --workdir "$PROJECT" --secret A=one --secret A=two -- -c 'touch started'
[[ $TF_RC -ne 0 && ! -e "$PROJECT/started" ]] || die "a variable given twice was accepted"
expect_contains "$TF_ERR" "given twice"

log "without the CA certificate (gone, a symlink, writable by others) the agent does not start"
cp -p "$host_ca" "$WORK/ca-saved.pem"
rm -f "$host_ca"
tf run codex --command /bin/sh --workdir "$PROJECT" -- -c 'touch started'
[[ $TF_RC -ne 0 && ! -e "$PROJECT/started" ]] || die "the agent started without the CA certificate"
expect_contains "$TF_ERR" "egress-ca.pem"
expect_contains "$TF_ERR" "nothing was started"
ln -s "$WORK/ca-saved.pem" "$host_ca"
tf run codex --command /bin/sh --workdir "$PROJECT" -- -c 'touch started'
[[ $TF_RC -ne 0 && ! -e "$PROJECT/started" ]] || die "the agent started with a symlinked CA certificate"
rm -f "$host_ca"
cp -p "$WORK/ca-saved.pem" "$host_ca"
chmod 666 "$host_ca"
tf run codex --command /bin/sh --workdir "$PROJECT" -- -c 'touch started'
[[ $TF_RC -ne 0 && ! -e "$PROJECT/started" ]] || die "the agent started with a CA certificate others can write"
chmod 644 "$host_ca"

log "--no-sandbox: the same variables, pointing at host-owned files holding the CA"
tf run codex --no-sandbox --command /bin/sh --workdir "$PROJECT" -- -c \
  'for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE REQUESTS_CA_BUNDLE CURL_CA_BUNDLE GIT_SSL_CAINFO; do eval "f=\$$v"; echo "V $v $f $(stat -c %U:%a "$f")"; done
   echo "CA $(sha256sum <"$NODE_EXTRA_CA_CERTS" | cut -d" " -f1)"'
expect_eq "$TF_RC" 0 "run --no-sandbox: $TF_ERR"
expect_contains "$TF_OUT" "CA $ca_sum"
expect_eq "$(grep -c "^V .* $TOKFENCE_HOME/sockets/run-[^ ]*/egress-ca\(-bundle\)\?\.pem $(id -un):644\$" <<<"$TF_OUT")" 5 \
  "the five variables under --no-sandbox: $TF_OUT"

log "--secret naming no bound secret, or a provider key, starts nothing"
tf run codex --command /bin/sh --workdir "$PROJECT" --secret X_TOKEN=nothing-here -- -c 'touch started'
[[ $TF_RC -ne 0 ]] || die "--secret naming a missing secret was accepted"
expect_contains "$TF_ERR" "no secret 'nothing-here' in the vault"
tf run codex --command /bin/sh --workdir "$PROJECT" --secret X_TOKEN=openai -- -c 'touch started'
[[ $TF_RC -ne 0 ]] || die "--secret naming a provider key was accepted"
expect_contains "$TF_ERR" "'openai' is a provider key"
[[ ! -e "$PROJECT/started" ]] || die "the agent started with a --secret that names no bound secret"
