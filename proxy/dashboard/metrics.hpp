#pragma once
// The daemon's metrics in the Prometheus text format (version 0.0.4), named after OpenTelemetry's
// GenAI semantic conventions where they have a name (docs/METRICS.md lists every series).
//
// Counters come from the request rows as the daemon records them (Metrics::record, called through
// observe_records on the I/O thread: one mutex and a few map updates, no allocation once a label
// set has been seen); gauges (budgets, kill switch, the log writer, the data plane's connections,
// streams and egress decisions) are read when scraped. Label
// values from clients (the model name) are capped: past kMaxModelSeries distinct (provider, model)
// pairs, new models count under model "(other)", so a client cannot grow the daemon's memory or a
// scrape without bound.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

inline constexpr std::size_t kMaxModelSeries = 200;

class Metrics {
 public:
  Metrics();
  // Counts one request row. Never throws.
  void record(const RequestRecord& row) noexcept;

  // What only the daemon knows at scrape time.
  struct Gauges {
    nlohmann::json controls;  // Controls::status(): killed, revoked, budgets
    RequestLog::Stats log;
    std::size_t proxy_sessions = 0;  // per-caller proxy sockets open (launches, run sessions)
    std::map<std::string, std::size_t> sessions_by_risk;  // live ImmuneFence sessions by risk state
    std::int64_t start_time_ms = 0;
    // The data plane's counters (ProxyServer::activity).
    int active_connections = 0;
    int active_streams = 0;
    std::uint64_t egress_allowed = 0, egress_denied = 0;
  };
  std::string render(const Gauges& gauges) const;

  // Histogram bucket bounds, OpenTelemetry's advice for the GenAI metrics.
  static constexpr std::array<double, 14> kTokenBuckets = {1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144,
                                                           1048576, 4194304, 16777216, 67108864};
  static constexpr std::array<double, 14> kSecondsBuckets = {0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64,
                                                             1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};

 private:
  template <std::size_t N>
  struct Histogram {
    std::array<std::uint64_t, N> buckets{};  // non-cumulative; rendered cumulatively
    std::uint64_t count = 0;
    double sum = 0;
    void observe(double value, const std::array<double, N>& bounds);
  };
  struct PerModel {
    std::map<int, std::uint64_t> requests_by_status;
    std::map<int, Histogram<14>> duration_by_status;
    Histogram<14> ttfb;
    std::array<Histogram<14>, 4> tokens;  // input, output, cache_read, cache_write
    Picodollars cost = 0;
    std::uint64_t unpriced = 0;
  };

  mutable std::mutex mutex_;
  // provider -> model -> series; transparent look-ups: recording a known pair allocates nothing.
  std::map<std::string, std::map<std::string, PerModel, std::less<>>, std::less<>> series_;
  std::size_t model_series_ = 0;
};

}  // namespace tokfence::proxy
