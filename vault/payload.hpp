#pragma once
// The plaintext inside a sealed file: a JSON object
//   {"<provider>": {"key": "<key>", "added_at": <unix s>, "rotated_at": <unix s, 0 = never>}, ...}
// Written and read here by hand rather than through nlohmann::json: a general JSON library grows
// its strings by reallocation and frees the old, unwiped copies of every key it touched. This code
// writes into one exactly-sized SecureBytes and reads keys straight from the decrypted buffer.
// The reader accepts any well-formed JSON of that shape (whitespace, escapes, unknown fields in an
// entry are skipped for forward compatibility).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/secret.hpp"
#include "vault/secure_bytes.hpp"

namespace tokfence::vault::payload {

struct Entry {
  SecretString key;
  std::int64_t added_at = 0;
  std::int64_t rotated_at = 0;
};
using Entries = std::map<std::string, Entry>;

SecureBytes serialize(const Entries& entries);
// Errors never quote the input (it is plaintext key material).
Result<Entries> parse(std::string_view json);

// Keys are printable ASCII without spaces (every provider's keys are); an error names the rule,
// never the key.
Result<void> check_key(std::string_view key);

}  // namespace tokfence::vault::payload
