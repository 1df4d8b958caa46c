#pragma once
// The sealed-file format shared by vault.enc and export bundles (docs/VAULT.md has the layout):
// a 72-byte header (magic, format version, kind, Argon2id parameters, salt, nonce, a passphrase
// check value, ciphertext length), the AES-256-GCM ciphertext, and the 16-byte GCM tag. The whole
// header is the GCM additional data, so no field of it can be changed without the tag failing.
//
// Reading honours the KDF parameters the header records (within sane bounds), so they can be raised
// later without breaking old files; writing always uses kProductionKdf, except where a unit test has
// lowered them through testing::set_write_kdf().
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/secret.hpp"
#include "vault/secure_bytes.hpp"

namespace tokfence::vault::sealed {

inline constexpr std::string_view kMagic{"TOKFENCE", 8};
inline constexpr std::uint16_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 72;
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::uint8_t kKdfArgon2id = 1;

enum class Kind : std::uint8_t { vault = 1, bundle = 2 };

struct KdfParams {
  std::uint32_t t_cost = 0;      // iterations
  std::uint32_t m_cost_kib = 0;  // memory, KiB
  std::uint32_t parallelism = 0;
  friend bool operator==(const KdfParams&, const KdfParams&) = default;
};
// Argon2id t=3, m=192 MiB, p=4: about 0.6 s on the machines tokfence was measured on.
inline constexpr KdfParams kProductionKdf{3, 196608, 4};

struct Header {
  std::uint16_t version = 0;
  Kind kind = Kind::vault;
  std::uint8_t kdf_id = 0;
  KdfParams kdf;
  std::array<unsigned char, 16> salt{};
  std::array<unsigned char, 12> nonce{};
  std::array<unsigned char, 16> key_check{};
  std::uint32_t ciphertext_length = 0;
};

// How a sealed file is named in messages: `what` is "vault" or "export bundle", `path` the file,
// `passphrase_hint` the fix for a wrong passphrase ("check TOKFENCE_VAULT_PASSPHRASE").
struct Subject {
  std::string what;
  std::string path;
  std::string passphrase_hint;
};

// Derived keys by (salt, params), so that one process derives each key once: a `put` reads with
// the old salt and writes with a fresh one (two derivations); a later read of what it wrote, or a
// second read of the same file, derives nothing.
class KeyCache {
 public:
  const SecureBytes* find(const Header& header) const;
  void store(const Header& header, SecureBytes key);

 private:
  struct Entry {
    std::array<unsigned char, 16> salt;
    KdfParams kdf;
    SecureBytes key;
  };
  std::vector<Entry> entries_;
};

// Parses and checks the header: magic, version, kind, KDF bounds, and the file length against the
// recorded ciphertext length. Errors are one line: `<what>: <problem>: <path>[: fix]`.
Result<Header> parse_header(std::string_view file, Kind expected, const Subject& subject);

// Encrypts `plaintext` under a key derived from `passphrase` with a fresh random salt and nonce.
Result<std::string> seal(Kind kind, std::string_view plaintext, const SecretString& passphrase, KeyCache* cache);

// Checks and decrypts. A wrong passphrase and a failed GCM tag are told apart by the header's check
// value, so the user learns whether to retype or to restore a backup.
Result<SecureBytes> open(std::string_view file, Kind expected, const SecretString& passphrase, const Subject& subject,
                         KeyCache* cache);

namespace testing {
// Lowers the KDF cost of files written by this process (unit tests only; nullopt restores it).
void set_write_kdf(std::optional<KdfParams> params);
}  // namespace testing

}  // namespace tokfence::vault::sealed
