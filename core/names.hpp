#pragma once
#include <string_view>

#include "core/error.hpp"

namespace tokfence {

// Provider names are `[a-z0-9][a-z0-9_-]{0,31}`: they become URL path segments, SQLite values,
// keyring attributes and file names, so nothing else is accepted anywhere.
bool is_valid_provider_name(std::string_view name);

// Ok, or an error that states the rule: `provider name 'X': must match [a-z0-9][a-z0-9_-]{0,31}`.
Result<void> check_provider_name(std::string_view name);

}  // namespace tokfence
