// Capability tokens (docs/IMMUNEFENCE.md): every request's API key is read as one when it starts
// with "tfc1.", so the verifier reads hostile bytes first thing. Invariants: no crash and no
// acceptance of anything the fuzzer made (it has no key); a token the key signed verifies, and
// the same token with the input's bytes spliced into it does not, unless unchanged.
#include <string>

#include "proxy/immune/capability.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::immune;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const SigningKey key = *SigningKey::generate();
  static const std::string good = [] {
    Claims c;
    c.client_id = "fuzz";
    c.session_id = "ses_0000000000000000";
    c.issued_at_ms = 1;
    c.expires_at_ms = 4'000'000'000'000;
    return key.sign(c);
  }();
  std::string_view in = tokfence::fuzz::as_text(data, size);
  FUZZ_CHECK(!key.verify(in, 2));  // forging an Ed25519 signature is not what a fuzzer finds
  const std::uint8_t at = tokfence::fuzz::take_byte(in);
  std::string spliced = good;
  spliced.replace(at % good.size(), std::min<std::size_t>(in.size(), 8), in.substr(0, 8));
  auto verdict = key.verify(spliced, 2);
  FUZZ_CHECK(!verdict || spliced == good);
  FUZZ_CHECK(key.verify(good, 2).has_value());
  return 0;
}
