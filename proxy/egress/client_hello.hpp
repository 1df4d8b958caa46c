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

// Follows the client's side of a tunnel's TLS handshake after its first ClientHello (which
// read_client_hello checked), until the client sends application data, and reads any later
// ClientHello: after a HelloRetryRequest (TLS 1.3) a client sends a second one, and servers take
// the site name from it (OpenSSL: "in TLSv1.3 we always use the SNI value from the handshake"), so
// a client could name the allowed site first and another one second (review 13a O1). A later
// ClientHello must name the same site and carry no ECH. Fed every byte the client sends, from its
// first; bytes are never held back, but a chunk that completes a refused ClientHello is not to be
// forwarded. Warning alerts are read past. After the client's ChangeCipherSpec a TLS 1.2 client's
// records are encrypted: a handshake message there that does not begin as a ClientHello ends the
// watch; one that does (TLS 1.3's second hello, in as many records as it likes) is read.
class ClientFlightWatch {
 public:
  enum class Verdict { watching, done, refused };
  // `first_name`: the first ClientHello's server name ("" when it named none: a tunnel to an IP).
  explicit ClientFlightWatch(std::string first_name) : name_(std::move(first_name)) {}
  Verdict feed(std::string_view bytes);
  const std::string& why() const { return why_; }

 private:
  Verdict record(unsigned type, std::string_view payload);
  Verdict handshake_bytes(std::string_view payload);
  Verdict check(std::string_view hello_body);
  std::string name_;
  std::string why_;
  std::string record_;      // an incomplete record, header included
  std::string message_;     // an incomplete ClientHello message, header included
  std::size_t skip_ = 0;    // bytes left of a handshake message that is not a ClientHello
  std::size_t hellos_ = 0;  // ClientHello messages seen, the first included
  std::size_t records_ = 0;
  bool after_ccs_ = false;
  Verdict state_ = Verdict::watching;
};

}  // namespace tokfence::proxy::egress
