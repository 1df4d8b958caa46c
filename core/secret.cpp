#include "core/secret.hpp"

#include <openssl/crypto.h>

#include <cstring>

namespace tokfence {

SecretString::SecretString(std::string_view value) { assign(value); }
SecretString::SecretString(const SecretString& other) { assign(other.reveal()); }
SecretString::SecretString(SecretString&& other) noexcept = default;
SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) {
    buffer_.reset();  // the old value is wiped before the copy is allocated
    assign(other.reveal());
  }
  return *this;
}
SecretString& SecretString::operator=(SecretString&& other) noexcept = default;
SecretString::~SecretString() = default;

void SecretString::assign(std::string_view value) {
  if (value.empty()) return;
  buffer_ = LockedBuffer(value.size());
  std::memcpy(buffer_.data(), value.data(), value.size());
}

std::string SecretString::fingerprint() const {
  // Short keys reveal too much even through 4 characters: show fewer.
  std::size_t shown = size() >= 16 ? 4 : (size() >= 8 ? 2 : 0);
  return "..." + std::string(reveal().substr(size() - shown));
}

bool operator==(const SecretString& a, const SecretString& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.reveal().data(), b.reveal().data(), a.size()) == 0;
}

void wipe_memory(void* data, std::size_t size) noexcept {
  if (data && size) OPENSSL_cleanse(data, size);
}

void wipe(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace tokfence
