#pragma once
// SecretString: the only type that holds a real provider key or a passphrase in memory.
// Its bytes live in a LockedBuffer: mlock()ed where the system allows it (so they are not swapped
// out) and wiped with OPENSSL_cleanse when freed or reassigned. It cannot be streamed or implicitly
// converted, so a key does not end up in a log line or error message by accident; `reveal()` is
// the one explicit door.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/locked_buffer.hpp"

namespace tokfence {

class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string_view value);
  SecretString(const SecretString& other);
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(const SecretString& other);
  SecretString& operator=(SecretString&& other) noexcept;
  ~SecretString();

  // The raw bytes, for the few places that must hand the key on (an upstream header, a cipher).
  std::string_view reveal() const { return buffer_.view(); }
  std::size_t size() const { return buffer_.size(); }
  bool empty() const { return buffer_.size() == 0; }

  // A non-secret label for humans: "…" + the last 4 characters (or fewer for short keys).
  std::string fingerprint() const;

  friend bool operator==(const SecretString& a, const SecretString& b);

 private:
  void assign(std::string_view value);
  LockedBuffer buffer_;  // empty (no allocation) for an empty value
};

// Wipes a std::string that briefly held secret material (e.g. a line read from stdin).
void wipe(std::string& s) noexcept;
// Wipes `size` bytes at `data` in a way the compiler cannot drop (OPENSSL_cleanse).
void wipe_memory(void* data, std::size_t size) noexcept;

// An allocator that wipes memory before handing it back: for library containers that briefly
// hold a key, such as the header fields of an upstream request (Beast keeps "Authorization:
// Bearer <key>" in its own allocations, which would otherwise return to the heap readable).
template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    wipe_memory(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  friend bool operator==(const WipingAllocator&, const WipingAllocator&) noexcept { return true; }
};

}  // namespace tokfence
