#!/usr/bin/env bash
# TLS to https upstreams: a certificate signed by a trusted CA for the right host name works (and
# a close-delimited HTTP/1.0 answer is relayed whole); a certificate for another host name, or one
# from an untrusted CA, is refused with a 502 tokfence_upstream_tls. The test CA is made trusted
# through SSL_CERT_FILE (OpenSSL's default verify paths honour it), never the system store.
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || die "openssl is missing (Debian package openssl)"

pki="$WORK/pki"
mkdir -p "$pki"
cd "$pki"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=tokfence test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
make_cert() {  # name, subjectAltName, signing CA (ca|self)
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$2" >"$1.ext"
  if [[ $3 == ca ]]; then
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  else
    openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  fi
}
make_cert good "IP:127.0.0.1" ca
make_cert wrongname "DNS:not-this-host.example" ca
make_cert selfsigned "IP:127.0.0.1" self
cd - >/dev/null

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_tls_server() {  # name -> sets TLS_PORT
  TLS_PORT=$(free_port)
  openssl s_server -quiet -accept "127.0.0.1:$TLS_PORT" -cert "$pki/$1.pem" -key "$pki/$1.key" -www \
    >"$WORK/s_server_$1.log" 2>&1 </dev/null &
  _pids_to_kill+=($!)
  wait_until "/usr/bin/python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $TLS_PORT), 1)'"
}
start_tls_server good
good_port=$TLS_PORT
start_tls_server wrongname
wrong_port=$TLS_PORT
start_tls_server selfsigned
self_port=$TLS_PORT

start_fake_upstream
write_test_config \
  "[providers.tlsgood]" "upstream = \"https://127.0.0.1:$good_port\"" "" \
  "[providers.tlswrong]" "upstream = \"https://127.0.0.1:$wrong_port\"" "" \
  "[providers.tlsself]" "upstream = \"https://127.0.0.1:$self_port\""
for p in openai tlsgood tlswrong tlsself; do
  add_canary_key "$p"
done
export SSL_CERT_FILE="$pki/ca.pem"
start_daemon
unset SSL_CERT_FILE

out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/tlsgood/")
expect_eq "$(tail -1 <<<"$out")" 200 "verified TLS upstream"
expect_contains "$out" "</HTML>" "close-delimited body relayed whole"

for p in tlswrong tlsself; do
  out=$(curl -sS -w '\n%{http_code}' "$PROXY_URL/$p/")
  expect_eq "$(tail -1 <<<"$out")" 502 "$p: unverifiable certificate accepted"
  expect_eq "$(head -1 <<<"$out" | jq -r .error.type)" tokfence_upstream_tls "$p: error type"
done
out=$(curl -fsS "$PROXY_URL/openai/v1/chat/completions" -d '{"model":"gpt-4o","messages":[]}')
expect_eq "$(jq -r .object <<<"$out")" chat.completion "daemon still serving after TLS failures"
