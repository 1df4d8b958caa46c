// Inspected egress (proxy/http/inspect.hpp): the request head inside a tunnel to an inspected host
// comes from the agent, the one principal tokfence assumes hostile. Invariants: a head that is
// rewritten for a host the secret is not bound to never contains the secret (unless the agent
// wrote it there itself); a rewritten head
// holds no placeholder, ends with Connection: close and parses again with the same method and a
// target of the same shape; a path allowed under deny_paths ["/deny"] never normalises into
// /deny; SecretWatch fed the head in pieces agrees with a search of the whole.
#include <string>

#include "proxy/http/inspect.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy;

namespace {

// A fixed secret (not key-shaped): the invariants are about where it goes, not what it is.
const std::string kSecret = "fuzz-bound-secret-value-0123456789";

const inspect::SecretBook& book() {
  static const inspect::SecretBook b = [] {
    inspect::SecretBook s;
    s.emplace("bot", inspect::BoundSecret{tokfence::SecretString(kSecret), {"bound.test", "*.wild.test"}});
    return s;
  }();
  return b;
}

const egress::DomainRules& rules() {
  static const egress::DomainRules r = [] {
    tokfence::Config::Egress config;
    config.domains["bound.test"].deny_paths = {"/deny"};
    config.domains["bound.test"].methods = {"GET", "POST"};
    return egress::compile_settings(config)->domains.front();
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::uint8_t mode = tokfence::fuzz::take_byte(in);
  const std::string head(in);
  http1::RequestHead request;
  if (http1::parse_request_head(head, request) != http1::Parse::complete) return 0;
  static const char* const hosts[] = {"bound.test", "other.test", "a.wild.test", "wild.test"};
  const char* host = hosts[mode % 4];
  auto to = egress::parse_authority(host, 443);
  FUZZ_CHECK(to.has_value());
  const bool with_rules = (mode & 4) != 0 && mode % 4 == 0;
  const bool bound = mode % 4 == 0 || mode % 4 == 2;
  static const std::vector<std::string> granted = {"bot"};
  auto result = inspect::rewrite_request(request, *to, with_rules ? &rules() : nullptr, book(), granted);
  if (auto* out = std::get_if<inspect::Rewritten>(&result)) {
    const std::string_view sent(out->head.data(), out->head.size());
    // (An agent that already knows the secret may send it anywhere: only tokfence's copy counts.)
    if (!bound && head.find(kSecret) == std::string::npos) FUZZ_CHECK(sent.find(kSecret) == std::string_view::npos);
    FUZZ_CHECK(sent.find(inspect::kPlaceholderPrefix) == std::string_view::npos);
    // The book's secret is bound for credential fields only: never in the request line.
    if (head.find(kSecret) == std::string::npos)
      FUZZ_CHECK(sent.substr(0, sent.find("\r\n")).find(kSecret) == std::string_view::npos);
    FUZZ_CHECK(sent.ends_with("Connection: close\r\n\r\n"));
    const std::string again_text(sent);
    http1::RequestHead again;
    FUZZ_CHECK(http1::parse_request_head(again_text, again) == http1::Parse::complete);
    FUZZ_CHECK(again.method == request.method);
    FUZZ_CHECK(!again.target.empty() && again.target.front() == '/');
    if (with_rules) {
      const std::string_view path = request.target.substr(0, request.target.find('?'));
      FUZZ_CHECK(!(path.starts_with("/deny") && (path.size() == 5 || path[5] == '/')));
    }
    FUZZ_CHECK(out->secrets_used.empty() == out->watch_for.empty());
  } else {
    const auto& refusal = std::get<inspect::Refusal>(result);
    FUZZ_CHECK(refusal.status == 400 || refusal.status == 403);
    FUZZ_CHECK(!refusal.rule.empty());
    FUZZ_CHECK(refusal.message.find(kSecret) == std::string::npos);
  }
  // SecretWatch in pieces of (mode % 7 + 1) bytes against a search of the whole.
  const std::size_t piece = mode % 7 + 1;
  inspect::SecretWatch watch({kSecret});
  bool found = false;
  for (std::size_t i = 0; i < head.size(); i += piece) found = watch.feed(std::string_view(head).substr(i, piece)) || found;
  FUZZ_CHECK(found == (head.find(kSecret) != std::string::npos));
  return 0;
}
