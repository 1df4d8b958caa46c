#include "proxy/dashboard/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace tokfence::proxy {

using nlohmann::json;

namespace {

constexpr const char* kOther = "(other)";
constexpr const char* kTokenTypes[4] = {"input", "output", "cache_read", "cache_write"};

// A label value in the text format: `\`, `"` and newlines escaped; bytes outside printable ASCII
// (a client's model name may hold anything) become '?', so the value is always valid UTF-8.
std::string label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (unsigned char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c < 0x20 || c >= 0x7f) out += '?';
    else out += static_cast<char>(c);
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 9e15)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string number(std::uint64_t v) { return std::to_string(v); }

// A bucket bound as its `le` label: 15 significant digits, so 0.04 reads "0.04", not
// "0.040000000000000001" (the bounds are short decimals; the values keep all 17).
std::string bound(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

double usd(Picodollars p) { return static_cast<double>(p) / static_cast<double>(kPicoPerUsd); }

class Writer {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // `labels` is already rendered: `a="x",b="y"` (may be empty).
  void sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  template <std::size_t N>
  void histogram(const char* name, const std::string& labels, const std::array<std::uint64_t, N>& buckets,
                 const std::array<double, N>& bounds, std::uint64_t count, double sum) {
    const std::string prefix = labels.empty() ? "" : labels + ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < N; ++i) {
      cumulative += buckets[i];
      sample(std::string(name) + "_bucket", prefix + "le=\"" + bound(bounds[i]) + "\"", number(cumulative));
    }
    sample(std::string(name) + "_bucket", prefix + "le=\"+Inf\"", number(count));
    sample(std::string(name) + "_sum", labels, number(sum));
    sample(std::string(name) + "_count", labels, number(count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string model_labels(const std::string& provider, const std::string& model) {
  return "gen_ai_provider_name=\"" + label_value(provider) + "\",gen_ai_request_model=\"" + label_value(model) + "\"";
}


// The per-(provider, model) series recorded from the request rows. `series` is Metrics::series_,
// read under its mutex (a template: PerModel is Metrics' own).
template <class Series>
void render_series(Writer& w, const Series& series) {
  w.family("gen_ai_client_token_usage", "histogram",
           "Tokens per request by gen_ai_token_type (input, output, cache_read, cache_write), as the provider "
           "reported them (OpenTelemetry gen_ai.client.token.usage).");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models)
      for (int i = 0; i < 4; ++i) {
        const auto& h = m.tokens[static_cast<std::size_t>(i)];
        if (h.count == 0) continue;
        w.histogram("gen_ai_client_token_usage",
                    model_labels(provider, model) + ",gen_ai_token_type=\"" + kTokenTypes[i] + "\"", h.buckets,
                    Metrics::kTokenBuckets, h.count, h.sum);
      }
  w.family("gen_ai_client_operation_duration_seconds", "histogram",
           "Seconds from a request's start to its last byte relayed, by status sent to the client (0 = the client "
           "went away first) (OpenTelemetry gen_ai.client.operation.duration).");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models)
      for (const auto& [status, h] : m.duration_by_status)
        w.histogram("gen_ai_client_operation_duration_seconds",
                    model_labels(provider, model) + ",http_response_status_code=\"" + std::to_string(status) + "\"",
                    h.buckets, Metrics::kSecondsBuckets, h.count, h.sum);
  w.family("tokfence_requests_total", "counter",
           "Requests logged, by provider, model and status sent to the client (refusals included).");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models)
      for (const auto& [status, n] : m.requests_by_status)
        w.sample("tokfence_requests_total",
                 model_labels(provider, model) + ",http_response_status_code=\"" + std::to_string(status) + "\"",
                 number(n));
  w.family("tokfence_upstream_time_to_first_byte_seconds", "histogram",
           "Seconds from a request's start to the upstream's first response byte.");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models)
      if (m.ttfb.count)
        w.histogram("tokfence_upstream_time_to_first_byte_seconds", model_labels(provider, model), m.ttfb.buckets,
                    Metrics::kSecondsBuckets, m.ttfb.count, m.ttfb.sum);
  w.family("tokfence_cost_usd_total", "counter", "Cost of the requests with a known price, in US dollars.");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models) w.sample("tokfence_cost_usd_total", model_labels(provider, model), number(usd(m.cost)));
  w.family("tokfence_unpriced_requests_total", "counter", "Requests of a model with no known price (not in the cost).");
  for (const auto& [provider, models] : series)
    for (const auto& [model, m] : models)
      if (m.unpriced) w.sample("tokfence_unpriced_requests_total", model_labels(provider, model), number(m.unpriced));
}

// The controls' gauges (kill switch, revoked providers, budgets); none while they are unknown.
void render_controls(Writer& w, const json& c) {
  if (!c.is_object()) return;
  w.family("tokfence_kill_switch", "gauge", "1 while the kill switch refuses every request.");
  w.sample("tokfence_kill_switch", "", c.value("killed", false) ? "1" : "0");
  w.family("tokfence_provider_revoked", "gauge", "1 for each revoked provider.");
  for (const auto& p : c.value("revoked", json::array()))
    if (p.is_string()) w.sample("tokfence_provider_revoked", "gen_ai_provider_name=\"" + label_value(p.get<std::string>()) + "\"", "1");
  const json budgets = c.value("budgets", json::array());
  auto budget_family = [&](const char* name, const char* help, const char* key) {
    w.family(name, "gauge", help);
    for (const auto& b : budgets)
      w.sample(name, "scope=\"" + label_value(b.value("scope", "")) + "\",period=\"" + label_value(b.value("period", "")) + "\"",
               number(usd(b.value(key, Picodollars{0}))));
  };
  budget_family("tokfence_budget_limit_usd", "Each budget's limit in US dollars.", "limit_pico");
  budget_family("tokfence_budget_spent_usd", "Spent in each budget's current period, in US dollars.", "spent_pico");
  budget_family("tokfence_budget_reserved_usd", "Reserved by requests in flight against each budget, in US dollars.",
                "reserved_pico");
}

// The request log's writer: its rows by fate, its queue, its commit times.
void render_request_log(Writer& w, const RequestLog::Stats& log) {
  w.family("tokfence_request_log_rows_total", "counter",
           "Request-log rows by what became of them: recorded (accepted), committed, dropped (queue full), lost "
           "(commits failed).");
  w.sample("tokfence_request_log_rows_total", "state=\"recorded\"", number(log.recorded));
  w.sample("tokfence_request_log_rows_total", "state=\"committed\"", number(log.committed));
  w.sample("tokfence_request_log_rows_total", "state=\"dropped\"", number(log.dropped));
  w.sample("tokfence_request_log_rows_total", "state=\"lost\"", number(log.lost));
  w.family("tokfence_request_log_queue_depth", "gauge", "Rows waiting for the request log's writer.");
  w.sample("tokfence_request_log_queue_depth", "", number(log.queued));
  w.family("tokfence_request_log_commit_duration_seconds", "histogram",
           "Seconds the request log's writer took to write and commit one batch of rows (retries included).");
  constexpr std::size_t n = RequestLog::kCommitSecondsBuckets.size();
  std::array<std::uint64_t, n> buckets{};
  for (std::size_t i = 0; i < n; ++i) buckets[i] = log.commit_buckets[i];
  w.histogram("tokfence_request_log_commit_duration_seconds", "", buckets, RequestLog::kCommitSecondsBuckets,
              log.commits, log.commit_seconds);
}

// What the daemon reads at scrape time besides the controls.
void render_gauges(Writer& w, const Metrics::Gauges& g) {
  render_request_log(w, g.log);
  w.family("tokfence_active_connections", "gauge", "Client connections open on the proxy's listeners now.");
  w.sample("tokfence_active_connections", "", number(static_cast<double>(g.active_connections)));
  w.family("tokfence_active_streams", "gauge",
           "Streamed model responses (requests asking stream: true) being relayed now.");
  w.sample("tokfence_active_streams", "", number(static_cast<double>(g.active_streams)));
  w.family("tokfence_egress_decisions_total", "counter",
           "Forward-proxy requests (CONNECT, absolute-form http) by decision, as the egress log records them.");
  w.sample("tokfence_egress_decisions_total", "decision=\"allowed\"", number(g.egress_allowed));
  w.sample("tokfence_egress_decisions_total", "decision=\"denied\"", number(g.egress_denied));
  w.family("tokfence_proxy_sessions", "gauge", "Per-caller proxy sockets open (tokfence launch and run sessions).");
  w.sample("tokfence_proxy_sessions", "", number(static_cast<std::uint64_t>(g.proxy_sessions)));
  w.family("tokfence_immunefence_sessions", "gauge", "Live ImmuneFence sessions by risk state.");
  for (const char* state : {"GREEN", "YELLOW", "ORANGE", "RED"}) {
    const auto it = g.sessions_by_risk.find(state);
    w.sample("tokfence_immunefence_sessions", std::string("risk_state=\"") + state + "\"",
             number(static_cast<std::uint64_t>(it == g.sessions_by_risk.end() ? 0 : it->second)));
  }
  w.family("tokfence_start_time_seconds", "gauge", "When the daemon started, in Unix seconds.");
  w.sample("tokfence_start_time_seconds", "", number(static_cast<double>(g.start_time_ms) / 1000.0));
}
}  // namespace

template <std::size_t N>
void Metrics::Histogram<N>::observe(double value, const std::array<double, N>& bounds) {
  std::size_t i = 0;
  while (i < N && value > bounds[i]) ++i;
  if (i < N) ++buckets[i];
  ++count;
  sum += value;
}

Metrics::Metrics() = default;

void Metrics::record(const RequestRecord& row) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto provider = series_.find(std::string_view(row.provider));
    PerModel* m = nullptr;
    if (provider != series_.end()) {
      auto model = provider->second.find(std::string_view(row.model));
      if (model != provider->second.end()) m = &model->second;
    }
    if (!m) {
      if (model_series_ < kMaxModelSeries) {
        ++model_series_;
        m = &series_[row.provider][row.model];
      } else {
        m = &series_[kOther][kOther];
      }
    }
    ++m->requests_by_status[row.status];
    m->duration_by_status[row.status].observe(row.latency_ms / 1000.0, kSecondsBuckets);
    if (row.ttfb_ms > 0) m->ttfb.observe(row.ttfb_ms / 1000.0, kSecondsBuckets);
    const std::int64_t tokens[4] = {row.usage.input_tokens, row.usage.output_tokens, row.usage.cache_read_tokens,
                                    row.usage.cache_write_tokens};
    for (int i = 0; i < 4; ++i)
      if (tokens[i] > 0) m->tokens[i].observe(static_cast<double>(tokens[i]), kTokenBuckets);
    if (row.cost)
      m->cost += *row.cost;
    else
      ++m->unpriced;
  } catch (...) {
    // Out of memory for a new series: the row is still logged; only the metric misses it.
  }
}

std::string Metrics::render(const Gauges& g) const {
  Writer w;
  {
    std::lock_guard lock(mutex_);
    render_series(w, series_);
  }
  render_controls(w, g.controls);
  render_gauges(w, g);
  return w.take();
}

}  // namespace tokfence::proxy
