// The secret scanner on arbitrary bytes, as text and as needles: the first byte picks the number of
// needles (0-3) and the stream's piece size; each needle is one length byte and that many bytes;
// the rest is the text. Whatever the bytes, no crash, find() agrees with a brute-force search, and
// a StreamScan fed the text in pieces agrees with find() on the whole.
#include <string>
#include <vector>

#include "proxy/immune/scanner.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::immune;

namespace {

constexpr std::size_t W = SecretScanner::kWindow;

bool naive_contains(std::string_view text, std::string_view needle) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(needle.size(), 20); ++i)
    if (needle[i] == '-' || needle[i] == '_') from = i + 1;
  if (needle.size() < W || needle.size() - from < W) return false;
  for (std::size_t i = from; i + W <= needle.size(); ++i)
    if (text.find(needle.substr(i, W)) != std::string_view::npos) return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  const std::uint8_t choice = tokfence::fuzz::take_byte(in);
  std::vector<std::string> values;
  std::vector<Needle> needles;
  for (int i = 0; i < choice % 4; ++i) {
    const std::size_t len = std::min<std::size_t>(tokfence::fuzz::take_byte(in), in.size());
    values.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
    needles.push_back({values.back(), i % 2 ? NeedleKind::vault_key : NeedleKind::decoy, static_cast<std::uint32_t>(i)});
  }
  const SecretScanner scanner(std::move(needles));
  bool expected = false;
  for (const auto& v : values) expected = expected || naive_contains(in, v);
  const auto hit = scanner.find(in);
  FUZZ_CHECK(hit.has_value() == expected);
  if (hit) FUZZ_CHECK(hit->owner < values.size() && naive_contains(in, values[hit->owner]));

  const std::size_t piece = 1 + (choice >> 2);
  StreamScan stream;
  bool streamed = false;
  for (std::size_t at = 0; at < in.size(); at += piece) streamed = stream.feed(scanner, in.substr(at, piece)).has_value() || streamed;
  FUZZ_CHECK(streamed == expected);
  return 0;
}
