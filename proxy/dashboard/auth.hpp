#pragma once
// Who may use the web dashboard (docs/DASHBOARD.md): whoever holds the per-daemon session cookie.
//
// The daemon draws a 32-byte secret from the OS CSPRNG at start; it lives in memory only and dies
// with the daemon. The cookie value is HMAC-SHA256(secret, "session") and the CSRF token
// HMAC-SHA256(secret, "csrf" + cookie), both base64url. A browser gets the cookie only by
// redeeming a one-time login nonce, which only the control socket hands out (`tokfence dashboard
// --print-url`): the control socket already admits nobody but the daemon's own user in its own
// namespaces, so the dashboard adds no new way in. Nonces are random, single use, valid 120 s, and
// at most kMaxNonces are outstanding (a new one pushes the oldest out).
//
// Every comparison of a presented value runs in constant time. Nothing here is ever logged.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tokfence::proxy {

class DashboardAuth {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxNonces = 4;
  static constexpr auto kNonceLife = std::chrono::seconds(120);
  static constexpr std::string_view kCookieName = "tokfence_dashboard";

  // Draws the secret with getrandom(2); fails (the dashboard does not start) when it cannot.
  static Result<DashboardAuth> create();
  DashboardAuth(DashboardAuth&& other) noexcept;
  ~DashboardAuth();  // wipes the secret

  // A new one-time login nonce (43 base64url characters). Thread-safe (the control thread asks).
  Result<std::string> issue_nonce(Clock::time_point now = Clock::now());
  // True exactly once per nonce issued less than kNonceLife before `now`; it is spent either way.
  bool redeem(std::string_view nonce, Clock::time_point now = Clock::now());

  const std::string& cookie_value() const { return cookie_; }
  const std::string& csrf_token() const { return csrf_; }
  // Whether a Cookie header carries our cookie with the right value (another port on 127.0.0.1
  // may have set a cookie of the same name: any one of them matching is enough).
  bool cookie_ok(std::string_view cookie_header) const;
  bool csrf_ok(std::string_view presented) const;

 private:
  DashboardAuth() = default;
  struct Nonce {
    std::string value;
    Clock::time_point expires;
  };
  std::array<unsigned char, 32> secret_{};
  std::string cookie_, csrf_;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
  std::vector<Nonce> nonces_;
};

// Constant-time equality of two strings (lengths compared first; lengths are not secret here).
bool equal_secret(std::string_view a, std::string_view b);

}  // namespace tokfence::proxy
