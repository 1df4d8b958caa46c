#include "core/secret.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace tokfence {

SecretString::SecretString(std::string_view value) { assign(value); }
SecretString::SecretString(const SecretString& other) { assign(other.reveal()); }
SecretString::SecretString(SecretString&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_), locked_(other.locked_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
  other.locked_ = false;
}
SecretString& SecretString::operator=(const SecretString& other) {
  if (this != &other) {
    release();
    assign(other.reveal());
  }
  return *this;
}
SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    release();
    data_ = other.data_;
    size_ = other.size_;
    capacity_ = other.capacity_;
    locked_ = other.locked_;
    other.data_ = nullptr;
    other.size_ = other.capacity_ = 0;
    other.locked_ = false;
  }
  return *this;
}
SecretString::~SecretString() { release(); }

void SecretString::assign(std::string_view value) {
  if (value.empty()) return;
  capacity_ = value.size();
  data_ = static_cast<char*>(std::calloc(1, capacity_));
  if (!data_) throw std::bad_alloc();
  // mlock can fail under RLIMIT_MEMLOCK; the key still works, it is just swappable.
  locked_ = ::mlock(data_, capacity_) == 0;
  std::memcpy(data_, value.data(), value.size());
  size_ = value.size();
}

void SecretString::release() noexcept {
  if (!data_) return;
  OPENSSL_cleanse(data_, capacity_);
  if (locked_) ::munlock(data_, capacity_);
  std::free(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
  locked_ = false;
}

std::string SecretString::fingerprint() const {
  // Short keys reveal too much even through 4 characters: show fewer.
  std::size_t shown = size_ >= 16 ? 4 : (size_ >= 8 ? 2 : 0);
  return "..." + std::string(reveal().substr(size_ - shown));
}

bool operator==(const SecretString& a, const SecretString& b) {
  return a.size_ == b.size_ && CRYPTO_memcmp(a.data_, b.data_, a.size_) == 0;
}

void wipe_memory(void* data, std::size_t size) noexcept {
  if (data && size) OPENSSL_cleanse(data, size);
}

void wipe(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace tokfence
