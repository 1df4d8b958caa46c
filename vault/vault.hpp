#pragma once
// The key vault: where real provider keys live. Two backends behind one interface:
//  - FileVault: vault.enc, Argon2id-derived key + AES-256-GCM (see docs/VAULT.md);
//  - SecretServiceVault: one libsecret item per provider, under tokfence's own schema.
// Keys only ever travel as SecretString; nothing here logs or formats a key.
//
// An entry is either a provider key (no hosts: the proxy injects it for the provider of that name)
// or a secret bound to hosts (`vault add telegram-bot - --host api.telegram.org`): the proxy may
// send it only to those hosts, substituted for the placeholder `tokfence-secret:<name>` on inspected
// TLS connections. Both share one namespace of names. Anything that wants provider keys skips
// entries whose `hosts` is not empty.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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
  std::vector<std::string> hosts;  // empty = a provider key; else the only hosts it may go to
  bool in_path = false;            // bound for the URL path too (vault add --in path), not only a credential field
};

// The hosts of one entry: each passes check_secret_host (core/names.hpp), at most kMaxSecretHosts,
// none twice. Errors name the host (hosts are not secret).
constexpr std::size_t kMaxSecretHosts = 32;
Result<void> check_secret_hosts(const std::vector<std::string>& hosts);
// "a,b": how the Secret Service backend stores them; and back ("" = none).
std::string join_hosts(const std::vector<std::string>& hosts);
Result<std::vector<std::string>> split_hosts(std::string_view joined);

// yes: add or replace; no: add only (an existing key is an error naming `vault rotate`);
// existing_only: replace only (a missing key is an error naming `vault add`).
enum class Overwrite { yes, no, existing_only };

// A key with its dates: what an export bundle carries.
struct KeyRecord {
  std::string provider;
  SecretString key;
  std::int64_t added_at = 0;
  std::int64_t rotated_at = 0;
  std::vector<std::string> hosts;  // empty = a provider key
  bool in_path = false;            // see KeyInfo
};

enum class MergeOutcome { added, replaced, skipped };
struct MergeReport {
  std::string provider;
  MergeOutcome outcome = MergeOutcome::skipped;
};

// For `--secret VAR=NAME`: ok when `entries` (a vault's list()) has NAME bound to hosts; else an
// error saying whether it is missing or a provider key (which is never sent as a secret).
Result<void> check_bound_secret(const std::vector<KeyInfo>& entries, std::string_view name);

class Vault {
 public:
  virtual ~Vault() = default;
  virtual std::string backend_name() const = 0;
  // The key, or nullopt when the provider has none. Errors: locked/corrupt/unreachable store.
  virtual Result<std::optional<SecretString>> get(const std::string& provider) = 0;
  // All entries at once, provider keys and bound secrets alike (records() says which is which).
  virtual Result<std::vector<std::pair<std::string, SecretString>>> get_all() = 0;
  // Adds or replaces. With Overwrite::no an existing key is an error naming `vault rotate`.
  // Replacing sets rotated_at. A new entry gets `hosts` as given (empty: a provider key); a
  // replaced one gets `hosts` when not empty and keeps its stored hosts when empty (rotating a
  // bound secret keeps its binding). Bad `hosts` (check_secret_hosts) are an error, nothing written.
  // `in_path` goes with `hosts` (set when hosts are given, kept when not; an error without hosts
  // on a new entry): whether the proxy may put the secret into the URL path as well as into a
  // credential field (a Telegram bot token, /bot<token>/...; docs/EGRESS.md "Where a secret goes").
  virtual Result<void> put(const std::string& provider, const SecretString& key, Overwrite overwrite,
                           const std::vector<std::string>& hosts, bool in_path = false) = 0;
  // Error when the provider has no key.
  virtual Result<void> remove(const std::string& provider) = 0;
  virtual Result<std::vector<KeyInfo>> list() = 0;

  // Every key with its dates and hosts, sorted by provider (for export, and what the daemon loads).
  virtual Result<std::vector<KeyRecord>> records() = 0;
  // Merges `records` (an import): providers not in the vault are added with their recorded dates;
  // present ones are replaced (Overwrite::yes, rotated_at = now, hosts and in_path = the record's, even empty)
  // or skipped (Overwrite::no).
  // The file backend applies all of it in one locked write or not at all.
  virtual Result<std::vector<MergeReport>> merge(const std::vector<KeyRecord>& records, Overwrite overwrite) = 0;
};

// Where a passphrase for the file backend comes from: $TOKFENCE_VAULT_PASSPHRASE, else a no-echo
// prompt on the controlling terminal, else an error saying to set the variable.
// `purpose` is shown in the prompt ("vault", "export bundle"); for "export bundle" the variable is
// $TOKFENCE_EXPORT_PASSPHRASE. `confirm` asks twice at a prompt (a new vault or bundle).
using PassphraseSource = std::function<Result<SecretString>(const std::string& purpose, bool confirm)>;
PassphraseSource default_passphrase_source();

// Opens the backend chosen by `config.vault.backend` (auto = Secret Service when one answers on the
// session bus, else the file).
Result<std::unique_ptr<Vault>> open_vault(const Config& config, const Home& home, PassphraseSource passphrase);

// The backends directly (open_vault picks one; tests and `auto` use these).
std::unique_ptr<Vault> open_file_vault(const Home& home, PassphraseSource passphrase);
// Errors: no Secret Service on the session bus, or its default collection is locked.
Result<std::unique_ptr<Vault>> open_secret_service_vault();
// True when a Secret Service owns its name on the session bus (asked with a short timeout, without
// D-Bus activation, so `auto` never hangs on a desktop-less machine).
bool secret_service_available();

// Export bundles: the sealed format of vault.enc (kind "bundle"), protected by their own
// passphrase. `seal_bundle` returns the bytes to write; `open_bundle` reads them back, with the
// same one-line errors as the vault (`subject_path` names the file in them).
Result<std::string> seal_bundle(const std::vector<KeyRecord>& records, const SecretString& passphrase);
Result<std::vector<KeyRecord>> open_bundle(std::string_view bytes, const SecretString& passphrase,
                                           const std::string& subject_path);
// The checks that need no passphrase (magic, version, kind, length), so a wrong file is reported
// before anyone is asked to type.
Result<void> check_bundle_header(std::string_view bytes, const std::string& subject_path);

// Keys are printable ASCII without spaces, 1..8192 characters. The error (`key: ...`) states the
// rule and never quotes the key.
Result<void> check_key(std::string_view key);

// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename, fsync
// of the directory; the file gets `mode` (umask ignored). A crash leaves the old file or the new one.
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes, unsigned mode);

}  // namespace tokfence::vault
