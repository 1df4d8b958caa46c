// config.toml parsing: every setting tokfence reads, from a file the user (or a tool writing it)
// controls. Errors must be messages, never crashes; a config that parses gives settings in their
// documented ranges.
#include <string>

#include "core/config.hpp"
#include "tests/fuzz/fuzz_input.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = tokfence::fuzz::as_text(data, size);
  static const tokfence::Home home("/nonexistent/tokfence-fuzz-home");
  auto loaded = tokfence::parse_config(text, "config.toml", home);
  if (loaded) {
    const auto& d = loaded->config.daemon;
    FUZZ_CHECK(d.port >= 0 && d.port <= 65535);
    FUZZ_CHECK(d.max_header_bytes >= 1024);
    FUZZ_CHECK(d.header_timeout_seconds >= 1 && d.body_timeout_seconds >= 1);
    (void)loaded->config.providers();
  } else {
    FUZZ_CHECK(!loaded.error().message.empty());
  }
  return 0;
}
