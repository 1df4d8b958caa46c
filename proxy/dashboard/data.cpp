#include "proxy/dashboard/data.hpp"

#include <algorithm>
#include <map>

#include "core/money.hpp"
#include "core/sqlite.hpp"
#include "core/time.hpp"

namespace tokfence::proxy {

using json = nlohmann::json;

namespace {

std::int64_t micro_usd(Picodollars pico) { return (pico + (pico >= 0 ? 500000 : -500000)) / 1000000; }

struct Series {
  std::string key;
  std::vector<std::int64_t> cost_pico, requests, tokens;
  std::int64_t total_cost = 0, total_requests = 0;
};

json series_json(const Series& s) {
  json cost = json::array();
  for (auto c : s.cost_pico) cost.push_back(micro_usd(c));
  return {{"key", s.key},
          {"cost_micro_usd", cost},
          {"requests", s.requests},
          {"tokens", s.tokens},
          {"total_cost_micro_usd", micro_usd(s.total_cost)},
          {"total_requests", s.total_requests}};
}

// The window and its buckets: whole hours, whole 6-hour blocks (UTC), or local days.
void window_of(const SpendQuery& q, std::int64_t now, std::int64_t& start, std::int64_t& bucket, int& count) {
  constexpr std::int64_t hour = 3600 * 1000;
  if (q.range == "24h") {
    bucket = hour, count = 24;
  } else if (q.range == "7d") {
    bucket = 6 * hour, count = 28;
  } else {
    // Local days (a DST day is off by its hour: the chart is a sketch, `tokfence stats` is exact).
    bucket = 24 * hour, count = 30;
    start = start_of_local_day(now) - 29 * bucket;
    return;
  }
  start = (now / bucket) * bucket - (count - 1) * bucket;
}

// The top kMaxSeries by cost (then requests) stay; the rest fold into "(other)".
std::vector<Series> fold_small(std::vector<Series> all, int count) {
  std::sort(all.begin(), all.end(), [](const Series& a, const Series& b) {
    return a.total_cost != b.total_cost ? a.total_cost > b.total_cost
                                        : a.total_requests != b.total_requests ? a.total_requests > b.total_requests
                                                                               : a.key < b.key;
  });
  if (all.size() <= kMaxSeries) return all;
  Series other{"(other)", std::vector<std::int64_t>(count), std::vector<std::int64_t>(count),
               std::vector<std::int64_t>(count)};
  for (std::size_t i = kMaxSeries - 1; i < all.size(); ++i) {
    for (int b = 0; b < count; ++b) {
      other.cost_pico[b] += all[i].cost_pico[b];
      other.requests[b] += all[i].requests[b];
      other.tokens[b] += all[i].tokens[b];
    }
    other.total_cost += all[i].total_cost;
    other.total_requests += all[i].total_requests;
  }
  all.resize(kMaxSeries - 1);
  all.push_back(std::move(other));
  return all;
}

}  // namespace

std::optional<SpendQuery> parse_spend_query(const std::string& range, const std::string& by) {
  const bool range_ok = range == "24h" || range == "7d" || range == "30d";
  const bool by_ok = by == "provider" || by == "model" || by == "caller";
  if (!range_ok || !by_ok) return std::nullopt;
  return SpendQuery{range, by};
}

Result<json> spend_over_time(const std::filesystem::path& db_path, const SpendQuery& q, std::int64_t now) {
  std::int64_t start = 0, bucket = 0;
  int count = 0;
  window_of(q, now, start, bucket, count);
  json out = {{"range", q.range}, {"by", q.by}, {"start_ms", start}, {"bucket_ms", bucket}, {"buckets", count},
              {"series", json::array()}};
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) return out;  // nothing logged yet
  auto db = sqlite::Database::open(db_path, sqlite::Create::no);
  if (!db) return std::unexpected(db.error());
  auto has = db->has_table("requests");
  if (!has) return std::unexpected(has.error());
  if (!*has) return out;
  // `by` is one of three fixed column names (parse_spend_query), never text from the request.
  const std::string column = q.by == "model" ? "model" : q.by == "provider" ? "provider" : "caller_name";
  auto st = db->prepare("SELECT (ts_ms - ?1) / ?2 AS b, CASE WHEN " + column + " IS NULL OR " + column +
                        " = '' THEN '(unknown)' ELSE " + column +
                        " END AS k, count(*), total(input_tokens) + total(output_tokens) + total(cache_read_tokens) + "
                        "total(cache_write_tokens), coalesce(sum(cost_pico), 0) FROM requests "
                        "WHERE ts_ms >= ?1 AND ts_ms < ?3 GROUP BY b, k");
  if (!st) return std::unexpected(st.error());
  st->bind(1, start).bind(2, bucket).bind(3, start + count * bucket);
  std::map<std::string, Series> by_key;
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    const auto b = row.column_int64(0);
    if (b < 0 || b >= count) return;
    auto [it, fresh] = by_key.try_emplace(row.column_text(1));
    Series& s = it->second;
    if (fresh) {
      s.key = it->first;
      s.cost_pico.assign(count, 0), s.requests.assign(count, 0), s.tokens.assign(count, 0);
    }
    s.requests[b] += row.column_int64(2);
    s.tokens[b] += static_cast<std::int64_t>(row.column_double(3));
    s.cost_pico[b] += row.column_int64(4);
    s.total_requests += row.column_int64(2);
    s.total_cost += row.column_int64(4);
  });
  if (!done) return std::unexpected(done.error());
  std::vector<Series> all;
  for (auto& [key, s] : by_key) all.push_back(std::move(s));
  for (const auto& s : fold_small(std::move(all), count)) out["series"].push_back(series_json(s));
  return out;
}

}  // namespace tokfence::proxy
