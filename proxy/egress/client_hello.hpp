#pragma once
// The server name a TLS client asks for, read from its ClientHello (RFC 8446 4.1.2, RFC 6066 3).
//
// Why: a tunnel that is not inspected is allowed by the name in its CONNECT line, but a CDN or any
// shared front end picks the site by the name in the ClientHello (SNI). Without this check an
// agent allowed one site on a shared address (`--egress-preset discord`: Cloudflare) reached
// every other site there by sending CONNECT allowed.example and then SNI other.example
// (attack: egress_sni_fronting). Encrypted ClientHello (ECH) hides the real name behind an outer
// one the client chooses, so a hello that carries it is refused as well.
//
// Pure and bounded (tests/unit/test_proxy_egress_client_hello.cpp, fuzz target client_hello).
#include <cstddef>
#include <string>
#include <string_view>

namespace tokfence::proxy::egress {

// A ClientHello larger than this (it may span several TLS records) is refused: real ones are
// under 2 KiB, 8 KiB with large post-quantum key shares.
inline constexpr std::size_t kMaxClientHelloBytes = 32 * 1024;

struct ClientHello {
  enum Status {
    need_more,  // the bytes so far are a valid beginning: read more
    malformed,  // not a TLS handshake starting with a ClientHello, or broken: `why` says how
    complete,   // a whole ClientHello
  };
  Status status = need_more;
  std::string server_name;  // lower case, one trailing dot dropped; "" = no server_name extension
  bool encrypted = false;   // an encrypted_client_hello extension (ECH) is present
  std::string why;
};

// Reads the ClientHello at the start of `bytes` (the client's first bytes in a tunnel).
ClientHello read_client_hello(std::string_view bytes);

}  // namespace tokfence::proxy::egress
