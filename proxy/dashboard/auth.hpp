#pragma once
// Who may use the web dashboard (docs/DASHBOARD.md): whoever holds a live session's cookie.
//
// The daemon draws a 32-byte secret from the OS CSPRNG at start; it lives in memory only and dies
// with the daemon. A browser gets a session only by redeeming a one-time login nonce, which only
// the control socket hands out (`tokfence dashboard --print-url`): the control socket already
// admits nobody but the daemon's own user in its own namespaces, so the dashboard adds no new way
// in. Nonces are random, single use, valid 120 s, and at most kMaxNonces are outstanding (a new
// one pushes the oldest out).
//
// A session is a random 32-byte value (the cookie, base64url) that the daemon keeps with its
// expiry: kSessionLife after the login, enforced here whatever the browser does with the cookie's
// Max-Age; ended at once by logout (end_session). At most kMaxSessions live at a time (a new login
// pushes the oldest out). A session's CSRF token is HMAC-SHA256(secret, "csrf" + cookie),
// base64url: nothing to store, and useless with another session's cookie.
//
// Every comparison of a presented value runs in constant time. Nothing here is ever logged.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
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
  static constexpr std::size_t kMaxSessions = 8;
  static constexpr auto kSessionLife = std::chrono::hours(12);
  static constexpr std::string_view kCookieName = "tokfence_dashboard";

  // Draws the secret with getrandom(2); fails (the dashboard does not start) when it cannot.
  static Result<DashboardAuth> create();
  DashboardAuth(DashboardAuth&& other) noexcept;
  ~DashboardAuth();  // wipes the secret and the sessions

  // A new one-time login nonce (43 base64url characters). Thread-safe (the control thread asks).
  Result<std::string> issue_nonce(Clock::time_point now = Clock::now());
  // Spends `nonce` (either way) and, when it was issued less than kNonceLife before `now`, starts a
  // session: its cookie value (43 base64url characters), or nullopt. `evicted` (optional) gets the
  // oldest session when this login pushed it out (kMaxSessions), so its event streams can end.
  std::optional<std::string> redeem(std::string_view nonce, Clock::time_point now = Clock::now(),
                                    std::string* evicted = nullptr);

  // The live session a Cookie header carries (another port on 127.0.0.1 may have set a cookie of
  // the same name: any one of them naming a live session is enough), or nullopt. A session is
  // live from its login until kSessionLife later or its logout.
  std::optional<std::string> session(std::string_view cookie_header, Clock::time_point now = Clock::now()) const;
  // When `session` expires, or nullopt when it is not live.
  std::optional<Clock::time_point> expiry(std::string_view session) const;
  // Ends `session` (logout); false when it was not live.
  bool end_session(std::string_view session);
  std::string csrf_token(std::string_view session) const;
  bool csrf_ok(std::string_view session, std::string_view presented) const;

 private:
  DashboardAuth() = default;
  struct Entry {
    std::string value;
    Clock::time_point expires;
  };
  std::array<unsigned char, 32> secret_{};
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
  std::vector<Entry> nonces_;
  std::vector<Entry> sessions_;
};

// Constant-time equality of two strings (lengths compared first; lengths are not secret here).
bool equal_secret(std::string_view a, std::string_view b);

}  // namespace tokfence::proxy
