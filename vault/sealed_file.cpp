#include "vault/sealed_file.hpp"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <mutex>

namespace tokfence::vault::sealed {

namespace {

// Layout offsets (docs/VAULT.md). Integers are big-endian.
constexpr std::size_t kOffVersion = 8, kOffKind = 10, kOffKdfId = 11, kOffT = 12, kOffM = 16, kOffP = 20,
                      kOffSalt = 24, kOffNonce = 40, kOffCheck = 52, kOffLength = 68;
static_assert(kOffLength + 4 == kHeaderSize);

// Bounds for parameters read from a file: generous for future raises, but a crafted header must not
// make tokfence allocate terabytes or spin for hours before the tag check can fail.
constexpr std::uint32_t kMaxT = 32, kMaxMKib = 4u * 1024 * 1024, kMaxP = 16;
constexpr std::uint32_t kMaxCiphertext = 16u * 1024 * 1024;

std::mutex g_test_kdf_mutex;
std::optional<KdfParams> g_test_kdf;

KdfParams write_kdf() {
  std::lock_guard lock(g_test_kdf_mutex);
  return g_test_kdf.value_or(kProductionKdf);
}

std::uint32_t get_u32(std::string_view s, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}
std::uint16_t get_u16(std::string_view s, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(s[at]) << 8 | static_cast<unsigned char>(s[at + 1]));
}
void put_u32(std::string& s, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>(v >> (24 - 8 * i));
}
void put_u16(std::string& s, std::size_t at, std::uint16_t v) {
  s[at] = static_cast<char>(v >> 8);
  s[at + 1] = static_cast<char>(v);
}

std::string serialize_header(const Header& h) {
  std::string out(kHeaderSize, '\0');
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put_u16(out, kOffVersion, h.version);
  out[kOffKind] = static_cast<char>(h.kind);
  out[kOffKdfId] = static_cast<char>(h.kdf_id);
  put_u32(out, kOffT, h.kdf.t_cost);
  put_u32(out, kOffM, h.kdf.m_cost_kib);
  put_u32(out, kOffP, h.kdf.parallelism);
  std::memcpy(out.data() + kOffSalt, h.salt.data(), h.salt.size());
  std::memcpy(out.data() + kOffNonce, h.nonce.data(), h.nonce.size());
  std::memcpy(out.data() + kOffCheck, h.key_check.data(), h.key_check.size());
  put_u32(out, kOffLength, h.ciphertext_length);
  return out;
}

std::string kind_name(Kind k) { return k == Kind::vault ? "a vault file" : "an export bundle"; }

Result<SecureBytes> derive_key(const SecretString& passphrase, const Header& h) {
  SecureBytes key(32);
  int rc = argon2id_hash_raw(h.kdf.t_cost, h.kdf.m_cost_kib, h.kdf.parallelism, passphrase.reveal().data(),
                             passphrase.size(), h.salt.data(), h.salt.size(), key.data(), key.size());
  if (rc != ARGON2_OK) return fail(std::string("key derivation: argon2id failed: ") + argon2_error_message(rc));
  return key;
}

// A one-way commitment to the derived key, so a wrong passphrase is told apart from a damaged file.
// It reveals nothing a GCM tag would not: testing a guess still costs one Argon2id derivation.
std::array<unsigned char, 16> key_check(const SecureBytes& key) {
  static constexpr std::string_view kLabel{"tokfence key check v1\0", 22};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx.get(), kLabel.data(), kLabel.size());
  EVP_DigestUpdate(ctx.get(), key.data(), key.size());
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  std::array<unsigned char, 16> out{};
  std::memcpy(out.data(), digest, out.size());
  OPENSSL_cleanse(digest, sizeof digest);
  return out;
}

Result<const SecureBytes*> key_for(const SecretString& passphrase, const Header& h, KeyCache* cache,
                                   SecureBytes& local) {
  if (cache)
    if (const SecureBytes* k = cache->find(h)) return k;
  auto derived = derive_key(passphrase, h);
  if (!derived) return std::unexpected(derived.error());
  if (cache) {
    cache->store(h, std::move(*derived));
    return cache->find(h);
  }
  local = std::move(*derived);
  return &local;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

const SecureBytes* KeyCache::find(const Header& h) const {
  for (const auto& e : entries_)
    if (e.kdf == h.kdf && CRYPTO_memcmp(e.salt.data(), h.salt.data(), e.salt.size()) == 0) return &e.key;
  return nullptr;
}

void KeyCache::store(const Header& h, SecureBytes key) {
  // A process sees at most a few salts (read, write, a concurrent writer's): keep the newest four.
  if (entries_.size() >= 4) entries_.erase(entries_.begin());
  entries_.push_back(Entry{h.salt, h.kdf, std::move(key)});
}

Result<Header> parse_header(std::string_view file, Kind expected, const Subject& subject) {
  auto error = [&](const std::string& problem, const std::string& fix = "") {
    return fail(subject.what + ": " + problem + ": " + subject.path + (fix.empty() ? "" : ": " + fix));
  };
  const std::string restore = "restore it from a backup or an export bundle";
  std::size_t magic_len = std::min(file.size(), kMagic.size());
  if (file.substr(0, magic_len) != kMagic.substr(0, magic_len) || file.empty())
    return error("not a tokfence file (bad magic)", file.empty() ? restore : "move it away");
  if (file.size() < kOffVersion + 2) return error("truncated (" + std::to_string(file.size()) + " bytes)", restore);
  Header h;
  h.version = get_u16(file, kOffVersion);
  if (h.version != kFormatVersion)
    return error("unsupported format version " + std::to_string(h.version) + " (this tokfence reads version " +
                     std::to_string(kFormatVersion) + ")",
                 "upgrade tokfence");
  if (file.size() < kHeaderSize + kTagSize)
    return error("truncated (" + std::to_string(file.size()) + " bytes, the header alone is " +
                     std::to_string(kHeaderSize + kTagSize) + ")",
                 restore);
  h.kind = static_cast<Kind>(file[kOffKind]);
  if (h.kind != Kind::vault && h.kind != Kind::bundle) return error("unknown file kind", restore);
  if (h.kind != expected)
    return error("this is " + kind_name(h.kind) + ", not " + kind_name(expected),
                 expected == Kind::vault ? "bring it in with 'tokfence vault import'" : "export one with 'tokfence vault export'");
  h.kdf_id = static_cast<std::uint8_t>(file[kOffKdfId]);
  h.kdf = {get_u32(file, kOffT), get_u32(file, kOffM), get_u32(file, kOffP)};
  if (h.kdf_id != kKdfArgon2id || h.kdf.t_cost < 1 || h.kdf.t_cost > kMaxT || h.kdf.parallelism < 1 ||
      h.kdf.parallelism > kMaxP || h.kdf.m_cost_kib < 8 * h.kdf.parallelism || h.kdf.m_cost_kib > kMaxMKib)
    return error("unsupported key derivation parameters", restore);
  std::memcpy(h.salt.data(), file.data() + kOffSalt, h.salt.size());
  std::memcpy(h.nonce.data(), file.data() + kOffNonce, h.nonce.size());
  std::memcpy(h.key_check.data(), file.data() + kOffCheck, h.key_check.size());
  h.ciphertext_length = get_u32(file, kOffLength);
  std::size_t expected_size = kHeaderSize + std::size_t{h.ciphertext_length} + kTagSize;
  if (file.size() < expected_size)
    return error("truncated (" + std::to_string(file.size()) + " of " + std::to_string(expected_size) + " bytes)",
                 restore);
  if (file.size() > expected_size || h.ciphertext_length > kMaxCiphertext)
    return error("damaged (" + std::to_string(file.size() - expected_size) + " unexpected trailing bytes)", restore);
  return h;
}

Result<std::string> seal(Kind kind, std::string_view plaintext, const SecretString& passphrase, KeyCache* cache) {
  if (plaintext.size() > kMaxCiphertext) return fail("sealed file: payload too large");
  Header h;
  h.version = kFormatVersion;
  h.kind = kind;
  h.kdf_id = kKdfArgon2id;
  h.kdf = write_kdf();
  if (RAND_bytes(h.salt.data(), static_cast<int>(h.salt.size())) != 1 ||
      RAND_bytes(h.nonce.data(), static_cast<int>(h.nonce.size())) != 1)
    return fail("sealed file: no randomness from the system");
  h.ciphertext_length = static_cast<std::uint32_t>(plaintext.size());
  SecureBytes local;
  auto key = key_for(passphrase, h, cache, local);
  if (!key) return std::unexpected(key.error());
  h.key_check = key_check(**key);

  std::string out = serialize_header(h);
  out.resize(kHeaderSize + plaintext.size() + kTagSize);
  auto* ct = reinterpret_cast<unsigned char*>(out.data() + kHeaderSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0, total = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(h.nonce.size()), nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, (*key)->data(), h.nonce.data()) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(out.data()),
                              static_cast<int>(kHeaderSize)) == 1 &&
            EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), ct + total, &len) == 1;
  total += ok ? len : 0;
  ok = ok && static_cast<std::size_t>(total) == plaintext.size() &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize), ct + total) == 1;
  if (!ok) return fail("sealed file: aes-256-gcm encryption failed");
  return out;
}

Result<SecureBytes> open(std::string_view file, Kind expected, const SecretString& passphrase, const Subject& subject,
                         KeyCache* cache) {
  auto header = parse_header(file, expected, subject);
  if (!header) return std::unexpected(header.error());
  SecureBytes local;
  auto key = key_for(passphrase, *header, cache, local);
  if (!key) return fail(subject.what + ": " + key.error().message + ": " + subject.path);
  auto check = key_check(**key);
  if (CRYPTO_memcmp(check.data(), header->key_check.data(), check.size()) != 0)
    return fail(subject.what + ": wrong passphrase: " + subject.path + ": " + subject.passphrase_hint);

  const auto* ct = reinterpret_cast<const unsigned char*>(file.data() + kHeaderSize);
  std::size_t n = header->ciphertext_length;
  SecureBytes plain(n);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0, total = 0;
  std::array<unsigned char, kTagSize> tag{};
  std::memcpy(tag.data(), ct + n, tag.size());
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(header->nonce.size()), nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, (*key)->data(), header->nonce.data()) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(file.data()),
                              static_cast<int>(kHeaderSize)) == 1 &&
            EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct, static_cast<int>(n)) == 1;
  total = len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()), tag.data()) == 1 &&
       EVP_DecryptFinal_ex(ctx.get(), plain.data() + total, &len) == 1;
  if (!ok)
    return fail(subject.what + ": authentication failed, the file was tampered with or damaged: " + subject.path +
                ": restore it from a backup or an export bundle");
  return plain;
}

namespace testing {
void set_write_kdf(std::optional<KdfParams> params) {
  std::lock_guard lock(g_test_kdf_mutex);
  g_test_kdf = params;
}
}  // namespace testing

}  // namespace tokfence::vault::sealed
