#include "core/locked_buffer.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <cstdlib>
#include <new>

namespace tokfence {

LockedBuffer::LockedBuffer(std::size_t size) {
  capacity_ = size == 0 ? 1 : size;
  data_ = static_cast<unsigned char*>(std::calloc(capacity_, 1));
  if (!data_) throw std::bad_alloc();
  // mlock can fail under RLIMIT_MEMLOCK: the buffer still works, it is just swappable.
  locked_ = ::mlock(data_, capacity_) == 0;
  size_ = size;
}

LockedBuffer::LockedBuffer(LockedBuffer&& other) noexcept
    : data_(other.data_), size_(other.size_), capacity_(other.capacity_), locked_(other.locked_) {
  other.data_ = nullptr;
  other.size_ = other.capacity_ = 0;
  other.locked_ = false;
}

LockedBuffer& LockedBuffer::operator=(LockedBuffer&& other) noexcept {
  if (this != &other) {
    reset();
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

LockedBuffer::~LockedBuffer() { reset(); }

void LockedBuffer::truncate(std::size_t size) noexcept {
  if (size >= size_) return;
  OPENSSL_cleanse(data_ + size, size_ - size);
  size_ = size;
}

void LockedBuffer::reset() noexcept {
  if (!data_) return;
  OPENSSL_cleanse(data_, capacity_);
  if (locked_) ::munlock(data_, capacity_);
  std::free(data_);
  data_ = nullptr;
  size_ = capacity_ = 0;
  locked_ = false;
}

}  // namespace tokfence
