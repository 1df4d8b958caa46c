#include <catch2/catch.hpp>

#include "proxy/egress/address.hpp"

using namespace tokfence::proxy::egress;

namespace {

std::string why(const std::string& text) {
  auto a = parse_ip(text);
  REQUIRE(a);
  return std::string(special_address(*a));
}

}  // namespace

TEST_CASE("egress::special_address refuses every non-public IPv4 range") {
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1", "loopback"},          {"127.255.255.254", "loopback"}, {"10.1.2.3", "private"},
      {"172.16.0.1", "private"},          {"172.31.255.255", "private"},   {"192.168.1.1", "private"},
      {"169.254.169.254", "link-local"},  {"169.254.0.1", "link-local"},   {"100.64.0.1", "cgnat"},
      {"100.127.255.255", "cgnat"},       {"0.0.0.0", "unspecified"},      {"0.1.2.3", "unspecified"},
      {"224.0.0.1", "multicast"},         {"239.255.255.250", "multicast"}, {"255.255.255.255", "broadcast"},
      {"240.0.0.1", "reserved"},          {"192.0.2.1", "documentation"},  {"198.18.0.1", "benchmarking"},
      {"192.0.0.8", "reserved"},
  };
  for (const auto& [address, reason] : cases) {
    INFO(address);
    CHECK(why(address) == reason);
  }
}

TEST_CASE("egress::special_address lets public IPv4 addresses through, ranges' neighbours included") {
  for (auto a : {"1.1.1.1", "8.8.8.8", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1", "169.253.255.255",
                 "11.0.0.1", "192.169.0.1", "149.154.167.220"}) {
    INFO(a);
    CHECK(why(a).empty());
  }
}

TEST_CASE("egress::special_address refuses IPv6 special ranges and IPv4 embedded in IPv6") {
  const std::pair<const char*, const char*> cases[] = {
      {"::", "unspecified"},
      {"::1", "loopback"},
      {"fc00::1", "private"},
      {"fd12:3456::1", "private"},
      {"fe80::1", "link-local"},
      {"febf::1", "link-local"},
      {"fec0::1", "private"},
      {"ff02::1", "multicast"},
      {"::ffff:127.0.0.1", "loopback"},
      {"::ffff:169.254.169.254", "link-local"},
      {"::ffff:10.0.0.1", "private"},
      {"::ffff:0.0.0.0", "unspecified"},
      {"::127.0.0.1", "loopback"},
      {"::8.8.8.8", "reserved"},
      {"64:ff9b::a9fe:a9fe", "link-local"},  // NAT64 of 169.254.169.254
      {"64:ff9b:1::1", "private"},
      {"2002:7f00:1::", "loopback"},         // 6to4 of 127.0.0.1
      {"2001:db8::1", "documentation"},
      {"2001:0::1", "reserved"},             // Teredo
      {"100::1", "reserved"},
  };
  for (const auto& [address, reason] : cases) {
    INFO(address);
    CHECK(why(address) == reason);
  }
  for (auto a : {"2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"}) {
    INFO(a);
    CHECK(why(a).empty());
  }
}

TEST_CASE("egress::parse_ip takes canonical literals only") {
  CHECK(parse_ip("127.0.0.1"));
  CHECK(parse_ip("::1"));
  for (auto bad : {"", "127.1", "2130706433", "0x7f.0.0.1", "fe80::1%eth0", "[::1]", "localhost", "1.2.3.4.5"}) {
    INFO(bad);
    CHECK_FALSE(parse_ip(bad));
  }
}

TEST_CASE("egress::resolve_blocking returns localhost's loopback addresses, which are then refused") {
  auto r = resolve_blocking("localhost");
  REQUIRE(r);
  REQUIRE_FALSE(r->empty());
  for (const auto& a : *r) CHECK(special_address(a) == "loopback");
}
