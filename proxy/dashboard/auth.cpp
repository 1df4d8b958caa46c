#include "proxy/dashboard/auth.hpp"

#include <sys/random.h>

#include <cerrno>
#include <memory>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace tokfence::proxy {

namespace {

// getrandom(2) only: no fallback to a weaker source for a value that guards the kill switch.
bool fill_random(unsigned char* out, std::size_t size) {
  std::size_t got = 0;
  for (int tries = 0; got < size && tries < 100; ++tries) {
    ssize_t n = ::getrandom(out + got, size - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
    else if (n < 0 && errno != EINTR) return false;
  }
  return got == size;
}

std::string base64url(const unsigned char* data, std::size_t size) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::string hmac_b64(const std::array<unsigned char, 32>& key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ::HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
         message.size(), mac, &len);
  return base64url(mac, len);
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool equal_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<DashboardAuth> DashboardAuth::create() {
  DashboardAuth auth;
  if (!fill_random(auth.secret_.data(), auth.secret_.size()))
    return fail("dashboard: cannot draw a secret from getrandom: the dashboard stays off");
  auth.cookie_ = hmac_b64(auth.secret_, "session");
  auth.csrf_ = hmac_b64(auth.secret_, "csrf" + auth.cookie_);
  return auth;
}

DashboardAuth::DashboardAuth(DashboardAuth&& other) noexcept
    : secret_(other.secret_), cookie_(std::move(other.cookie_)), csrf_(std::move(other.csrf_)),
      mutex_(std::move(other.mutex_)), nonces_(std::move(other.nonces_)) {
  OPENSSL_cleanse(other.secret_.data(), other.secret_.size());
}

DashboardAuth::~DashboardAuth() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
  if (!cookie_.empty()) OPENSSL_cleanse(cookie_.data(), cookie_.size());
  if (!csrf_.empty()) OPENSSL_cleanse(csrf_.data(), csrf_.size());
}

Result<std::string> DashboardAuth::issue_nonce(Clock::time_point now) {
  std::array<unsigned char, 32> bytes{};
  if (!fill_random(bytes.data(), bytes.size())) return fail("dashboard: cannot draw a login nonce from getrandom");
  std::string nonce = base64url(bytes.data(), bytes.size());
  std::lock_guard lock(*mutex_);
  std::erase_if(nonces_, [&](const Nonce& n) { return n.expires <= now; });
  if (nonces_.size() >= kMaxNonces) nonces_.erase(nonces_.begin());  // the oldest
  nonces_.push_back({nonce, now + kNonceLife});
  return nonce;
}

bool DashboardAuth::redeem(std::string_view nonce, Clock::time_point now) {
  std::lock_guard lock(*mutex_);
  std::erase_if(nonces_, [&](const Nonce& n) { return n.expires <= now; });
  bool found = false;
  // Every entry is compared (no early exit), then the match is spent.
  for (auto& n : nonces_)
    if (equal_secret(n.value, nonce)) {
      found = true;
      n.expires = Clock::time_point::min();
    }
  std::erase_if(nonces_, [](const Nonce& n) { return n.expires == Clock::time_point::min(); });
  return found;
}

bool DashboardAuth::cookie_ok(std::string_view header) const {
  bool ok = false;
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    std::string_view pair = trim_spaces(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || trim_spaces(pair.substr(0, eq)) != kCookieName) continue;
    ok |= equal_secret(trim_spaces(pair.substr(eq + 1)), cookie_);
  }
  return ok;
}

bool DashboardAuth::csrf_ok(std::string_view presented) const { return equal_secret(trim_spaces(presented), csrf_); }

}  // namespace tokfence::proxy
