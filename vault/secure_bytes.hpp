#pragma once
// SecureBytes: a fixed-size byte buffer for plaintext that is not a single key: a derived
// encryption key, a decrypted vault payload, a line typed at a prompt. Like SecretString it is
// mlock()ed where allowed and wiped with OPENSSL_cleanse when freed; unlike it, it is writable, and
// it never grows, because a growing buffer leaves freed, unwiped copies of its old contents behind.
#include <cstddef>
#include <string_view>

namespace tokfence::vault {

class SecureBytes {
 public:
  SecureBytes() = default;
  explicit SecureBytes(std::size_t size);
  SecureBytes(const SecureBytes&) = delete;
  SecureBytes& operator=(const SecureBytes&) = delete;
  SecureBytes(SecureBytes&& other) noexcept;
  SecureBytes& operator=(SecureBytes&& other) noexcept;
  ~SecureBytes();

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  char* chars() { return reinterpret_cast<char*>(data_); }
  std::size_t size() const { return size_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Forgets the tail (wiping it); the allocation stays as it is.
  void truncate(std::size_t size);

 private:
  void release() noexcept;
  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool locked_ = false;
};

}  // namespace tokfence::vault
