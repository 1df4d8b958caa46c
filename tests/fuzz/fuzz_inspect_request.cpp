// inspect_request on client request bodies (any API, with stream-usage injection on): it may
// rewrite the body, and what it writes must still be the client's JSON when the input was JSON.
#include <string>

#include <nlohmann/json.hpp>

#include "proxy/metering/usage.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::uint8_t choice = tokfence::fuzz::take_byte(in);
  static constexpr ApiKind kinds[] = {ApiKind::openai_chat, ApiKind::openai_responses, ApiKind::anthropic_messages,
                                      ApiKind::gemini, ApiKind::other};
  static constexpr std::string_view paths[] = {"/v1/chat/completions", "/v1/responses", "/v1/messages",
                                               "/v1beta/models/gemini-2.5-pro:streamGenerateContent", "/v1/x"};
  const ApiKind kind = kinds[choice % 5];
  std::string body(in);
  const bool was_json = nlohmann::json::accept(body);
  RequestInfo info = inspect_request(kind, paths[choice % 5], body, (choice & 0x80) != 0);
  FUZZ_CHECK(info.estimated_input_tokens >= 0);
  if (was_json) FUZZ_CHECK(nlohmann::json::accept(body));
  return 0;
}
