#include "core/names.hpp"

#include <string>

namespace tokfence {

namespace {
bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
}  // namespace

bool is_valid_provider_name(std::string_view name) {
  if (name.empty() || name.size() > 32 || !lower_alnum(name[0])) return false;
  for (char c : name.substr(1))
    if (!lower_alnum(c) && c != '_' && c != '-') return false;
  return true;
}

Result<void> check_provider_name(std::string_view name) {
  if (is_valid_provider_name(name)) return {};
  // Echo at most 40 printable characters: the "name" might be a pasted key.
  std::string shown;
  for (char c : name.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (name.size() > 40) shown += "...";
  return fail("provider name '" + shown + "': must match [a-z0-9][a-z0-9_-]{0,31}");
}

}  // namespace tokfence
