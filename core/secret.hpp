#pragma once
// SecretString: the only type that holds a real provider key or a passphrase in memory.
// Its buffer is mlock()ed where the system allows it (so it is not swapped out) and wiped with
// OPENSSL_cleanse when freed or reassigned. It cannot be streamed or implicitly converted, so a key
// does not end up in a log line or error message by accident; `reveal()` is the one explicit door.
#include <cstddef>
#include <string>
#include <string_view>

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
  std::string_view reveal() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // A non-secret label for humans: "…" + the last 4 characters (or fewer for short keys).
  std::string fingerprint() const;

  friend bool operator==(const SecretString& a, const SecretString& b);

 private:
  void assign(std::string_view value);
  void release() noexcept;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool locked_ = false;
};

// Wipes a std::string that briefly held secret material (e.g. a line read from stdin).
void wipe(std::string& s) noexcept;

}  // namespace tokfence
