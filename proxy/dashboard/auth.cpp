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
  return auth;
}

DashboardAuth::DashboardAuth(DashboardAuth&& other) noexcept
    : secret_(other.secret_), mutex_(std::move(other.mutex_)), nonces_(std::move(other.nonces_)),
      sessions_(std::move(other.sessions_)) {
  OPENSSL_cleanse(other.secret_.data(), other.secret_.size());
}

DashboardAuth::~DashboardAuth() {
  OPENSSL_cleanse(secret_.data(), secret_.size());
  for (auto* list : {&nonces_, &sessions_})
    for (auto& e : *list)
      if (!e.value.empty()) OPENSSL_cleanse(e.value.data(), e.value.size());
}

Result<std::string> DashboardAuth::issue_nonce(Clock::time_point now) {
  std::array<unsigned char, 32> bytes{};
  if (!fill_random(bytes.data(), bytes.size())) return fail("dashboard: cannot draw a login nonce from getrandom");
  std::string nonce = base64url(bytes.data(), bytes.size());
  std::lock_guard lock(*mutex_);
  std::erase_if(nonces_, [&](const Entry& n) { return n.expires <= now; });
  if (nonces_.size() >= kMaxNonces) nonces_.erase(nonces_.begin());  // the oldest
  nonces_.push_back({nonce, now + kNonceLife});
  return nonce;
}

std::optional<std::string> DashboardAuth::redeem(std::string_view nonce, Clock::time_point now, std::string* evicted) {
  std::array<unsigned char, 32> bytes{};
  // Drawn first (outside the lock); a failure refuses the login like a bad nonce.
  const bool drawn = fill_random(bytes.data(), bytes.size());
  std::lock_guard lock(*mutex_);
  std::erase_if(nonces_, [&](const Entry& n) { return n.expires <= now; });
  bool found = false;
  // Every entry is compared (no early exit), then the match is spent.
  for (auto& n : nonces_)
    if (equal_secret(n.value, nonce)) {
      found = true;
      n.expires = Clock::time_point::min();
    }
  std::erase_if(nonces_, [](const Entry& n) { return n.expires == Clock::time_point::min(); });
  if (!found || !drawn) return std::nullopt;
  std::string cookie = base64url(bytes.data(), bytes.size());
  OPENSSL_cleanse(bytes.data(), bytes.size());
  // Dropped sessions are wiped like a logged-out one; the oldest login, pushed out by this one, is
  // named to the caller so its live event streams end too.
  std::erase_if(sessions_, [&](Entry& e) {
    if (e.expires > now) return false;
    OPENSSL_cleanse(e.value.data(), e.value.size());
    return true;
  });
  if (sessions_.size() >= kMaxSessions) {
    if (evicted) *evicted = sessions_.front().value;
    OPENSSL_cleanse(sessions_.front().value.data(), sessions_.front().value.size());
    sessions_.erase(sessions_.begin());
  }
  sessions_.push_back({cookie, now + kSessionLife});
  return cookie;
}

std::optional<std::string> DashboardAuth::session(std::string_view header, Clock::time_point now) const {
  std::optional<std::string> live;
  std::lock_guard lock(*mutex_);
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    std::string_view pair = trim_spaces(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || trim_spaces(pair.substr(0, eq)) != kCookieName) continue;
    const std::string_view value = trim_spaces(pair.substr(eq + 1));
    // Every session is compared (no early exit).
    for (const auto& e : sessions_)
      if (equal_secret(e.value, value) && now < e.expires && !live) live = e.value;
  }
  return live;
}

std::optional<DashboardAuth::Clock::time_point> DashboardAuth::expiry(std::string_view session) const {
  std::lock_guard lock(*mutex_);
  std::optional<Clock::time_point> when;
  for (const auto& e : sessions_)
    if (equal_secret(e.value, session)) when = e.expires;
  return when;
}

bool DashboardAuth::end_session(std::string_view session) {
  std::lock_guard lock(*mutex_);
  const auto before = sessions_.size();
  std::erase_if(sessions_, [&](Entry& e) {
    if (!equal_secret(e.value, session)) return false;
    OPENSSL_cleanse(e.value.data(), e.value.size());
    return true;
  });
  return sessions_.size() != before;
}

std::string DashboardAuth::csrf_token(std::string_view session) const { return hmac_b64(secret_, "csrf" + std::string(session)); }

bool DashboardAuth::csrf_ok(std::string_view session, std::string_view presented) const {
  return !session.empty() && equal_secret(trim_spaces(presented), csrf_token(session));
}

}  // namespace tokfence::proxy
