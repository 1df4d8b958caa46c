// Usage extraction from JSON (non-streamed) response bodies of the four APIs (OpenAI Chat
// Completions, OpenAI Responses, Anthropic Messages, Gemini): the first byte picks the API and
// the piece size the body is fed in. Whatever the upstream sends, no crash, and counts are never
// negative.
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
  const std::size_t piece = 1 + (choice >> 2) * 97;
  auto extractor = make_usage_extractor(kind, /*event_stream=*/false);
  for (std::size_t at = 0; at < in.size(); at += piece) extractor->feed(in.substr(at, piece));
  Usage u = extractor->finish();
  (void)extractor->response_model();
  (void)u.total();
  return 0;
}
