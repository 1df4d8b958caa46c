#include <catch2/catch.hpp>

#include "proxy/controls/rate_limit.hpp"

using namespace tokfence::proxy;

TEST_CASE("proxy::RateLimiter admits exactly rpm requests per 60 seconds") {
  RateLimiter rl;
  const std::int64_t t0 = 1'700'000'000'000;
  for (int i = 0; i < 5; ++i) {
    REQUIRE_FALSE(rl.check("openai", 5, t0 + i * 1000));
    rl.record("openai", t0 + i * 1000);
  }
  auto wait = rl.check("openai", 5, t0 + 5000);
  REQUIRE(wait);
  CHECK(*wait == 55);  // the first request leaves the window at t0 + 60 s
  CHECK(rl.check("openai", 5, t0 + 59'999));
  CHECK(*rl.check("openai", 5, t0 + 59'999) == 1);
  // At t0 + 60 s the first one is out: exactly one slot frees.
  REQUIRE_FALSE(rl.check("openai", 5, t0 + 60'000));
  rl.record("openai", t0 + 60'000);
  REQUIRE(rl.check("openai", 5, t0 + 60'000));
  CHECK(rl.count("openai", t0 + 60'000) == 5);
  // Other keys are independent.
  CHECK_FALSE(rl.check("anthropic", 5, t0 + 5000));
}

TEST_CASE("proxy::RateLimiter never has more than rpm admissions in any 60-second interval") {
  RateLimiter rl;
  std::vector<std::int64_t> admitted;
  const int rpm = 7;
  for (std::int64_t t = 0; t < 600'000; t += 1'300) {
    if (!rl.check("p", rpm, t)) {
      rl.record("p", t);
      admitted.push_back(t);
    }
  }
  for (std::size_t i = 0; i < admitted.size(); ++i) {
    std::size_t in_window = 0;
    for (std::size_t j = i; j < admitted.size() && admitted[j] < admitted[i] + 60'000; ++j) ++in_window;
    REQUIRE(in_window <= static_cast<std::size_t>(rpm));
  }
  // And it keeps the rate up: 10 minutes hold 10 full windows.
  CHECK(admitted.size() >= static_cast<std::size_t>(rpm * 10));
}

TEST_CASE("proxy::RateLimiter honours a lowered limit") {
  RateLimiter rl;
  for (int i = 0; i < 10; ++i) rl.record("p", i);
  auto wait = rl.check("p", 3, 100);
  REQUIRE(wait);
  // 8 of the 10 must leave before a 3rd slot frees: the one recorded at 7 ms.
  CHECK(*wait == 60);
  CHECK_FALSE(rl.check("p", 3, 60'008));
}
