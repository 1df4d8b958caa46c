#include "core/time.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace tokfence {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {

// Floor division, so a time before the epoch still names the second it falls in.
std::time_t seconds_of(std::int64_t unix_ms) {
  std::int64_t s = unix_ms / 1000;
  if (unix_ms % 1000 < 0) --s;
  return static_cast<std::time_t>(s);
}

std::string format(const std::tm& tm, std::int64_t unix_ms, const char* format) {
  // Expand our "%f" (milliseconds) first; everything else is strftime's.
  std::string fmt;
  for (const char* p = format; *p; ++p) {
    if (p[0] == '%' && p[1] == 'f') {
      char ms[4];
      std::snprintf(ms, sizeof ms, "%03d", static_cast<int>(((unix_ms % 1000) + 1000) % 1000));
      fmt += ms;
      ++p;
    } else if (p[0] == '%' && p[1] == '%') {
      fmt += "%%";
      ++p;
    } else {
      fmt += *p;
    }
  }
  char buf[128];
  std::size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
  return std::string(buf, n);
}

}  // namespace

std::string format_utc(std::int64_t unix_ms, const char* fmt) {
  std::time_t t = seconds_of(unix_ms);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return format(tm, unix_ms, fmt);
}

std::string format_local(std::int64_t unix_ms, const char* fmt) {
  std::time_t t = seconds_of(unix_ms);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  return format(tm, unix_ms, fmt);
}

std::string utc_rfc3339(std::int64_t unix_ms) { return format_utc(unix_ms, "%Y-%m-%dT%H:%M:%SZ"); }

std::int64_t start_of_local_day(std::int64_t unix_ms) {
  std::time_t t = seconds_of(unix_ms);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
  tm.tm_isdst = -1;
  return static_cast<std::int64_t>(std::mktime(&tm)) * 1000;
}

}  // namespace tokfence
