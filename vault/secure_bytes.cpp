#include "vault/secure_bytes.hpp"

namespace tokfence::vault {

SecureBytes::SecureBytes(std::size_t size) : buffer_(size) {}
SecureBytes::SecureBytes(SecureBytes&& other) noexcept = default;
SecureBytes& SecureBytes::operator=(SecureBytes&& other) noexcept = default;
SecureBytes::~SecureBytes() = default;

void SecureBytes::truncate(std::size_t size) { buffer_.truncate(size); }

}  // namespace tokfence::vault
