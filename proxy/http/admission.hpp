#pragma once
// Who may use the keys (docs/PROXY.md "Who may use the keys"): checks on a parsed request head,
// made before anything about the request is routed or forwarded. The proxy serves the agents of
// its own user on this machine, not everything that can reach one of its listeners:
//  - a web page in a browser of this machine. With DNS rebinding a page makes its own host name
//    resolve to 127.0.0.1, so its requests are "same-origin" to the browser and reach the proxy
//    with the page's name in Host; any page can also send "simple" cross-origin requests
//    (the key is injected all the same; the page only cannot read the reply) and asks, with an
//    OPTIONS preflight, permission for the rest. So: Host must be one of the listener's own
//    names; a request that carries Origin, or Sec-Fetch-Site other than "none", is refused unless
//    its origin is in [daemon] allowed_origins; preflights are answered here, with a refusal.
//  - a process of another user: the TCP listener has no file mode to keep it out (the Unix
//    sockets do), so the owner of the peer's socket is looked up once per connection
//    (core/peer.hpp: tcp_peer_owner, one NETLINK_SOCK_DIAG round trip) and must be the daemon's
//    uid; checked at accept, before the connection takes a place or a byte of it is read.
// Pure functions, allocation-free when a request is admitted (tests/unit/test_proxy_admission.cpp).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/providers.hpp"
#include "proxy/http/http1.hpp"

namespace tokfence::proxy {

// The names a listener answers to in Host.
struct ListenerNames {
  // false (TCP): exactly 127.0.0.1:<port>, localhost:<port>, [::1]:<port> and <host>:<port>.
  // true (Unix sockets): 127.0.0.1, localhost or [::1] with any port or none, since the relays
  // that carry agents' traffic to them (tokfence run, tokfence launch) listen on 127.0.0.1:<a port
  // of their own> inside the fence, and curl --unix-socket writes the URL's host.
  bool any_port = false;
  std::uint16_t port = 0;
  // [daemon] host as a Host header writes it ("127.0.0.2", "[::1]"); "" when it is a wildcard
  // (0.0.0.0, ::), which is no name a client should use.
  std::string host;
};

// The names of the TCP listener on `configured_host` (an IP literal) and `port`.
ListenerNames tcp_listener_names(std::string_view configured_host, std::uint16_t port);
// The names every Unix-socket listener answers to.
const ListenerNames& unix_listener_names();

// Whether a Host field value names this listener (ASCII case-insensitive; the port, when given,
// digits only).
bool is_own_host(std::string_view host, const ListenerNames& listener);

// Whether `origin` (an Origin field value) is one of `allowed` (exact, ASCII case-insensitive).
bool is_allowed_origin(std::string_view origin, const std::vector<std::string>& allowed);

// A refusal: the status, the error type (tokfence_...) and a message that names the fix.
struct Denial {
  int status = 403;
  std::string_view type;
  std::string message;
  std::string allow = {};  // a 405's Allow header: the methods that are forwarded
};

// Host, CORS preflight, Origin and Sec-Fetch-Site, in that order. nullopt: admitted.
//  - no Host in HTTP/1.1, or more than one: 400 tokfence_bad_request (RFC 9112 section 3.2);
//  - a Host that is not the listener's: 403 tokfence_forbidden_host;
//  - OPTIONS with Origin or Access-Control-Request-Method: 403 tokfence_cors_preflight, whatever
//    the origin (a preflight is never forwarded: it would carry the key);
//  - Origin not in `allowed_origins`, or Sec-Fetch-Site other than "none" without an allowed
//    Origin: 403 tokfence_forbidden_origin.
std::optional<Denial> admit_request(const http1::RequestHead& head, const ListenerNames& listener,
                                    const std::vector<std::string>& allowed_origins);

// A method `spec`'s upstream is not sent (routing.hpp: method_allowed): 405
// tokfence_method_not_allowed, whose Allow lists the methods `provider` forwards (RFC 9110
// section 15.5.6). nullopt: the method is forwarded.
std::optional<Denial> method_denial(std::string_view method, std::string_view provider, const ProviderSpec& spec);

// The answer to a TCP connection whose peer socket belongs to `peer_uid` (nullopt: its owner
// could not be found), not to the daemon's `own_uid`: 403 tokfence_forbidden_peer, written at
// accept before anything is read.
Denial foreign_peer_denial(std::optional<unsigned> peer_uid, unsigned own_uid);

}  // namespace tokfence::proxy
