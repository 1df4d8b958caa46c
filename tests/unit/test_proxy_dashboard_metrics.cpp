#include <catch2/catch.hpp>
#include <string>

#include "proxy/dashboard/metrics.hpp"
#include "proxy/snapshot/snapshot.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

RequestRecord row(const std::string& provider, const std::string& model, int status, std::int64_t in,
                  std::int64_t out, std::optional<Picodollars> cost) {
  RequestRecord r;
  r.provider = provider;
  r.model = model;
  r.status = status;
  r.usage.input_tokens = in;
  r.usage.output_tokens = out;
  r.cost = cost;
  r.latency_ms = 120;
  r.ttfb_ms = 30;
  return r;
}

bool has_line(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

}  // namespace

TEST_CASE("proxy::Metrics counts rows into OpenTelemetry-named series") {
  Metrics m;
  m.record(row("openai", "gpt-4o", 200, 10, 5, 2'000'000'000));
  m.record(row("openai", "gpt-4o", 200, 30, 0, 1'000'000'000));
  m.record(row("openai", "gpt-4o", 429, 0, 0, std::nullopt));
  const std::string text = "\n" + m.render({});
  const std::string pm = R"(gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o")";
  CHECK(has_line(text, "tokfence_requests_total{" + pm + R"(,http_response_status_code="200"} 2)"));
  CHECK(has_line(text, "tokfence_requests_total{" + pm + R"(,http_response_status_code="429"} 1)"));
  CHECK(has_line(text, "gen_ai_client_token_usage_sum{" + pm + R"(,gen_ai_token_type="input"} 40)"));
  // A token type is observed only when non-zero: the _count is the rows that had it.
  CHECK(has_line(text, "gen_ai_client_token_usage_count{" + pm + R"(,gen_ai_token_type="output"} 1)"));
  CHECK(has_line(text, "gen_ai_client_token_usage_bucket{" + pm + R"(,gen_ai_token_type="input",le="16"} 1)"));
  CHECK(has_line(text, "gen_ai_client_token_usage_bucket{" + pm + R"(,gen_ai_token_type="input",le="+Inf"} 2)"));
  CHECK(has_line(text, "tokfence_cost_usd_total{" + pm + "} 0.0030000000000000001"));
  CHECK(has_line(text, "tokfence_unpriced_requests_total{" + pm + "} 1"));
  CHECK(has_line(text, "# TYPE gen_ai_client_operation_duration_seconds histogram"));
  CHECK(has_line(text, "gen_ai_client_operation_duration_seconds_bucket{" + pm + R"(,http_response_status_code="200",le="0.16"} 2)"));
}

TEST_CASE("proxy::Metrics shows the data plane's gauges, egress decisions and the log writer's commit times") {
  Metrics m;
  Metrics::Gauges g;
  g.active_connections = 3;
  g.active_streams = 2;
  g.egress_allowed = 5;
  g.egress_denied = 7;
  g.log.commits = 4;
  g.log.commit_seconds = 0.5;
  g.log.commit_buckets[0] = 1;                                         // <= 0.5 ms
  g.log.commit_buckets[RequestLog::kCommitSecondsBuckets.size()] = 1;  // slower than the last bound
  g.log.commit_buckets[4] = 2;                                         // <= 10 ms
  const std::string text = "\n" + m.render(g);
  CHECK(has_line(text, "tokfence_active_connections 3"));
  CHECK(has_line(text, "tokfence_active_streams 2"));
  CHECK(has_line(text, R"(tokfence_egress_decisions_total{decision="allowed"} 5)"));
  CHECK(has_line(text, R"(tokfence_egress_decisions_total{decision="denied"} 7)"));
  CHECK(has_line(text, "# TYPE tokfence_request_log_commit_duration_seconds histogram"));
  CHECK(has_line(text, R"(tokfence_request_log_commit_duration_seconds_bucket{le="0.0005"} 1)"));
  CHECK(has_line(text, R"(tokfence_request_log_commit_duration_seconds_bucket{le="0.01"} 3)"));
  CHECK(has_line(text, R"(tokfence_request_log_commit_duration_seconds_bucket{le="2.5"} 3)"));
  CHECK(has_line(text, R"(tokfence_request_log_commit_duration_seconds_bucket{le="+Inf"} 4)"));
  CHECK(has_line(text, "tokfence_request_log_commit_duration_seconds_count 4"));
  CHECK(has_line(text, "tokfence_request_log_commit_duration_seconds_sum 0.5"));
}

TEST_CASE("proxy::Metrics escapes label values and caps the model series a client can create") {
  Metrics m;
  m.record(row("openai", "a\"b\\c\nd\xff", 200, 1, 1, 0));
  for (std::size_t i = 0; i < kMaxModelSeries + 50; ++i) m.record(row("openai", "m" + std::to_string(i), 200, 1, 1, 0));
  const std::string text = m.render({});
  CHECK(text.find(R"(gen_ai_request_model="a\"b\\c?d?")") != std::string::npos);
  CHECK(text.find(R"x(gen_ai_provider_name="(other)",gen_ai_request_model="(other)",http_response_status_code="200"} 51)x") !=
        std::string::npos);
  CHECK(text.find("gen_ai_request_model=\"m" + std::to_string(kMaxModelSeries + 10) + "\"") == std::string::npos);
}

TEST_CASE("proxy::cents_of and micro_usd_of round to the nearest") {
  CHECK(cents_of(0) == 0);
  CHECK(cents_of(4'999'999'999) == 0);   // $0.004999...
  CHECK(cents_of(5'000'000'000) == 1);   // $0.005
  CHECK(cents_of(kPicoPerUsd * 5) == 500);
  CHECK(micro_usd_of(499'999) == 0);
  CHECK(micro_usd_of(500'000) == 1);
  CHECK(micro_usd_of(kPicoPerUsd) == 1'000'000);
}
