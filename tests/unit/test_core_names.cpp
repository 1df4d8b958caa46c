#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/names.hpp"

using namespace tokfence;

TEST_CASE("check_secret_host accepts lower-case DNS names") {
  for (const std::string& good :
       std::vector<std::string>{"api.telegram.org", "a.b", "xn--bcher-kva.example",
                                "1password.com", "a-b.c-d.example", "123.example.org", std::string(63, 'a') + ".com"}) {
    INFO(good);
    CHECK(check_secret_host(good));
  }
  // 253 characters exactly: 3 labels of 63, one of 61, three dots.
  std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                        std::string(61, 'd');
  REQUIRE(longest.size() == 253);
  CHECK(check_secret_host(longest));
  // No wildcard: a secret bound to *.github.io would go to names anyone can register.
  for (const char* wildcard : {"*.example.com", "*.github.io", "*.amazonaws.com", "*.co.uk"}) {
    auto r = check_secret_host(wildcard);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("is a wildcard") != std::string::npos);
  }
}

TEST_CASE("check_secret_host refuses what is not a lower-case DNS name, stating the rule and quoting the host") {
  struct Case {
    std::string host, problem;
  };
  std::string too_long = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
                         std::string(62, 'd');
  for (const Case& c : std::vector<Case>{
           {"", "is empty"},
           {"API.telegram.org", "has upper-case letters: write it lower-case: 'api.telegram.org'"},
           {"api.telegram.org:443", "has a port: give the name alone: 'api.telegram.org'"},
           {"https://api.telegram.org", "is a URL or has a path"},
           {"api.telegram.org/bot", "is a URL or has a path"},
           {"127.0.0.1", "is an IP address"},
           {"10.1", "is an IP address"},
           {"0x7f.0.0.1", "is an IP address"},
           {"2130706433", "is an IP address"},
           {"::1", "is an IP address"},
           {"[::1]", "is an IP address"},
           {"fe80::1%eth0", "is an IP address"},
           {"*.", "is a wildcard"},
           {"*", "has a '*'"},
           {"a.*.example.com", "has a '*'"},
           {"*example.com", "has a '*'"},
           {"**.example.com", "has a '*'"},
           {"*.com", "is a wildcard"},
           {"localhost", "has no dot"},
           {"a..b", "has an empty label"},
           {".example.com", "has an empty label"},
           {"api.telegram.org.", "ends with '.': drop the trailing dot: 'api.telegram.org'"},
           {"-a.example.com", "has a label starting or ending with '-'"},
           {"a-.example.com", "has a label starting or ending with '-'"},
           {"a_b.example.com", "has the character '_'"},
           {"a b.example.com", "has the character ' '"},
           {"caf\xc3\xa9.example", "has the character '?'"},
           {std::string(64, 'a') + ".com", "has a label longer than 63 characters"},
           {too_long, "is longer than 253 characters"},
           {"example.123", "its last label starts with a digit"},
           {"example.1a", "its last label starts with a digit"},
       }) {
    INFO(c.host);
    auto r = check_secret_host(c.host);
    REQUIRE_FALSE(r);
    std::string shown = c.host.size() > 80 ? c.host.substr(0, 80) + "..." : c.host;
    for (char& ch : shown)
      if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '?';
    CHECK(r.error().message.rfind("host '" + shown + "': " + c.problem, 0) == 0);
    // Every message ends in the rule or a fix that quotes the corrected host.
    bool rule = r.error().message.find("a host is a lower-case DNS name") != std::string::npos;
    bool fix = r.error().message.find(": write it lower-case: '") != std::string::npos ||
               r.error().message.find(": give the name alone: '") != std::string::npos ||
               r.error().message.find(": drop the trailing dot: '") != std::string::npos ||
               r.error().message.find(": give the host name alone") != std::string::npos ||
               r.error().message.find(": bind the secret to each exact host it is for") != std::string::npos;
    CHECK((rule || fix));
  }
}
