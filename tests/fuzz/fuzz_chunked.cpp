// The chunked-body decoder (request bodies from clients, response bodies from upstreams): fed the
// input whole and in pieces (sizes taken from the input), it must decode the same bytes and end
// in the same state, and never consume more than it was given.
#include <algorithm>
#include <string>

#include "proxy/http/http1.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using tokfence::proxy::http1::ChunkedDecoder;

namespace {

struct Decoded {
  std::string data;
  std::size_t consumed = 0;
  bool done = false, failed = false;
};

Decoded decode(std::string_view in, std::size_t piece) {
  ChunkedDecoder decoder;
  Decoded out;
  std::string pending;  // bytes given but not yet consumed (the caller keeps them, as the proxy does)
  std::size_t fed = 0;
  while (!decoder.done() && !decoder.failed()) {
    if (fed < in.size()) {
      std::size_t n = std::min(piece, in.size() - fed);
      pending.append(in.substr(fed, n));
      fed += n;
    }
    std::size_t used = 0;
    for (;;) {
      auto step = decoder.step(std::string_view(pending).substr(used));
      FUZZ_CHECK(step.consumed <= pending.size() - used);
      if (!step.data.empty()) {
        FUZZ_CHECK(step.data.data() >= pending.data() + used);
        FUZZ_CHECK(step.data.data() + step.data.size() <= pending.data() + used + step.consumed);
      }
      out.data.append(step.data);
      used += step.consumed;
      if (step.consumed == 0 || decoder.done() || decoder.failed() || used == pending.size()) break;
    }
    pending.erase(0, used);
    out.consumed += used;
    if (fed == in.size() && used == 0) break;
  }
  out.done = decoder.done();
  out.failed = decoder.failed();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::size_t piece = 1 + tokfence::fuzz::take_byte(in) % 32;
  Decoded whole = decode(in, in.size() + 1);
  Decoded split = decode(in, piece);
  FUZZ_CHECK(whole.consumed <= in.size());
  FUZZ_CHECK(whole.done == split.done);
  FUZZ_CHECK(whole.failed == split.failed);
  if (!whole.failed) {
    FUZZ_CHECK(whole.data == split.data);
    FUZZ_CHECK(whole.consumed == split.consumed);
  }
  FUZZ_CHECK(whole.data.size() <= in.size());
  return 0;
}
