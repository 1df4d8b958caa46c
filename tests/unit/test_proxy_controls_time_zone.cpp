#include <catch2/catch.hpp>

#include <time.h>

#include <cstdlib>
#include <random>
#include <string>

#include "proxy/controls/time_zone.hpp"

using namespace tokfence::proxy;

namespace {

constexpr std::int64_t kHour = 3600;

std::int64_t utc(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
  return days_from_civil(y, m, d) * 86400 + hh * kHour + mm * 60 + ss;
}

// glibc's answer for `zone` at `t`, switching TZ. Only safe in a single-threaded test.
long glibc_offset(const std::string& zone, std::int64_t t) {
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", zone.c_str(), 1);
  tzset();
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  localtime_r(&tt, &tm);
  if (old)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  tzset();
  return tm.tm_gmtoff;
}

TimeZone zone(const char* name) {
  auto z = TimeZone::load(name);
  REQUIRE(z);
  return *z;
}

}  // namespace

TEST_CASE("proxy::TimeZone offsets agree with the C library across zones and centuries") {
  std::mt19937_64 rng(42);
  // From 1900 to 2200: covers the transition tables and the POSIX rule used past their end.
  std::uniform_int_distribution<std::int64_t> when(utc(1900, 1, 1), utc(2200, 1, 1));
  for (const char* name : {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                           "America/Santiago", "Pacific/Chatham", "Africa/Casablanca", "America/Sao_Paulo",
                           "Asia/Tehran", "America/St_Johns", "Pacific/Kiritimati"}) {
    TimeZone z = zone(name);
    for (int i = 0; i < 2000; ++i) {
      std::int64_t t = when(rng);
      INFO(name << " at " << t);
      REQUIRE(z.offset_at(t) == glibc_offset(name, t));
    }
  }
}

TEST_CASE("proxy::TimeZone offsets agree with the C library right at DST transitions") {
  for (const char* name : {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"}) {
    TimeZone z = zone(name);
    // Every hour through two years, including the instants where the offset changes.
    for (std::int64_t t = utc(2025, 1, 1); t < utc(2027, 1, 1); t += kHour / 2) {
      INFO(name << " at " << t);
      REQUIRE(z.offset_at(t) == glibc_offset(name, t));
      REQUIRE(z.offset_at(t - 1) == glibc_offset(name, t - 1));
    }
  }
}

TEST_CASE("proxy::TimeZone parses POSIX rules like the footer of a zone file") {
  auto rule = TimeZone::from_posix("CET-1CEST,M3.5.0,M10.5.0/3");
  REQUIRE(rule);
  TimeZone berlin = zone("Europe/Berlin");
  for (std::int64_t t = utc(2040, 1, 1); t < utc(2043, 1, 1); t += kHour) REQUIRE(rule->offset_at(t) == berlin.offset_at(t));
  auto est = TimeZone::from_posix("EST5EDT");
  REQUIRE(est);
  CHECK(est->offset_at(utc(2030, 1, 15)) == -5 * kHour);
  CHECK(est->offset_at(utc(2030, 7, 15)) == -4 * kHour);
  auto fixed = TimeZone::from_posix("<+0530>-5:30");
  REQUIRE(fixed);
  CHECK(fixed->offset_at(utc(2030, 7, 15)) == 5 * kHour + 30 * 60);
  CHECK_FALSE(TimeZone::from_posix("nonsense"));
  CHECK_FALSE(TimeZone::from_posix("CET-1CEST,M13.5.0,M10.5.0"));
}

TEST_CASE("proxy::TimeZone rejects unknown and path-like zone names with the fix") {
  for (const char* bad : {"Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "", "Europe/../UTC"}) {
    auto z = TimeZone::load(bad);
    REQUIRE_FALSE(z);
    CHECK(z.error().message.find("use an IANA name like Europe/Berlin") != std::string::npos);
  }
}

TEST_CASE("proxy::window_containing gives calendar days in UTC") {
  TimeZone z = TimeZone::utc();
  auto w = window_containing(z, BudgetPeriod::daily, utc(2025, 6, 1, 13, 5) * 1000);
  CHECK(w.start_ms == utc(2025, 6, 1) * 1000);
  CHECK(w.end_ms == utc(2025, 6, 2) * 1000);
  CHECK(iso8601(z, w.end_ms) == "2025-06-02T00:00:00+00:00");
  // The last millisecond of a day belongs to it; the next one starts the next day.
  CHECK(window_containing(z, BudgetPeriod::daily, utc(2025, 6, 2) * 1000 - 1).start_ms == utc(2025, 6, 1) * 1000);
  CHECK(window_containing(z, BudgetPeriod::daily, utc(2025, 6, 2) * 1000).start_ms == utc(2025, 6, 2) * 1000);
}

TEST_CASE("proxy::window_containing rolls months over, also across years and leap days") {
  TimeZone z = zone("Europe/Berlin");
  // 2025-01-31 23:59:59 Berlin (+01:00) is still January.
  auto jan = window_containing(z, BudgetPeriod::monthly, (utc(2025, 1, 31, 22, 59, 59)) * 1000);
  CHECK(iso8601(z, jan.start_ms) == "2025-01-01T00:00:00+01:00");
  CHECK(iso8601(z, jan.end_ms) == "2025-02-01T00:00:00+01:00");
  auto feb = window_containing(z, BudgetPeriod::monthly, jan.end_ms);
  CHECK(feb.start_ms == jan.end_ms);
  CHECK(iso8601(z, feb.end_ms) == "2025-03-01T00:00:00+01:00");
  CHECK(feb.end_ms - feb.start_ms == 28 * 86400 * 1000LL);
  auto leap = window_containing(z, BudgetPeriod::monthly, utc(2024, 2, 15) * 1000);
  CHECK(leap.end_ms - leap.start_ms == 29 * 86400 * 1000LL);
  // March has a DST change: 31 days minus one hour.
  auto mar = window_containing(z, BudgetPeriod::monthly, utc(2025, 3, 15) * 1000);
  CHECK(mar.end_ms - mar.start_ms == (31 * 86400 - kHour) * 1000);
  CHECK(iso8601(z, mar.end_ms) == "2025-04-01T00:00:00+02:00");
  auto dec = window_containing(z, BudgetPeriod::monthly, utc(2025, 12, 31, 22, 59, 59) * 1000);
  CHECK(iso8601(z, dec.end_ms) == "2026-01-01T00:00:00+01:00");
  auto jan26 = window_containing(z, BudgetPeriod::monthly, dec.end_ms);
  CHECK(jan26.start_ms == dec.end_ms);
}

TEST_CASE("proxy::window_containing handles days of 23 and 25 hours at DST changes") {
  TimeZone z = zone("Europe/Berlin");
  auto spring = window_containing(z, BudgetPeriod::daily, utc(2025, 3, 30, 12) * 1000);
  CHECK(spring.start_ms == utc(2025, 3, 29, 23) * 1000);
  CHECK(spring.end_ms == utc(2025, 3, 30, 22) * 1000);
  CHECK(iso8601(z, spring.end_ms) == "2025-03-31T00:00:00+02:00");
  auto autumn = window_containing(z, BudgetPeriod::daily, utc(2025, 10, 26, 12) * 1000);
  CHECK(autumn.end_ms - autumn.start_ms == 25 * kHour * 1000);
  // Both occurrences of 02:30 on the autumn day are in the same day.
  CHECK(autumn.contains(utc(2025, 10, 26, 0, 30) * 1000));
  CHECK(autumn.contains(utc(2025, 10, 26, 1, 30) * 1000));
}

TEST_CASE("proxy::window_containing starts a day whose midnight is skipped at the end of the gap") {
  // Chile: 2024-09-07 24:00 (-04) jumps to 2024-09-08 01:00 (-03).
  TimeZone z = zone("America/Santiago");
  auto day = window_containing(z, BudgetPeriod::daily, utc(2024, 9, 8, 12) * 1000);
  CHECK(day.start_ms == utc(2024, 9, 8, 4) * 1000);
  CHECK(iso8601(z, day.start_ms) == "2024-09-08T01:00:00-03:00");
  auto before = window_containing(z, BudgetPeriod::daily, utc(2024, 9, 8, 3, 59, 59) * 1000);
  CHECK(before.end_ms == day.start_ms);
  CHECK(before.end_ms - before.start_ms == 24 * kHour * 1000);
  CHECK(day.end_ms - day.start_ms == 23 * kHour * 1000);
}

TEST_CASE("proxy::window_containing starts a day whose midnight repeats at its first occurrence") {
  // Cuba: 2024-11-03 01:00 (-04) falls back to 00:00 (-05), so 00:00-01:00 happens twice.
  TimeZone z = zone("America/Havana");
  auto day = window_containing(z, BudgetPeriod::daily, utc(2024, 11, 3, 5, 30) * 1000);  // the second 00:30
  CHECK(day.start_ms == utc(2024, 11, 3, 4) * 1000);
  CHECK(day.contains(utc(2024, 11, 3, 4, 30) * 1000));  // the first 00:30
  CHECK(day.end_ms - day.start_ms == 25 * kHour * 1000);
}

TEST_CASE("proxy::window_containing always contains its instant") {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::int64_t> when(utc(1970, 1, 1) * 1000, utc(2100, 1, 1) * 1000);
  for (const char* name : {"Europe/Berlin", "America/Havana", "America/Santiago", "Australia/Lord_Howe",
                           "America/Sao_Paulo", "Pacific/Apia"}) {
    TimeZone z = zone(name);
    for (int i = 0; i < 3000; ++i) {
      std::int64_t t = when(rng);
      for (auto p : {BudgetPeriod::daily, BudgetPeriod::monthly}) {
        auto w = window_containing(z, p, t);
        INFO(name << " at " << t);
        REQUIRE(w.contains(t));
        REQUIRE(window_containing(z, p, w.end_ms).start_ms == w.end_ms);  // windows tile time
      }
    }
  }
}
