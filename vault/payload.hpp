#pragma once
// The plaintext inside a sealed file: a JSON object
//   {"<provider>": {"key": "<key>", "added_at": <unix s>, "rotated_at": <unix s, 0 = never>}, ...}
// A secret bound to hosts adds `"hosts": ["api.example.com", "*.example.org"]` to its entry (written
// only when there are hosts, so a vault of provider keys reads the same as before hosts existed).
// A secret the proxy may also put into the URL path (a Telegram bot token: /bot<token>/...) adds
// `"in": "path"`; an entry without "in" (every one written before positions existed) goes only in
// a credential field.
// Written and read here by hand rather than through nlohmann::json: a general JSON library grows
// its strings by reallocation and frees the old, unwiped copies of every key it touched. This code
// writes into one exactly-sized SecureBytes and reads keys straight from the decrypted buffer.
// The reader accepts any well-formed JSON of that shape (whitespace, escapes, unknown fields in an
// entry are skipped for forward compatibility).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/secret.hpp"
#include "vault/secure_bytes.hpp"

namespace tokfence::vault::payload {

struct Entry {
  SecretString key;
  std::int64_t added_at = 0;
  std::int64_t rotated_at = 0;
  std::vector<std::string> hosts;  // empty = a provider key; hosts are not secret
  bool in_path = false;            // a bound secret that may also stand in the URL path
};
using Entries = std::map<std::string, Entry>;

SecureBytes serialize(const Entries& entries);
// Errors never quote the input (it is plaintext key material). Hosts are checked with
// check_hosts; an entry without "hosts" has none.
Result<Entries> parse(std::string_view json);

// Keys are printable ASCII without spaces (every provider's keys are); an error names the rule,
// never the key.
Result<void> check_key(std::string_view key);

// The hosts of one entry: each passes check_secret_host (core/names.hpp), at most kMaxHosts, none
// twice (vault::check_secret_hosts forwards here).
constexpr std::size_t kMaxHosts = 32;
Result<void> check_hosts(const std::vector<std::string>& hosts);

}  // namespace tokfence::vault::payload
