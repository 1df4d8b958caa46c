// Egress rules and request authorities (docs/EGRESS.md): a rule comes from the user's flags and
// config, an authority from the agent (CONNECT host:port, an absolute-form URL), so both parsers
// read hostile bytes. Invariants: errors are messages, never crashes; what parses is normalised
// (lower case, no brackets, a port >= 1) and round-trips through its text form; a rule matches
// the destination written from its own text unless it is a wildcard; a wildcard never matches
// its bare suffix.
#include <cctype>
#include <string>

#include "proxy/egress/policy.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy::egress;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::uint8_t mode = tokfence::fuzz::take_byte(in);
  // The rest: "<rule text>\n<authority>" (either may be empty).
  const auto nl = in.find('\n');
  const std::string_view rule_text = in.substr(0, nl);
  const std::string_view authority = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  auto rule = parse_rule(rule_text);
  if (rule) {
    FUZZ_CHECK(rule->port >= 1);
    FUZZ_CHECK(!rule->host.empty());
    for (char c : rule->host) FUZZ_CHECK(!std::isupper(static_cast<unsigned char>(c)));
    auto again = parse_rule(rule->text());
    FUZZ_CHECK(again && *again == *rule);  // the listed form parses to the same rule
    if (!rule->wildcard) {
      auto self = parse_authority(rule->text(), kDefaultPort);
      FUZZ_CHECK(self && matches(*rule, *self));
    } else {
      auto bare = parse_authority(rule->host.substr(2) + ":" + std::to_string(rule->port), kDefaultPort);
      FUZZ_CHECK(!bare || !matches(*rule, *bare));
    }
  } else {
    FUZZ_CHECK(!rule.error().message.empty());
  }

  auto to = parse_authority(authority, mode & 1 ? 80 : kDefaultPort);
  if (to) {
    FUZZ_CHECK(to->port >= 1);
    FUZZ_CHECK(!to->host.empty());
    auto again = parse_authority(to->text(), kDefaultPort);
    FUZZ_CHECK(again && again->host == to->host && again->port == to->port);
    if (rule) (void)matches(*rule, *to);
  } else {
    FUZZ_CHECK(!to.error().message.empty());
  }
  return 0;
}
