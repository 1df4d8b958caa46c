#pragma once
#include <string_view>

#include "core/error.hpp"

namespace tokfence {

// Provider names are `[a-z0-9][a-z0-9_-]{0,31}`: they become URL path segments, SQLite values,
// keyring attributes and file names, so nothing else is accepted anywhere.
bool is_valid_provider_name(std::string_view name);

// Ok, or an error that states the rule: `provider name 'X': must match [a-z0-9][a-z0-9_-]{0,31}`.
Result<void> check_provider_name(std::string_view name);

// The hosts a vault secret may be sent to (`vault add NAME - --host H`): a lower-case DNS name with
// at least one dot, labels of [a-z0-9-] (1-63 characters, not starting or ending with '-'), at most
// 253 characters, the last label starting with a letter (so no IPv4 literal in any of the forms
// inet_aton reads). No wildcard (a secret bound to "*.github.io" would go to names anyone can
// register), no port, no IP literal, no upper case, no trailing dot. The error states the rule and
// quotes the host (hosts are not secret): `host 'X': <problem>: <rule or fix>`.
Result<void> check_secret_host(std::string_view host);

}  // namespace tokfence
