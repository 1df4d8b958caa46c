#pragma once
// Time zones and calendar windows for budgets.
//
// g++ 12's libstdc++ has the C++20 calendar types but no tzdb (no std::chrono::zoned_time), and
// switching the TZ environment variable around localtime_r is not thread-safe in a daemon whose
// other threads may call getenv/localtime at any moment. So this reads the system's TZif files
// (RFC 8536, /usr/share/zoneinfo or $TZDIR) itself: the transition table, then the POSIX TZ rule in
// the footer for instants past the table (slim files, or after 2037 in fat ones). A TimeZone is an
// immutable value: offset_at() is pure and safe from any thread.
//
// Budget windows are calendar days and months of that zone: a window starts at the first instant
// whose local date is the window's first day. Where local midnight does not exist (a DST gap at
// 00:00) the window starts at the end of the gap; where it exists twice, at its first occurrence.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tokfence::proxy {

enum class BudgetPeriod { daily, monthly };
std::string_view to_string(BudgetPeriod period);  // "daily" | "monthly"
std::optional<BudgetPeriod> parse_budget_period(std::string_view text);

class TimeZone {
 public:
  // An IANA name ("Europe/Berlin", "UTC") looked up below $TZDIR or /usr/share/zoneinfo.
  // Errors name the zone and the fix.
  static Result<TimeZone> load(std::string_view iana_name);
  // The machine's zone, as the C library would pick it: $TZ (":Name", a file path, a zone name or a
  // POSIX rule), else /etc/localtime, else UTC.
  static TimeZone local();
  // A POSIX TZ rule such as "CET-1CEST,M3.5.0,M10.5.0/3" or "EST5EDT".
  static Result<TimeZone> from_posix(std::string_view rule);
  static TimeZone utc();
  // Parses the bytes of a TZif file; `name` is what name() returns.
  static Result<TimeZone> from_tzif(std::string name, std::string_view data);

  // Seconds east of UTC in effect at unix time `t` (seconds).
  int offset_at(std::int64_t t) const;
  // "Europe/Berlin", "UTC", or the rule text.
  const std::string& name() const { return name_; }

  // The earliest unix time whose local wall-clock time is at or after `local_seconds` (seconds
  // since 1970-01-01T00:00 local). See the header comment for gaps and repeats.
  std::int64_t first_instant_at_or_after(std::int64_t local_seconds) const;

  struct Rule;  // the parsed POSIX TZ footer (defined in the .cpp)

 private:
  struct Segment {
    std::int64_t start;  // unix seconds
    int offset;
  };
  // Offsets in effect from `from` until `to`: the first segment starts at `from`.
  std::vector<Segment> segments(std::int64_t from, std::int64_t to) const;

  std::string name_;
  std::vector<std::int64_t> times_;  // transition instants, ascending
  std::vector<int> offsets_;         // offsets_[i] applies from times_[i]
  int initial_offset_ = 0;           // before the first transition
  std::shared_ptr<const Rule> rule_;  // for instants at or after the last transition (or all)
};

// Half-open [start_ms, end_ms) in unix milliseconds.
struct TimeWindow {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
  bool contains(std::int64_t t_ms) const { return t_ms >= start_ms && t_ms < end_ms; }
};

// The calendar day or month of `zone` that contains `t_ms`.
TimeWindow window_containing(const TimeZone& zone, BudgetPeriod period, std::int64_t t_ms);

// ISO 8601 with the zone's offset at that instant: "2025-06-02T00:00:00+02:00".
std::string iso8601(const TimeZone& zone, std::int64_t t_ms);

// Proleptic Gregorian helpers (days since 1970-01-01).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d);
struct CivilDate {
  std::int64_t year;
  unsigned month, day;
};
CivilDate civil_from_days(std::int64_t days);

}  // namespace tokfence::proxy
