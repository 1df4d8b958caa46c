#include <catch2/catch.hpp>

#include "proxy/egress/policy.hpp"

using namespace tokfence::proxy::egress;
using nlohmann::json;

namespace {

Rule rule(const std::string& text) {
  auto r = parse_rule(text);
  REQUIRE(r);
  return *r;
}

Destination to(const std::string& authority, std::uint16_t default_port = 443) {
  auto d = parse_authority(authority, default_port);
  REQUIRE(d);
  return *d;
}

Settings settings(tokfence::Config::Egress config = {}) {
  auto s = compile_settings(config);
  REQUIRE(s);
  return *s;
}

}  // namespace

TEST_CASE("egress::parse_rule normalises hosts, defaults the port to 443 and prints rules back") {
  CHECK(rule("API.Telegram.ORG").text() == "api.telegram.org:443");
  CHECK(rule("api.telegram.org.").text() == "api.telegram.org:443");
  CHECK(rule("registry.npmjs.org:8443").text() == "registry.npmjs.org:8443");
  CHECK(rule("*.Slack.com").text() == "*.slack.com:443");
  CHECK(rule("*.slack.com").wildcard);
  CHECK(rule("203.0.113.7:22").ip);
  CHECK(rule("[2001:DB8::1]:443").text() == "[2001:db8::1]:443");
  CHECK(rule("[::1]").text() == "[::1]:443");
}

TEST_CASE("egress: an address with the root's dot is an address, numeric last labels are no names") {
  // Found by the egress_rule fuzz target: "127.0.0.12." parsed as the *name* 127.0.0.12, whose
  // printed rule then parsed as an address (and a destination written so passed as a name,
  // outside the IP-literal rules).
  CHECK(rule("127.0.0.12.").ip);
  CHECK(rule("127.0.0.12.").text() == "127.0.0.12:443");
  auto to = parse_authority("203.0.113.7.:443", 443);
  REQUIRE(to);
  CHECK(to->ip);
  CHECK(matches(rule("203.0.113.7"), *to));
  for (auto numeric : {"127.1", "10.0.1", "2130706433", "0x7f.0x1", "example.123", "a.0xff"}) {
    INFO(numeric);
    CHECK_FALSE(parse_rule(numeric));
    CHECK_FALSE(parse_authority(std::string(numeric) + ":443", 443));
  }
  CHECK(parse_rule("123.example.com"));  // a numeric label that is not the last is a name
  CHECK(parse_rule("0xcafe.example.com"));
}

TEST_CASE("egress::parse_rule refuses malformed rules, naming the entry") {
  for (auto bad : {"", "https://api.example.com", "api.example.com/path", "api.example.com:0", "api.example.com:65536",
                   "api.example.com:", "api.example.com:x", "2001:db8::1", "[2001:db8::1", "[api.example.com]",
                   "[1.2.3.4]", "*", "*.com", "a.*.example.com", "ex*ample.com", "-bad.example.com", "bad-.example.com",
                   "a..b", "sp ace.example.com", "*.", "a@b.example.com"}) {
    auto r = parse_rule(bad);
    INFO(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find(std::string("egress: rule '") + bad) == 0);
  }
}

TEST_CASE("egress::matches: a wildcard matches subdomains only, never the domain itself or a look-alike") {
  const Rule w = rule("*.example.com");
  CHECK(matches(w, to("a.example.com:443")));
  CHECK(matches(w, to("a.b.example.com:443")));
  CHECK(matches(w, to("A.EXAMPLE.COM.:443")));
  CHECK_FALSE(matches(w, to("example.com:443")));
  CHECK_FALSE(matches(w, to("evilexample.com:443")));
  CHECK_FALSE(matches(w, to("a.example.com.evil.net:443")));
  CHECK_FALSE(matches(w, to("a.example.com:8443")));
  const Rule exact = rule("example.com");
  CHECK(matches(exact, to("example.com:443")));
  CHECK_FALSE(matches(exact, to("a.example.com:443")));
  CHECK_FALSE(matches(exact, to("example.com:80")));
}

TEST_CASE("egress::matches: an IP literal only by a rule naming that literal") {
  CHECK(matches(rule("203.0.113.7"), to("203.0.113.7:443")));
  CHECK(matches(rule("[2001:db8::1]"), to("[2001:0db8:0::1]:443")));
  CHECK_FALSE(matches(rule("203.0.113.7"), to("203.0.113.8:443")));
  // A name rule never matches an address, whatever the name resolves to; a wildcard over
  // address-like labels is no rule at all (an all-numeric last label is refused).
  CHECK_FALSE(matches(rule("*.example.com"), to("203.0.113.7:443")));
  CHECK_FALSE(parse_rule("*.0.113.7"));
  CHECK_FALSE(parse_authority("2001:db8::1:443", 443));
}

TEST_CASE("egress::parse_authority takes CONNECT targets and absolute-form hosts") {
  CHECK(to("api.telegram.org:443").text() == "api.telegram.org:443");
  CHECK(to("example.com", 80).port == 80);
  CHECK(to("[::1]:8080").host == "::1");
  for (auto bad : {"", "user:pw@example.com:443", "example.com:0", "exa mple.com:443", "*.example.com:443", "[::1"})
    CHECK_FALSE(parse_authority(bad, 443));
}

TEST_CASE("egress::decide: deny by default, deny rules win, presets and [egress] allow apply") {
  tokfence::Config::Egress config;
  config.allow = {"mirror.internal.example:8443"};
  const Settings s = settings(config);
  Policy p;
  CHECK(decide(p, s, to("api.telegram.org:443")).rule == "default-deny");
  CHECK_FALSE(decide(p, s, to("api.telegram.org:443")).allowed);
  p.presets = {"telegram"};
  auto d = decide(p, s, to("api.telegram.org:443"));
  CHECK(d.allowed);
  CHECK(d.rule == "preset:telegram:api.telegram.org:443");
  CHECK_FALSE(decide(p, s, to("api.telegram.org:80")).allowed);
  CHECK(decide(p, s, to("mirror.internal.example:8443")).rule == "config:mirror.internal.example:8443");
  allow(p, rule("*.npmjs.org"));
  CHECK(decide(p, s, to("registry.npmjs.org:443")).rule == "allow:*.npmjs.org:443");
  deny(p, rule("api.telegram.org"));
  d = decide(p, s, to("api.telegram.org:443"));
  CHECK_FALSE(d.allowed);
  CHECK(d.rule == "deny:api.telegram.org:443");
  deny(p, rule("*.npmjs.org"));  // removes the equal allow and denies
  CHECK(p.allow.empty());
  CHECK(decide(p, s, to("registry.npmjs.org:443")).rule == "deny:*.npmjs.org:443");
  allow(p, rule("api.telegram.org"));  // removes the equal deny
  CHECK(decide(p, s, to("api.telegram.org:443")).rule == "allow:api.telegram.org:443");
}

TEST_CASE("egress::builtin_presets has the issue's channels, search, registries and GitHub") {
  const Settings s = settings();
  for (auto name : {"telegram", "discord", "slack", "whatsapp", "web-search", "github", "npm", "pypi"})
    CHECK(s.presets.count(name) == 1);
  Policy p;
  p.presets = {"slack", "whatsapp", "github", "pypi", "discord", "web-search", "npm"};
  for (auto host : {"slack.com", "files.slack.com", "web.whatsapp.com", "mmg.whatsapp.net", "api.github.com",
                    "raw.githubusercontent.com", "files.pythonhosted.org", "gateway.discord.gg", "api.search.brave.com",
                    "api.tavily.com", "registry.npmjs.org"})
    CHECK(decide(p, s, to(std::string(host) + ":443")).allowed);
  for (auto host : {"whatsapp.net", "evil.com", "gist.github.com", "npmjs.org"})
    CHECK_FALSE(decide(p, s, to(std::string(host) + ":443")).allowed);
}

TEST_CASE("egress::compile_settings merges config presets and checks [egress.resolve]") {
  tokfence::Config::Egress config;
  config.presets["npm"] = {"npm.mirror.example"};
  config.presets["internal"] = {"*.corp.example:8443"};
  config.resolve["API.Telegram.org"] = "127.0.0.1:8443";
  config.resolve["v6.example"] = "[::1]";
  const Settings s = settings(config);
  REQUIRE(s.presets.at("npm").size() == 1);
  CHECK(s.presets.at("npm")[0].host == "npm.mirror.example");
  CHECK(s.presets.at("internal")[0].text() == "*.corp.example:8443");
  CHECK(s.resolve.at("api.telegram.org").address == "127.0.0.1");
  CHECK(*s.resolve.at("api.telegram.org").port == 8443);
  CHECK(s.resolve.at("v6.example").address == "::1");
  CHECK_FALSE(s.resolve.at("v6.example").port);

  for (auto bad : {"not-an-ip", "localhost:8443", "::1", "[127.0.0.1]", "127.0.0.1:0"}) {
    tokfence::Config::Egress c;
    c.resolve["a.example"] = bad;
    INFO(bad);
    CHECK_FALSE(compile_settings(c));
  }
  tokfence::Config::Egress bad_allow;
  bad_allow.allow = {"https://x.example"};
  auto r = compile_settings(bad_allow);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("[egress] allow") != std::string::npos);
}

TEST_CASE("egress::policy_from_json refuses unknown presets and malformed rules by name, and round-trips") {
  const Settings s = settings();
  auto p = policy_from_json(json{{"allow", {"api.example.com", "*.example.org:8443"}}, {"presets", {"npm"}}}, s);
  REQUIRE(p);
  CHECK(policy_json(*p) == json{{"allow", {"api.example.com:443", "*.example.org:8443"}}, {"deny", json::array()},
                                {"presets", {"npm"}}, {"secrets", json::array()}});
  auto back = policy_from_json(policy_json(*p), s);
  REQUIRE(back);
  CHECK(policy_json(*back) == policy_json(*p));
  CHECK(policy_from_json(json(), s));  // absent: empty policy
  auto unknown = policy_from_json(json{{"presets", {"npmm"}}}, s);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("unknown preset 'npmm'") != std::string::npos);
  auto malformed = policy_from_json(json{{"allow", {"ok.example", "bad host"}}}, s);
  REQUIRE_FALSE(malformed);
  CHECK(malformed.error().message.find("'bad host'") != std::string::npos);
  CHECK_FALSE(policy_from_json(json{{"allow", "api.example.com"}}, s));
  CHECK_FALSE(policy_from_json(json{{"allowed", {"api.example.com"}}}, s));
  CHECK_FALSE(policy_from_json(json::array(), s));
}
