// Usage extraction from server-sent event streams of the four APIs, fed in pieces (sizes from
// the input): the extractor keeps one event at a time, so a stream of any shape (no newline for
// megabytes, CR-only line ends, events split anywhere) must neither crash nor grow without bound.
#include <algorithm>

#include "proxy/metering/usage.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::uint8_t choice = tokfence::fuzz::take_byte(in);
  static constexpr ApiKind kinds[] = {ApiKind::openai_chat, ApiKind::openai_responses, ApiKind::anthropic_messages,
                                      ApiKind::gemini};
  const ApiKind kind = kinds[choice % 4];
  const std::size_t piece = 1 + (choice >> 2) % 61;
  auto extractor = make_usage_extractor(kind, /*event_stream=*/true);
  for (std::size_t at = 0; at < in.size(); at += piece) extractor->feed(in.substr(at, piece));
  Usage u = extractor->finish();
  (void)extractor->response_model();
  (void)u.total();
  return 0;
}
