#include <catch2/catch.hpp>

#include <memory>

#include "proxy/http/admission.hpp"

using namespace tokfence::proxy;

namespace {

// Parses a request head; the text stays alive for the test run (heads are views).
http1::RequestHead head_of(const std::string& text) {
  static std::vector<std::unique_ptr<std::string>> store;
  store.push_back(std::make_unique<std::string>(text));
  http1::RequestHead head;
  REQUIRE(http1::parse_request_head(*store.back(), head) == http1::Parse::complete);
  return head;
}

std::string request(const std::string& method, const std::string& fields, int minor = 1) {
  return method + " /openai/v1/chat/completions HTTP/1." + std::to_string(minor) + "\r\n" + fields + "\r\n";
}

const std::vector<std::string> no_origins;

}  // namespace

TEST_CASE("proxy::is_own_host accepts the TCP listener's loopback names with its exact port") {
  auto tcp = tcp_listener_names("127.0.0.1", 9471);
  for (auto ok : {"127.0.0.1:9471", "localhost:9471", "LOCALHOST:9471", "[::1]:9471"}) CHECK(is_own_host(ok, tcp));
  for (auto bad : {"rebind.attacker.example", "rebind.attacker.example:9471", "127.0.0.1", "localhost", "127.0.0.1:9472",
                   "127.0.0.1:09471x", "127.0.0.1:", "127.0.0.1:94710", "127.0.0.2:9471", "::1:9471", "[::1]",
                   "localhost.:9471", "0.0.0.0:9471", "127.0.0.1:9471 ", "evil.example#@127.0.0.1:9471", ""})
    CHECK_FALSE(is_own_host(bad, tcp));
}

TEST_CASE("proxy::is_own_host adds the configured host, never a wildcard, and knows port 80") {
  auto v4 = tcp_listener_names("127.0.0.2", 8080);
  CHECK(is_own_host("127.0.0.2:8080", v4));
  CHECK(is_own_host("127.0.0.1:8080", v4));
  auto v6 = tcp_listener_names("::1", 8080);
  CHECK(is_own_host("[::1]:8080", v6));
  auto any = tcp_listener_names("0.0.0.0", 8080);
  CHECK(any.host.empty());
  CHECK_FALSE(is_own_host("0.0.0.0:8080", any));
  auto eighty = tcp_listener_names("127.0.0.1", 80);
  CHECK(is_own_host("127.0.0.1", eighty));
  CHECK(is_own_host("127.0.0.1:80", eighty));
}

TEST_CASE("proxy::is_own_host on Unix sockets: loopback names with any port (relays), nothing else") {
  const auto& unix_names = unix_listener_names();
  for (auto ok : {"127.0.0.1:9471", "127.0.0.1:38211", "localhost", "localhost:1", "[::1]:5000", "[::1]", "127.0.0.1"})
    CHECK(is_own_host(ok, unix_names));
  for (auto bad : {"x", "tokfence", "rebind.attacker.example:9471", "127.0.0.1:abc", "127.0.0.1:123456", "10.0.0.1:9471"})
    CHECK_FALSE(is_own_host(bad, unix_names));
}

TEST_CASE("proxy::admit_request refuses a foreign Host, and a missing or repeated one") {
  auto tcp = tcp_listener_names("127.0.0.1", 9471);
  CHECK_FALSE(admit_request(head_of(request("POST", "Host: 127.0.0.1:9471\r\n")), tcp, no_origins));
  auto rebind = admit_request(head_of(request("POST", "Host: rebind.attacker.example:9471\r\n")), tcp, no_origins);
  REQUIRE(rebind);
  CHECK(rebind->status == 403);
  CHECK(rebind->type == "tokfence_forbidden_host");
  CHECK(rebind->message.find("'rebind.attacker.example:9471'") != std::string::npos);
  CHECK(rebind->message.find("127.0.0.1:9471") != std::string::npos);
  auto none = admit_request(head_of(request("GET", "")), tcp, no_origins);
  REQUIRE(none);
  CHECK(none->status == 400);
  CHECK_FALSE(admit_request(head_of(request("GET", "", 0)), tcp, no_origins));  // HTTP/1.0 predates Host
  auto two = admit_request(head_of(request("GET", "Host: 127.0.0.1:9471\r\nHost: evil.example\r\n")), tcp, no_origins);
  REQUIRE(two);
  CHECK(two->status == 400);
}

TEST_CASE("proxy::admit_request refuses web pages: Origin, Sec-Fetch-Site and preflights") {
  auto tcp = tcp_listener_names("127.0.0.1", 9471);
  const std::string host = "Host: 127.0.0.1:9471\r\n";
  auto cross = admit_request(head_of(request("POST", host + "Origin: https://evil.example\r\n")), tcp, no_origins);
  REQUIRE(cross);
  CHECK(cross->status == 403);
  CHECK(cross->type == "tokfence_forbidden_origin");
  CHECK(cross->message.find("allowed_origins") != std::string::npos);
  // Same-origin (a rebound page) and no-cors requests carry Sec-Fetch-Site without Origin.
  for (auto site : {"cross-site", "same-site", "same-origin", "CROSS-SITE", "x"}) {
    auto r = admit_request(head_of(request("GET", host + "Sec-Fetch-Site: " + site + "\r\n")), tcp, no_origins);
    REQUIRE(r);
    CHECK(r->type == "tokfence_forbidden_origin");
  }
  CHECK_FALSE(admit_request(head_of(request("GET", host + "Sec-Fetch-Site: none\r\n")), tcp, no_origins));
  // "null" (sandboxed frames, file://) is no exception.
  CHECK(admit_request(head_of(request("POST", host + "Origin: null\r\n")), tcp, no_origins));

  auto preflight = admit_request(
      head_of(request("OPTIONS", host + "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n")), tcp,
      no_origins);
  REQUIRE(preflight);
  CHECK(preflight->type == "tokfence_cors_preflight");
  CHECK(preflight->status == 403);
}

TEST_CASE("proxy::admit_request lets allow-listed origins through, but never their preflights") {
  auto tcp = tcp_listener_names("127.0.0.1", 9471);
  const std::string host = "Host: 127.0.0.1:9471\r\n";
  const std::vector<std::string> allowed{"https://app.example.com"};
  CHECK_FALSE(admit_request(head_of(request("POST", host + "Origin: https://app.example.com\r\nSec-Fetch-Site: cross-site\r\n")),
                            tcp, allowed));
  CHECK(admit_request(head_of(request("POST", host + "Origin: https://app.example.com.evil.example\r\n")), tcp, allowed));
  CHECK(admit_request(head_of(request("POST", host + "Origin: http://app.example.com\r\n")), tcp, allowed));
  // A second, foreign Origin field is not hidden by an allowed first one.
  CHECK(admit_request(head_of(request("POST", host + "Origin: https://app.example.com\r\nOrigin: https://evil.example\r\n")),
                      tcp, allowed));
  auto preflight = admit_request(head_of(request("OPTIONS", host + "Origin: https://app.example.com\r\n")), tcp, allowed);
  REQUIRE(preflight);
  CHECK(preflight->type == "tokfence_cors_preflight");
}

TEST_CASE("proxy::foreign_peer_denial names both uids") {
  auto d = foreign_peer_denial(65534u, 0);
  CHECK(d.status == 403);
  CHECK(d.type == "tokfence_forbidden_peer");
  CHECK(d.message.find("uid 65534") != std::string::npos);
  CHECK(d.message.find("(uid 0)") != std::string::npos);
  CHECK(foreign_peer_denial(std::nullopt, 1000).message.find("could not be found") != std::string::npos);
}

TEST_CASE("proxy::method_denial answers 405 with an Allow header listing the provider's methods") {
  tokfence::ProviderSpec spec;
  spec.name = "openai";
  CHECK_FALSE(method_denial("POST", "openai", spec));
  CHECK_FALSE(method_denial("DELETE", "openai", spec));
  for (auto method : {"TRACE", "TRACK", "CONNECT", "OPTIONS", "get"}) {
    auto denied = method_denial(method, "openai", spec);
    REQUIRE(denied);
    CHECK(denied->status == 405);
    CHECK(denied->type == "tokfence_method_not_allowed");
    CHECK(denied->allow == "GET, HEAD, POST, PUT, PATCH, DELETE");
    CHECK(denied->message == "request: method " + std::string(method) +
                                 " is not forwarded to 'openai' (allowed: GET, HEAD, POST, PUT, PATCH, DELETE; "
                                 "set providers.openai.methods)");
  }
  spec.methods = {"POST"};
  auto denied = method_denial("GET", "anthropic", spec);
  REQUIRE(denied);
  CHECK(denied->allow == "POST");
  CHECK_FALSE(method_denial("POST", "anthropic", spec));
}
