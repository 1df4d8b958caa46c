#include "proxy/egress/address.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace tokfence::proxy::egress {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

struct V4Range {
  std::uint32_t base;
  int bits;
  std::string_view why;
};

constexpr std::uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) { return (a << 24) | (b << 16) | (c << 8) | d; }

// IANA's special-purpose IPv4 registry, minus nothing: none of these is a public destination.
constexpr std::array<V4Range, 16> kV4Special = {{
    {ip4(0, 0, 0, 0), 8, "unspecified"},        // "this network"; 0.0.0.0 reaches local services
    {ip4(10, 0, 0, 0), 8, "private"},
    {ip4(100, 64, 0, 0), 10, "cgnat"},
    {ip4(127, 0, 0, 0), 8, "loopback"},
    {ip4(169, 254, 0, 0), 16, "link-local"},    // 169.254.169.254: cloud metadata
    {ip4(172, 16, 0, 0), 12, "private"},
    {ip4(192, 0, 0, 0), 24, "reserved"},        // IETF protocol assignments
    {ip4(192, 0, 2, 0), 24, "documentation"},
    {ip4(192, 88, 99, 0), 24, "reserved"},      // 6to4 relay anycast
    {ip4(192, 168, 0, 0), 16, "private"},
    {ip4(198, 18, 0, 0), 15, "benchmarking"},
    {ip4(198, 51, 100, 0), 24, "documentation"},
    {ip4(203, 0, 113, 0), 24, "documentation"},
    {ip4(224, 0, 0, 0), 4, "multicast"},
    {ip4(240, 0, 0, 0), 4, "reserved"},         // 255.255.255.255 (broadcast) is checked first
    {ip4(192, 0, 0, 170), 31, "reserved"},      // NAT64 discovery
}};

std::string_view special_v4(const address_v4& a) {
  const std::uint32_t v = a.to_uint();
  if (v == 0xffffffffu) return "broadcast";
  for (const auto& r : kV4Special) {
    const std::uint32_t mask = r.bits == 0 ? 0 : ~std::uint32_t{0} << (32 - r.bits);
    if ((v & mask) == (r.base & mask)) return r.why;
  }
  return "";
}

address_v4 v4_at(const address_v6::bytes_type& b, std::size_t offset) {
  return address_v4(address_v4::bytes_type{b[offset], b[offset + 1], b[offset + 2], b[offset + 3]});
}

std::string_view special_v6(const address_v6& a) {
  const auto b = a.to_bytes();
  if (a.is_unspecified()) return "unspecified";
  if (a.is_loopback()) return "loopback";
  // Forms that carry an IPv4 address: judged by that address (::ffff:127.0.0.1 is loopback).
  const bool zero80 = std::all_of(b.begin(), b.begin() + 10, [](unsigned char c) { return c == 0; });
  if (zero80 && b[10] == 0xff && b[11] == 0xff) return special_v4(v4_at(b, 12));  // IPv4-mapped
  if (zero80 && b[10] == 0 && b[11] == 0) {                                     // IPv4-compatible (deprecated)
    auto s = special_v4(v4_at(b, 12));
    return s.empty() ? std::string_view("reserved") : s;
  }
  // 64:ff9b::/96 (NAT64) and 64:ff9b:1::/48 (local NAT64): the embedded address decides.
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    const bool well_known = std::all_of(b.begin() + 4, b.begin() + 12, [](unsigned char c) { return c == 0; });
    return well_known ? special_v4(v4_at(b, 12)) : std::string_view("private");
  }
  if (b[0] == 0x20 && b[1] == 0x02) return special_v4(v4_at(b, 2));  // 6to4 2002:AABB:CCDD::
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) return "reserved";  // Teredo
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return "documentation";
  if (b[0] == 0x01 && b[1] == 0x00 && std::all_of(b.begin() + 2, b.begin() + 8, [](unsigned char c) { return c == 0; }))
    return "reserved";  // 100::/64 discard
  if ((b[0] & 0xfe) == 0xfc) return "private";                    // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "private";     // fec0::/10 site-local (deprecated)
  if (b[0] == 0xff) return "multicast";
  return "";
}

}  // namespace

std::string_view special_address(const address& a) { return a.is_v4() ? special_v4(a.to_v4()) : special_v6(a.to_v6()); }

std::optional<address> parse_ip(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  // Boost (inet_pton) takes dotted quads only; a scope id ("fe80::1%eth0") is refused.
  if (text.find('%') != std::string_view::npos) return std::nullopt;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return a;
}

Result<std::vector<address>> resolve_blocking(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    // AI_ADDRCONFIG hides every address in a namespace with loopback only; retry without it.
    hints.ai_flags = 0;
    rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  }
  if (rc != 0) return fail(std::string("cannot resolve '") + host + "': " + ::gai_strerror(rc));
  std::vector<address> out;
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    address a;
    if (ai->ai_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      a = address_v4(ntohl(sin->sin_addr.s_addr));
    } else if (ai->ai_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      address_v6::bytes_type bytes;
      std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr), bytes.begin());
      a = address_v6(bytes, sin6->sin6_scope_id);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeaddrinfo(list);
  if (out.empty()) return fail("cannot resolve '" + host + "': no address");
  return out;
}

}  // namespace tokfence::proxy::egress
