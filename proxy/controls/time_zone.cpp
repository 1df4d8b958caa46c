#include "proxy/controls/time_zone.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace tokfence::proxy {

namespace {

constexpr std::int64_t kDay = 86400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool is_leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

std::int64_t year_of(std::int64_t unix_seconds) { return civil_from_days(floor_div(unix_seconds, kDay)).year; }

// Reads at most `limit` bytes of a regular file; nullopt if it is not one or cannot be read.
std::optional<std::string> read_small_file(const std::filesystem::path& path, std::size_t limit = 4 << 20) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data;
  data.resize(limit + 1);
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  auto n = static_cast<std::size_t>(in.gcount());
  if (n > limit) return std::nullopt;
  data.resize(n);
  return data;
}

std::filesystem::path zoneinfo_dir() {
  const char* dir = std::getenv("TZDIR");
  return dir && *dir ? std::filesystem::path(dir) : std::filesystem::path("/usr/share/zoneinfo");
}

bool valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/') return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || part.front() == '.' || part.front() == '-') return false;
    for (char c : part)
      if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
            c == '+' || c == '-' || c == '.'))
        return false;
    start = end + 1;
  }
  return true;
}

// --- POSIX TZ rule text ------------------------------------------------------------------------

class RuleParser {
 public:
  explicit RuleParser(std::string_view text) : s_(text) {}
  bool done() const { return i_ >= s_.size(); }
  char peek() const { return done() ? '\0' : s_[i_]; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++i_;
    return true;
  }
  bool name() {
    if (eat('<')) {
      std::size_t close = s_.find('>', i_);
      if (close == std::string_view::npos || close - i_ < 3) return false;
      i_ = close + 1;
      return true;
    }
    std::size_t start = i_;
    while (!done() && ((peek() >= 'A' && peek() <= 'Z') || (peek() >= 'a' && peek() <= 'z'))) ++i_;
    return i_ - start >= 3;
  }
  bool number(int& out, int max_digits = 3) {
    int n = 0, digits = 0;
    while (!done() && peek() >= '0' && peek() <= '9' && digits < max_digits) {
      n = n * 10 + (s_[i_++] - '0');
      ++digits;
    }
    out = n;
    return digits > 0;
  }
  // [+-]hh[:mm[:ss]] in seconds; hours up to 167 (RFC 8536 extension).
  bool hms(int& out) {
    int sign = 1;
    if (eat('-'))
      sign = -1;
    else
      eat('+');
    int h = 0, m = 0, sec = 0;
    if (!number(h) || h > 167) return false;
    if (eat(':')) {
      if (!number(m, 2) || m > 59) return false;
      if (eat(':') && (!number(sec, 2) || sec > 59)) return false;
    }
    out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool at_offset_start() const { return peek() == '+' || peek() == '-' || (peek() >= '0' && peek() <= '9'); }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

struct TimeZone::Rule {
  struct Date {
    char kind = 'M';  // 'J' (1..365, no Feb 29), 'N' (0..365), 'M' (month.week.weekday)
    int a = 0, b = 0, c = 0;
  };
  int std_offset = 0;  // east of UTC
  bool has_dst = false;
  int dst_offset = 0;
  Date start, end;
  int start_time = 7200, end_time = 7200;  // local wall time of the change

  static std::optional<Rule> parse(std::string_view text) {
    RuleParser p(text);
    Rule r;
    int west = 0;
    if (!p.name() || !p.hms(west)) return std::nullopt;
    r.std_offset = -west;
    if (p.done()) return r;
    if (!p.name()) return std::nullopt;
    r.has_dst = true;
    r.dst_offset = r.std_offset + 3600;
    if (p.at_offset_start()) {
      if (!p.hms(west)) return std::nullopt;
      r.dst_offset = -west;
    }
    if (p.done()) {  // no rule given: the US rule, as glibc assumes
      r.start = {'M', 3, 2, 0};
      r.end = {'M', 11, 1, 0};
      return r;
    }
    if (!p.eat(',') || !date(p, r.start, r.start_time) || !p.eat(',') || !date(p, r.end, r.end_time) || !p.done())
      return std::nullopt;
    return r;
  }

  static bool date(RuleParser& p, Date& d, int& time) {
    if (p.eat('J')) {
      d.kind = 'J';
      if (!p.number(d.a) || d.a < 1 || d.a > 365) return false;
    } else if (p.eat('M')) {
      d.kind = 'M';
      if (!p.number(d.a, 2) || d.a < 1 || d.a > 12 || !p.eat('.') || !p.number(d.b, 1) || d.b < 1 || d.b > 5 ||
          !p.eat('.') || !p.number(d.c, 1) || d.c > 6)
        return false;
    } else {
      d.kind = 'N';
      if (!p.number(d.a) || d.a > 365) return false;
    }
    if (p.eat('/') && !p.hms(time)) return false;
    return true;
  }

  static std::int64_t day_of(std::int64_t year, const Date& d) {
    std::int64_t jan1 = days_from_civil(year, 1, 1);
    switch (d.kind) {
      case 'J': return jan1 + d.a - 1 + (is_leap(year) && d.a >= 60 ? 1 : 0);
      case 'N': return jan1 + d.a;
      default: {
        std::int64_t first = days_from_civil(year, static_cast<unsigned>(d.a), 1);
        int wday_first = static_cast<int>(((first % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
        std::int64_t day = first + (d.c - wday_first + 7) % 7 + 7 * (d.b - 1);
        while (day >= first + days_in_month(year, static_cast<unsigned>(d.a))) day -= 7;
        return day;
      }
    }
  }

  // DST start and end instants of `year` as (instant, offset from then on).
  void transitions_of(std::int64_t year, std::vector<std::pair<std::int64_t, int>>& out) const {
    out.emplace_back(day_of(year, start) * kDay + start_time - std_offset, dst_offset);
    out.emplace_back(day_of(year, end) * kDay + end_time - dst_offset, std_offset);
  }

  std::vector<std::pair<std::int64_t, int>> transitions(std::int64_t from_year, std::int64_t to_year) const {
    std::vector<std::pair<std::int64_t, int>> out;
    if (!has_dst) return out;
    for (std::int64_t y = from_year; y <= to_year; ++y) transitions_of(y, out);
    std::sort(out.begin(), out.end());
    return out;
  }

  int offset_at(std::int64_t t) const {
    if (!has_dst) return std_offset;
    std::int64_t y = year_of(t + std_offset);
    auto all = transitions(y - 1, y + 1);
    int offset = std_offset;
    for (const auto& [when, off] : all) {
      if (when > t) break;
      offset = off;
    }
    return offset;
  }
};

std::string_view to_string(BudgetPeriod period) { return period == BudgetPeriod::daily ? "daily" : "monthly"; }

std::optional<BudgetPeriod> parse_budget_period(std::string_view text) {
  if (text == "daily") return BudgetPeriod::daily;
  if (text == "monthly") return BudgetPeriod::monthly;
  return std::nullopt;
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

CivilDate civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const auto d = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const auto m = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (m <= 2), m, d};
}

TimeZone TimeZone::utc() {
  TimeZone z;
  z.name_ = "UTC";
  return z;
}

Result<TimeZone> TimeZone::from_posix(std::string_view rule) {
  auto parsed = Rule::parse(rule);
  if (!parsed) return fail("time zone rule '" + std::string(rule.substr(0, 64)) + "': not a POSIX TZ rule");
  TimeZone z;
  z.name_ = std::string(rule);
  z.initial_offset_ = parsed->std_offset;
  z.rule_ = std::make_shared<const Rule>(*parsed);
  return z;
}

Result<TimeZone> TimeZone::from_tzif(std::string name, std::string_view data) {
  auto bad = [&](const char* what) { return fail("time zone '" + name + "': not a valid TZif file: " + what); };
  auto be = [&](std::size_t pos, std::size_t width) -> std::int64_t {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(data[pos + i]);
    if (width == 4) return static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    return static_cast<std::int64_t>(v);
  };
  struct Counts {
    std::size_t isut, isstd, leap, time, type, chars;
  };
  auto header = [&](std::size_t pos) -> std::optional<Counts> {
    if (data.size() < pos + 44 || data.substr(pos, 4) != "TZif") return std::nullopt;
    auto c = [&](int i) { return static_cast<std::size_t>(static_cast<std::uint32_t>(be(pos + 20 + 4 * i, 4))); };
    return Counts{c(0), c(1), c(2), c(3), c(4), c(5)};
  };
  auto counts = header(0);
  if (!counts) return bad("missing header");
  const char version = data[4];
  std::size_t pos = 44;
  std::size_t time_size = 4;
  if (version >= '2') {
    const Counts& c = *counts;
    pos += c.time * 5 + c.type * 6 + c.chars + c.leap * 8 + c.isstd + c.isut;
    counts = header(pos);
    if (!counts) return bad("missing second header");
    pos += 44;
    time_size = 8;
  }
  const Counts c = *counts;
  if (c.type == 0 || c.type > 256 || c.time > 100000 || c.leap > 10000 || c.chars > 100000) return bad("bad counts");
  const std::size_t body = c.time * (time_size + 1) + c.type * 6 + c.chars + c.leap * (time_size + 4) + c.isstd + c.isut;
  if (data.size() < pos + body) return bad("truncated");

  std::vector<int> type_offsets(c.type);
  const std::size_t types_at = pos + c.time * (time_size + 1);
  for (std::size_t i = 0; i < c.type; ++i) type_offsets[i] = static_cast<int>(be(types_at + 6 * i, 4));

  TimeZone z;
  z.name_ = std::move(name);
  z.initial_offset_ = type_offsets[0];
  for (std::size_t i = 0; i < c.time; ++i) {
    std::int64_t when = be(pos + i * time_size, time_size);
    auto index = static_cast<unsigned char>(data[pos + c.time * time_size + i]);
    if (index >= c.type) return bad("bad type index");
    if (!z.times_.empty() && when <= z.times_.back()) return bad("transitions out of order");
    z.times_.push_back(when);
    z.offsets_.push_back(type_offsets[index]);
  }
  pos += body;
  if (version >= '2' && pos < data.size() && data[pos] == '\n') {
    std::size_t end = data.find('\n', pos + 1);
    if (end != std::string_view::npos && end > pos + 1) {
      if (auto rule = Rule::parse(data.substr(pos + 1, end - pos - 1))) z.rule_ = std::make_shared<const Rule>(*rule);
    }
  }
  return z;
}

Result<TimeZone> TimeZone::load(std::string_view iana_name) {
  const std::filesystem::path dir = zoneinfo_dir();
  std::string shown(iana_name.substr(0, 64));
  for (char& ch : shown)
    if (ch < 0x20 || ch >= 0x7f) ch = '?';
  const std::string fix = ": use an IANA name like Europe/Berlin or UTC (the names are the files under " +
                          dir.string() + ")";
  if (!valid_zone_name(iana_name)) return fail("time zone '" + shown + "': not a valid zone name" + fix);
  auto data = read_small_file(dir / std::string(iana_name));
  if (!data) return fail("time zone '" + shown + "': no such zone" + fix);
  auto zone = from_tzif(std::string(iana_name), *data);
  if (!zone) return fail("time zone '" + shown + "': " + zone.error().message + fix);
  return zone;
}

TimeZone TimeZone::local() {
  if (const char* tz = std::getenv("TZ")) {
    std::string_view s(tz);
    if (s.empty()) return utc();
    if (s.front() == ':') s.remove_prefix(1);
    if (!s.empty() && s.front() == '/') {
      if (auto data = read_small_file(std::string(s)))
        if (auto zone = from_tzif(std::string(s), *data)) return *zone;
    } else if (auto zone = load(s)) {
      return *zone;
    }
    if (auto zone = from_posix(s)) return *zone;
    return utc();
  }
  const std::filesystem::path localtime = "/etc/localtime";
  auto data = read_small_file(localtime);
  if (!data) return utc();
  std::string name = "localtime";
  std::error_code ec;
  auto target = std::filesystem::read_symlink(localtime, ec).string();
  if (auto at = target.find("zoneinfo/"); !ec && at != std::string::npos) name = target.substr(at + 9);
  auto zone = from_tzif(name, *data);
  return zone ? *zone : utc();
}

int TimeZone::offset_at(std::int64_t t) const {
  if (times_.empty() || t >= times_.back()) {
    if (rule_) return rule_->offset_at(t);
    return times_.empty() ? initial_offset_ : offsets_.back();
  }
  if (t < times_.front()) return initial_offset_;
  auto it = std::upper_bound(times_.begin(), times_.end(), t);
  return offsets_[static_cast<std::size_t>(std::distance(times_.begin(), it)) - 1];
}

std::vector<TimeZone::Segment> TimeZone::segments(std::int64_t from, std::int64_t to) const {
  std::vector<Segment> out{{from, offset_at(from)}};
  for (auto it = std::upper_bound(times_.begin(), times_.end(), from); it != times_.end() && *it < to; ++it)
    out.push_back({*it, offsets_[static_cast<std::size_t>(std::distance(times_.begin(), it))]});
  if (rule_) {
    std::int64_t rule_from = times_.empty() ? from : std::max(from, times_.back());
    if (rule_from < to) {
      for (const auto& [when, off] : rule_->transitions(year_of(rule_from) - 1, year_of(to) + 1))
        if (when > rule_from && when < to) out.push_back({when, off});
    }
  }
  return out;
}

std::int64_t TimeZone::first_instant_at_or_after(std::int64_t local_seconds) const {
  // UTC offsets stay within +-26 h, so the answer lies within two days of the local time.
  const auto segs = segments(local_seconds - 2 * kDay, local_seconds + 2 * kDay);
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const std::int64_t seg_end = i + 1 < segs.size() ? segs[i + 1].start : INT64_MAX;
    const std::int64_t u = std::max(segs[i].start, local_seconds - segs[i].offset);
    if (u < seg_end) return u;
  }
  return local_seconds - segs.back().offset;
}

TimeWindow window_containing(const TimeZone& zone, BudgetPeriod period, std::int64_t t_ms) {
  const std::int64_t t = floor_div(t_ms, 1000);
  std::int64_t days = floor_div(t + zone.offset_at(t), kDay);
  // Normally one pass. A wall clock set back across midnight repeats the end of the previous day
  // after the next one began: those instants count towards the window that already started.
  for (int pass = 0; pass < 3; ++pass) {
    std::int64_t first_day, next_day;
    if (period == BudgetPeriod::daily) {
      first_day = days;
      next_day = days + 1;
    } else {
      CivilDate d = civil_from_days(days);
      first_day = days_from_civil(d.year, d.month, 1);
      next_day = d.month == 12 ? days_from_civil(d.year + 1, 1, 1) : days_from_civil(d.year, d.month + 1, 1);
    }
    TimeWindow w{zone.first_instant_at_or_after(first_day * kDay) * 1000,
                 zone.first_instant_at_or_after(next_day * kDay) * 1000};
    if (w.contains(t_ms) || pass == 2) return w;
    days = t_ms < w.start_ms ? first_day - 1 : next_day;
  }
  return {};  // unreachable
}

std::string iso8601(const TimeZone& zone, std::int64_t t_ms) {
  const std::int64_t t = floor_div(t_ms, 1000);
  const int offset = zone.offset_at(t);
  const std::int64_t local = t + offset;
  const CivilDate d = civil_from_days(floor_div(local, kDay));
  const std::int64_t sod = local - floor_div(local, kDay) * kDay;
  const int abs_off = offset < 0 ? -offset : offset;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld%c%02d:%02d", static_cast<long long>(d.year),
                d.month, d.day, static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60),
                static_cast<long long>(sod % 60), offset < 0 ? '-' : '+', abs_off / 3600, abs_off / 60 % 60);
  return buf;
}

}  // namespace tokfence::proxy
