// The response-head parser, on anything an upstream (or something posing as one) can send.
#include "proxy/http/http1.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  static constexpr std::string_view methods[] = {"GET", "POST", "HEAD", "CONNECT"};
  const std::string_view method = methods[tokfence::fuzz::take_byte(in) % 4];
  ResponseHead head;
  const Parse p = parse_response_head(in, method, head);
  if (p == Parse::complete) {
    FUZZ_CHECK(head.size <= in.size());
    FUZZ_CHECK(head.status >= 100 && head.status <= 999);
    if (method == "HEAD") FUZZ_CHECK(head.body == BodyKind::none);
    if (head.body != BodyKind::length) FUZZ_CHECK(head.content_length == 0);
  }
  // Every prefix of a complete head is incomplete, never an error or another head.
  if (p == Parse::complete && head.size > 0) {
    ResponseHead prefix;
    FUZZ_CHECK(parse_response_head(in.substr(0, head.size - 1), method, prefix) == Parse::incomplete);
  }
  return 0;
}
