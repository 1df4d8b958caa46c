#include "proxy/controls/rate_limit.hpp"

namespace tokfence::proxy {

void RateLimiter::expire(std::deque<std::int64_t>& times, std::int64_t now_ms) {
  while (!times.empty() && times.front() <= now_ms - kWindowMs) times.pop_front();
  // A clock set back leaves entries "in the future"; they still count until they age out, which
  // errs on the side of refusing.
}

std::optional<int> RateLimiter::check(const std::string& key, int rpm, std::int64_t now_ms) {
  auto it = log_.find(key);
  if (it == log_.end()) return rpm > 0 ? std::nullopt : std::optional<int>(60);
  auto& times = it->second;
  expire(times, now_ms);
  if (static_cast<std::int64_t>(times.size()) < rpm) return std::nullopt;
  // The slot frees when the request that is rpm-th from the end leaves the window.
  const std::int64_t frees_at = times[times.size() - static_cast<std::size_t>(rpm)] + kWindowMs;
  const std::int64_t wait_ms = frees_at - now_ms;
  return static_cast<int>(wait_ms <= 0 ? 1 : (wait_ms + 999) / 1000);
}

void RateLimiter::record(const std::string& key, std::int64_t now_ms) {
  auto& times = log_[key];
  expire(times, now_ms);
  times.push_back(now_ms);
  // Bounded: rpm <= 100000, and entries older than the window were just dropped.
}

std::int64_t RateLimiter::count(const std::string& key, std::int64_t now_ms) {
  auto it = log_.find(key);
  if (it == log_.end()) return 0;
  expire(it->second, now_ms);
  return static_cast<std::int64_t>(it->second.size());
}

}  // namespace tokfence::proxy
