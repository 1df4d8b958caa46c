#pragma once
// The key vault: where real provider keys live. Two backends behind one interface:
//  - FileVault: vault.enc, Argon2id-derived key + AES-256-GCM (see docs/VAULT-FORMAT.md);
//  - SecretServiceVault: one libsecret item per provider, under tokfence's own schema.
// Keys only ever travel as SecretString; nothing here logs or formats a key.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/home.hpp"
#include "core/secret.hpp"

namespace tokfence::vault {

struct KeyInfo {
  std::string provider;
  std::string backend;          // "file" | "secret-service"
  std::int64_t added_at = 0;    // unix seconds
  std::int64_t rotated_at = 0;  // unix seconds; 0 = never rotated
  std::string fingerprint;      // SecretString::fingerprint(), never the key
};

enum class Overwrite { yes, no };

class Vault {
 public:
  virtual ~Vault() = default;
  virtual std::string backend_name() const = 0;
  // The key, or nullopt when the provider has none. Errors: locked/corrupt/unreachable store.
  virtual Result<std::optional<SecretString>> get(const std::string& provider) = 0;
  // All keys at once (the daemon loads them at start and on reload).
  virtual Result<std::vector<std::pair<std::string, SecretString>>> get_all() = 0;
  // Adds or replaces. With Overwrite::no an existing key is an error naming `vault rotate`.
  // Replacing sets rotated_at.
  virtual Result<void> put(const std::string& provider, const SecretString& key, Overwrite overwrite) = 0;
  // Error when the provider has no key.
  virtual Result<void> remove(const std::string& provider) = 0;
  virtual Result<std::vector<KeyInfo>> list() = 0;
};

// Where a passphrase for the file backend comes from: $TOKFENCE_VAULT_PASSPHRASE, else a no-echo
// prompt on the controlling terminal, else an error saying to set the variable.
// `purpose` is shown in the prompt ("vault", "export bundle").
using PassphraseSource = std::function<Result<SecretString>(const std::string& purpose, bool confirm)>;
PassphraseSource default_passphrase_source();

// Opens the backend chosen by `config.vault.backend` (auto = Secret Service when one answers on the
// session bus, else the file).
Result<std::unique_ptr<Vault>> open_vault(const Config& config, const Home& home, PassphraseSource passphrase);

}  // namespace tokfence::vault
