#pragma once
// ASCII case for protocol text (HTTP field names, git config keys): only A-Z fold, whatever the
// locale, and bytes above 0x7f stay as they are. Header-only, libc-free: tokfence-relay (static,
// no tokfence_core) uses it through the core files it compiles in.
#include <string>
#include <string_view>

namespace tokfence::ascii {

constexpr char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Whether `text` holds `needle`, ASCII case-insensitively.
constexpr bool contains(std::string_view text, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= text.size(); ++i)
    if (iequals(text.substr(i, needle.size()), needle)) return true;
  return false;
}

}  // namespace tokfence::ascii
