// The TLS ClientHello at the start of an egress tunnel (proxy/egress/client_hello.hpp): the agent
// writes every byte of it. Invariants: no crash or overread on any input; a verdict on a prefix
// is never "malformed" when the whole is complete (reading more never turns a good hello bad);
// a complete hello's name is lower case without a trailing dot; malformed always says why. The
// same bytes through ClientFlightWatch (the rest of the client's handshake): the verdict does not
// depend on how reads cut the bytes, and a refusal says why.
#include <cctype>
#include <string>

#include "proxy/egress/client_hello.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy::egress;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = tokfence::fuzz::as_text(data, size);
  const ClientHello whole = read_client_hello(in);
  if (whole.status == ClientHello::malformed) FUZZ_CHECK(!whole.why.empty());
  if (whole.status == ClientHello::complete) {
    for (char c : whole.server_name) FUZZ_CHECK(!std::isupper(static_cast<unsigned char>(c)));
    FUZZ_CHECK(whole.server_name.empty() || whole.server_name.back() != '.');
    for (std::size_t cut : {in.size() / 2, in.size() > 0 ? in.size() - 1 : 0}) {
      const ClientHello part = read_client_hello(in.substr(0, cut));
      FUZZ_CHECK(part.status != ClientHello::malformed);
    }
  }
  ClientFlightWatch whole_watch(whole.server_name);
  const auto verdict = whole_watch.feed(in);
  if (verdict == ClientFlightWatch::Verdict::refused) FUZZ_CHECK(!whole_watch.why().empty());
  ClientFlightWatch bytewise(whole.server_name);
  auto v = ClientFlightWatch::Verdict::watching;
  for (std::size_t i = 0; i < in.size() && v == ClientFlightWatch::Verdict::watching; ++i) v = bytewise.feed(in.substr(i, 1));
  FUZZ_CHECK(v == verdict);
  return 0;
}
