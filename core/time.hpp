#pragma once
// Wall-clock time as the request log, the controls and the CLI share it: Unix milliseconds, and
// one formatter for every printed timestamp, so a row's time reads the same in `log`, `watch`
// and the daemon's own log. Deadlines use steady_clock and do not belong here.
#include <cstdint>
#include <string>

namespace tokfence {

// Milliseconds since the Unix epoch (system_clock).
std::int64_t now_ms();

// strftime of the UTC (format_utc) or local (format_local) time at unix_ms; "%f" is not
// strftime's: it writes the three millisecond digits.
std::string format_utc(std::int64_t unix_ms, const char* format);
std::string format_local(std::int64_t unix_ms, const char* format);

// "2026-12-06T17:03:05Z": what the providers' APIs and our JSON output use.
std::string utc_rfc3339(std::int64_t unix_ms);

// The local midnight that starts the day `unix_ms` falls in: where "today" begins in `status`,
// the widget snapshot and the metrics.
std::int64_t start_of_local_day(std::int64_t unix_ms);

}  // namespace tokfence
