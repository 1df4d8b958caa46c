#include "proxy/immune/encoded.hpp"

#include <array>
#include <cstdint>
#include <string>

#include "core/hex.hpp"

namespace tokfence::immune {
namespace {

constexpr std::int8_t kNone = -1;

// Base64 digit values, both alphabets in one table: '+' and '-' are 62, '/' and '_' are 63.
constexpr std::array<std::int8_t, 256> make_base64_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = kNone;
  for (int i = 0; i < 26; ++i) {
    t[static_cast<std::size_t>('A' + i)] = static_cast<std::int8_t>(i);
    t[static_cast<std::size_t>('a' + i)] = static_cast<std::int8_t>(26 + i);
  }
  for (int i = 0; i < 10; ++i) t[static_cast<std::size_t>('0' + i)] = static_cast<std::int8_t>(52 + i);
  t['+'] = t['-'] = 62;
  t['/'] = t['_'] = 63;
  return t;
}
constexpr auto kBase64 = make_base64_table();

std::int8_t base64_value(char c) { return kBase64[static_cast<unsigned char>(c)]; }

// Whole groups of four digits only: a trailing partial group holds at most two bytes, less than
// any window.
void decode_base64(std::string_view run, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i + 4 <= run.size(); i += 4) {
    const std::uint32_t v = static_cast<std::uint32_t>(base64_value(run[i])) << 18 |
                            static_cast<std::uint32_t>(base64_value(run[i + 1])) << 12 |
                            static_cast<std::uint32_t>(base64_value(run[i + 2])) << 6 |
                            static_cast<std::uint32_t>(base64_value(run[i + 3]));
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>(v >> 8 & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
  }
}

void decode_hex(std::string_view run, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i + 2 <= run.size(); i += 2)
    out.push_back(static_cast<char>(hex_value(run[i]) << 4 |
                                    hex_value(run[i + 1])));
}

// Calls `on_run` with each maximal run of characters `in_alphabet` accepts that is at least
// `min_size` long; stops at the first run for which it returns a hit.
template <class InAlphabet, class OnRun>
std::optional<Hit> for_each_run(std::string_view text, std::size_t min_size, InAlphabet in_alphabet, OnRun on_run) {
  for (std::size_t i = 0; i < text.size();) {
    if (!in_alphabet(text[i])) {
      ++i;
      continue;
    }
    std::size_t end = i + 1;
    while (end < text.size() && in_alphabet(text[end])) ++end;
    if (end - i >= min_size)
      if (auto hit = on_run(text.substr(i, end - i))) return hit;
    i = end;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Hit> find_encoded(const SecretScanner& scanner, std::string_view text) {
  if (scanner.empty()) return std::nullopt;
  std::string decoded;
  auto base64_hit = for_each_run(
      text, kMinBase64Run, [](char c) { return base64_value(c) != kNone; },
      [&](std::string_view run) -> std::optional<Hit> {
        for (std::size_t shift = 0; shift < 4 && run.size() - shift >= kMinBase64Run; ++shift) {
          decode_base64(run.substr(shift), decoded);
          if (auto hit = scanner.find(decoded)) return hit;
        }
        return std::nullopt;
      });
  if (base64_hit) return base64_hit;
  return for_each_run(
      text, kMinHexRun, [](char c) { return hex_value(c) >= 0; },
      [&](std::string_view run) -> std::optional<Hit> {
        for (std::size_t shift = 0; shift < 2 && run.size() - shift >= kMinHexRun; ++shift) {
          decode_hex(run.substr(shift), decoded);
          if (auto hit = scanner.find(decoded)) return hit;
        }
        return std::nullopt;
      });
}

}  // namespace tokfence::immune
