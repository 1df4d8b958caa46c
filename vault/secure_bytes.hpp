#pragma once
// SecureBytes: a fixed-size byte buffer for plaintext that is not a single key: a derived
// encryption key, a decrypted vault payload, a line typed at a prompt. Like SecretString it lives
// in a LockedBuffer (mlock()ed where allowed, wiped with OPENSSL_cleanse when freed); unlike it, it
// is writable, and it never grows, because a growing buffer leaves freed, unwiped copies of its old
// contents behind.
#include <cstddef>
#include <string_view>

#include "core/locked_buffer.hpp"

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

  unsigned char* data() { return buffer_.data(); }
  const unsigned char* data() const { return buffer_.data(); }
  char* chars() { return reinterpret_cast<char*>(buffer_.data()); }
  std::size_t size() const { return buffer_.size(); }
  std::string_view view() const { return buffer_.view(); }
  // Forgets the tail (wiping it); the allocation stays as it is.
  void truncate(std::size_t size);

 private:
  LockedBuffer buffer_;
};

}  // namespace tokfence::vault
