#pragma once
// Requests-per-minute limits as a sliding log: a request is admitted when fewer than `rpm` requests
// were admitted in the 60 seconds before it (the interval (now - 60 s, now]). So any 60-second
// interval holds at most `rpm` admitted requests, and a burst of exactly `rpm` passes at once.
// Refused requests are not recorded. Memory is one timestamp per admitted request still inside the
// window, so at most `rpm` (<= 100000) per key. Not thread-safe: the owner holds its own lock.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

namespace tokfence::proxy {

class RateLimiter {
 public:
  static constexpr std::int64_t kWindowMs = 60'000;

  // nullopt when a request for `key` may be admitted at `now_ms` under `rpm`; otherwise the whole
  // seconds (>= 1) until a slot frees up. Does not record anything.
  std::optional<int> check(const std::string& key, int rpm, std::int64_t now_ms);
  // Records an admitted request.
  void record(const std::string& key, std::int64_t now_ms);
  // Admitted requests in the window ending at `now_ms`.
  std::int64_t count(const std::string& key, std::int64_t now_ms);
  void forget(const std::string& key) { log_.erase(key); }

 private:
  void expire(std::deque<std::int64_t>& times, std::int64_t now_ms);
  std::map<std::string, std::deque<std::int64_t>> log_;
};

}  // namespace tokfence::proxy
