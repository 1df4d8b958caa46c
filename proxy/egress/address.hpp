#pragma once
// Which addresses the forward proxy may connect to. A name's addresses come from getaddrinfo (one
// look-up, on a resolver thread, never the I/O thread); the proxy then connects to exactly the
// address checked here, never resolving again. Refused unless the user named the address (an IP
// rule, or [egress.resolve]): loopback, RFC 1918 and other private ranges, link-local (169.254/16,
// the cloud metadata address 169.254.169.254 included), CGNAT 100.64/10, 0/8, multicast,
// broadcast, reserved and documentation ranges; IPv6 ::, ::1, fc00::/7, fe80::/10, fec0::/10,
// ff00::/8, and every form that embeds an IPv4 address (::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::/96,
// 2002::/16) by the address it embeds. Pure functions (tests/unit/test_proxy_egress_address.cpp).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "core/error.hpp"

namespace tokfence::proxy::egress {

// Why `address` is refused as a destination ("loopback", "private", "link-local", ...); "" when
// it is a public unicast address.
std::string_view special_address(const boost::asio::ip::address& address);

// An IP literal ("1.2.3.4", "::1"; no brackets, dotted quads only) -> the address.
std::optional<boost::asio::ip::address> parse_ip(std::string_view text);

// getaddrinfo(`host`), TCP, both families, every address once in the resolver's order. Blocking:
// call it off the I/O threads. Errors say why ("name not found", ...).
Result<std::vector<boost::asio::ip::address>> resolve_blocking(const std::string& host);

}  // namespace tokfence::proxy::egress
