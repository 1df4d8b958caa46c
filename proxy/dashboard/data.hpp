#pragma once
// What the dashboard's JSON endpoints read from the request log (docs/DASHBOARD.md): one request
// row as JSON (the same fields as `tokfence log --json`), and spend over time in buckets.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "proxy/metering/request_json.hpp"
#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

struct SpendQuery {
  std::string range;  // "24h" (hourly buckets), "7d" (6-hourly), "30d" (daily from local midnight)
  std::string by;     // "provider", "model" or "caller"
};
// nullopt unless `range` and `by` are among the values above.
std::optional<SpendQuery> parse_spend_query(const std::string& range, const std::string& by);

// {range, by, start_ms, bucket_ms, buckets, series: [{key, cost_micro_usd: [..], requests: [..],
// tokens: [..], total_cost_micro_usd, total_requests}]}: the kMaxSeries most expensive keys, the
// rest summed as "(other)". One aggregate query over the log's ts_ms index.
inline constexpr std::size_t kMaxSeries = 8;
Result<nlohmann::json> spend_over_time(const std::filesystem::path& db, const SpendQuery& query, std::int64_t now_ms);

}  // namespace tokfence::proxy
