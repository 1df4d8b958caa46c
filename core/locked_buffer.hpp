#pragma once
// LockedBuffer: the storage under SecretString and vault::SecureBytes, the types that hold keys and
// other plaintext secrets. Its bytes are mlock()ed where the system allows it (so they are not
// swapped out) and wiped with OPENSSL_cleanse before the memory goes back to the heap: on
// destruction, on reset(), and when another buffer is moved in. Its capacity is fixed at
// construction and it never grows, because a growing buffer leaves freed, unwiped copies of its old
// contents behind. It is move-only: a copy would be a second place to wipe, so a type that wants
// copies (SecretString) builds a new buffer from the bytes.
#include <cstddef>
#include <string_view>

namespace tokfence {

class LockedBuffer {
 public:
  LockedBuffer() = default;
  // `size` zeroed bytes. Even a zero size allocates (one byte), so a constructed buffer always has
  // a non-null data().
  explicit LockedBuffer(std::size_t size);
  LockedBuffer(const LockedBuffer&) = delete;
  LockedBuffer& operator=(const LockedBuffer&) = delete;
  LockedBuffer(LockedBuffer&& other) noexcept;
  LockedBuffer& operator=(LockedBuffer&& other) noexcept;
  ~LockedBuffer();

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Forgets the tail (wiping it); the allocation stays as it is.
  void truncate(std::size_t size) noexcept;
  // Wipes and frees the bytes now; the buffer is empty afterwards, as if default-constructed.
  void reset() noexcept;

 private:
  unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool locked_ = false;
};

}  // namespace tokfence
