// The proxy's request-head parser, on anything a client can send, and the head scanner beside
// it: a head fed in pieces (sizes taken from the input) must parse as the whole input does (an
// error in a field line may wait for the end of the head), with at most three parses.
#include <algorithm>

#include "proxy/http/http1.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::size_t piece = 1 + tokfence::fuzz::take_byte(in) % 16;

  RequestHead whole;
  const Parse expected = parse_request_head(in, whole);
  if (expected == Parse::complete) {
    FUZZ_CHECK(whole.size <= in.size());
    for (const auto& h : whole.headers) {
      FUZZ_CHECK(h.name.data() >= in.data() && h.name.data() + h.name.size() <= in.data() + in.size());
      FUZZ_CHECK(h.value.data() >= in.data() && h.value.data() + h.value.size() <= in.data() + in.size());
    }
    (void)whole.find("content-length");
    (void)whole.has_token("connection", "close");
  }

  HeadScanner scanner;
  RequestHead head;
  Parse got = Parse::incomplete;
  int parses = 0;
  for (std::size_t have = std::min(piece, in.size());; have = std::min(have + piece, in.size())) {
    std::string_view so_far = in.substr(0, have);
    if (scanner.scan(so_far)) {
      ++parses;
      got = parse_request_head(so_far, head);
      if (got != Parse::incomplete) break;
    }
    if (have == in.size()) break;
  }
  FUZZ_CHECK(parses <= 3);
  FUZZ_CHECK(scanner.bytes_scanned() <= in.size());
  // A bad field line before the head has ended is seen once the head ends (the scanner does not
  // call for a parse at every line: that would make many short lines quadratic again).
  FUZZ_CHECK(got == expected || (got == Parse::incomplete && expected == Parse::error));
  if (got == Parse::complete) {
    FUZZ_CHECK(head.size == whole.size);
    FUZZ_CHECK(head.headers.size() == whole.headers.size());
    FUZZ_CHECK(head.body == whole.body);
    FUZZ_CHECK(head.content_length == whole.content_length);
  }
  if (got == Parse::error) FUZZ_CHECK(head.error == whole.error);
  return 0;
}
