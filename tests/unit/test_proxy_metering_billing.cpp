#include <catch2/catch.hpp>

#include "proxy/metering/billing.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

constexpr Picodollars kMilli = 1'000'000'000LL;  // $0.001 in pico-dollars
const ModelPrice kPrice{1000'000'000, 1000'000'000, 100'000'000, 1250'000'000};  // $1000 / M tokens: $0.001 a token

Usage tokens(std::int64_t in, std::int64_t out) {
  Usage u;
  u.input_tokens = in;
  u.output_tokens = out;
  u.found = true;
  return u;
}

}  // namespace

TEST_CASE("proxy::endpoint_cost allows metered and free endpoints and nothing else") {
  const std::vector<std::string> none;
  auto cost = [&](ApiStyle style, std::string_view method, std::string_view path) {
    return endpoint_cost(classify(style, path), method, path, none);
  };
  CHECK(cost(ApiStyle::openai, "POST", "/v1/chat/completions") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::openai, "POST", "/v1/responses") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::openai, "POST", "/v1/embeddings") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::openai, "POST", "/v1/completions") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::anthropic, "POST", "/v1/messages?beta=true") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::gemini, "POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == EndpointCost::tokens);
  CHECK(cost(ApiStyle::openai, "GET", "/v1/models") == EndpointCost::free);
  CHECK(cost(ApiStyle::openai, "GET", "/v1/models/gpt-4o") == EndpointCost::free);
  CHECK(cost(ApiStyle::gemini, "GET", "/v1beta/models") == EndpointCost::free);
  CHECK(cost(ApiStyle::anthropic, "POST", "/v1/messages/count_tokens") == EndpointCost::free);
  CHECK(cost(ApiStyle::gemini, "POST", "/v1beta/models/gemini-2.5-flash:countTokens") == EndpointCost::free);
  CHECK(cost(ApiStyle::anthropic, "HEAD", "") == EndpointCost::free);
  CHECK(cost(ApiStyle::anthropic, "HEAD", "/") == EndpointCost::free);
  // Billed outside a usage field, or not an API call tokfence can price.
  for (auto path : {"/v1/images/generations", "/v1/batches", "/v1/fine_tuning/jobs", "/v1/audio/speech",
                    "/v1/audio/transcriptions", "/v1/files", "/v1/uploads", "/v1/realtime", "/v1/threads/t/runs",
                    "/v1/threads/t/messages", "/v1/vector_stores", "/v1/moderations_x"})
    CHECK(cost(ApiStyle::openai, "POST", path) == EndpointCost::unmetered);
  CHECK(cost(ApiStyle::openai, "GET", "/v1/files/file-1/content") == EndpointCost::unmetered);
  CHECK(cost(ApiStyle::openai, "DELETE", "/v1/models/ft:x") == EndpointCost::unmetered);
  CHECK(cost(ApiStyle::openai, "GET", "/v1/chat/completions") == EndpointCost::unmetered);  // stored completions
  CHECK(cost(ApiStyle::openai, "HEAD", "/v1/chat/completions") == EndpointCost::unmetered);
  // A configured path is billed like chat (by usage, else the estimate).
  const std::vector<std::string> allowed{"/v1/images/generations"};
  CHECK(endpoint_cost(ApiKind::other, "POST", "/v1/images/generations?x=1", allowed) == EndpointCost::tokens);
  CHECK(endpoint_cost(ApiKind::other, "POST", "/v1/images/edits", allowed) == EndpointCost::unmetered);
}

TEST_CASE("proxy::estimate_usage takes max_tokens, else the provider default") {
  RequestInfo info;
  info.estimated_input_tokens = 250;
  Usage e = estimate_usage(info, 4096);
  CHECK(e.input_tokens == 250);
  CHECK(e.output_tokens == 4096);
  info.max_output_tokens = 32;
  CHECK(estimate_usage(info, 4096).output_tokens == 32);
  // Through inspect_request: every spelling of the limit.
  for (std::string body : {R"({"model":"m","max_tokens":77})", R"({"model":"m","max_completion_tokens":77})",
                           R"({"model":"m","max_output_tokens":77})"}) {
    auto parsed = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
    CHECK(estimate_usage(parsed, 4096).output_tokens == 77);
  }
}

TEST_CASE("proxy::estimate_usage counts every answer the upstream generates (n, best_of, candidateCount)") {
  auto output_estimate = [](ApiKind kind, const char* path, std::string body) {
    return estimate_usage(inspect_request(kind, path, body, true), 4096).output_tokens;
  };
  // Review 15a M1: n=16 was charged max_tokens once when the reply had no readable usage.
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":16,"max_tokens":100})") == 1600);
  CHECK(output_estimate(ApiKind::other, "/v1/completions", R"({"model":"m","n":2,"best_of":5,"max_tokens":10})") == 50);
  CHECK(output_estimate(ApiKind::gemini, "/v1beta/models/g:generateContent",
                        R"({"generationConfig":{"candidateCount":8,"maxOutputTokens":10}})") == 80);
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":1e1,"max_tokens":10})") == 100);
  // Not readable as a count: the most an upstream takes, so the estimate is still an upper bound.
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":"16","max_tokens":10})") ==
        10 * kMaxEstimatedChoices);
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":100000,"max_tokens":10})") ==
        10 * kMaxEstimatedChoices);
  // Absent, null or 1: one answer.
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":null,"max_tokens":10})") == 10);
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions", R"({"model":"m","n":1,"max_tokens":10})") == 10);
  // A huge max_tokens saturates instead of wrapping to a small (or negative) number.
  CHECK(output_estimate(ApiKind::openai_chat, "/v1/chat/completions",
                        R"({"model":"m","n":4,"max_tokens":9223372036854775807})") == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("proxy::settle_cost charges usage, else the estimate, never $0 once the upstream had the request") {
  const Usage estimate = tokens(100, 4096);
  const Usage none;
  const Usage used = tokens(10, 50);
  auto settle = [&](const Usage& u, ExchangeEnd end, int status, EndpointCost e = EndpointCost::tokens) {
    return settle_cost(kPrice, e, u, estimate, end, status);
  };
  // Complete with usage: the usage.
  auto s = settle(used, ExchangeEnd::complete, 200);
  CHECK(s.cost == 60 * kMilli);
  CHECK(s.source == CostSource::usage);
  // Complete 2xx without usage (include_usage false, reply past the reader's cap): the estimate.
  s = settle(none, ExchangeEnd::complete, 200);
  CHECK(s.cost == 4196 * kMilli);
  CHECK(s.source == CostSource::estimate);
  // A provider's error reply is not billed.
  s = settle(none, ExchangeEnd::complete, 429);
  CHECK(s.cost == 0);
  CHECK(s.source == CostSource::none);
  // Cut (client gone before the usage chunk, upstream reset, timeout): at least the estimate.
  s = settle(none, ExchangeEnd::cut, 200);
  CHECK(s.cost == 4196 * kMilli);
  CHECK(s.source == CostSource::estimate);
  s = settle(used, ExchangeEnd::cut, 200);  // partial usage (Anthropic's message_start)
  CHECK(s.cost == 4196 * kMilli);
  s = settle(tokens(100, 9000), ExchangeEnd::cut, 200);  // usage above the estimate: the usage
  CHECK(s.cost == 9100 * kMilli);
  CHECK(s.source == CostSource::usage);
  s = settle(none, ExchangeEnd::cut, 0);  // client gone before the response head
  CHECK(s.cost == 4196 * kMilli);
  // Never sent: nothing billed.
  s = settle(none, ExchangeEnd::not_sent, 0);
  CHECK(s.cost == 0);
  CHECK(s.source == CostSource::none);
  // Free endpoints cost nothing, whatever came back.
  s = settle(used, ExchangeEnd::complete, 200, EndpointCost::free);
  CHECK(s.cost == 0);
  CHECK(s.source == CostSource::free);
  // No price: unknown (only possible where no budget applies).
  s = settle_cost(std::nullopt, EndpointCost::tokens, used, estimate, ExchangeEnd::complete, 200);
  CHECK_FALSE(s.cost);
  CHECK(s.source == CostSource::unpriced);
  CHECK(to_string(CostSource::estimate) == "estimate");
}

TEST_CASE("proxy::price_for uses the [pricing] fallback for unknown models") {
  Config config;
  PricingTable without(config);
  CHECK_FALSE(price_for(without, "openai", "tf-nope"));
  CHECK(price_for(without, "openai", "gpt-4o"));
  config.pricing_fallback = kPrice;
  PricingTable with(config);
  REQUIRE(price_for(with, "openai", "tf-nope"));
  CHECK(price_for(with, "openai", "tf-nope")->output == kPrice.output);
  CHECK(price_for(with, "openai", "gpt-4o")->output == 10'000'000);  // a known model keeps its price
}

TEST_CASE("proxy::is_json_object validates without building") {
  CHECK(is_json_object(R"( {"model":"m","messages":[]} )"));
  CHECK_FALSE(is_json_object(R"({"model":"m","messages":[})"));
  CHECK_FALSE(is_json_object(R"([{"model":"m"}])"));
  CHECK_FALSE(is_json_object(""));
  CHECK_FALSE(is_json_object(R"({"a":1} {"b":2})"));
}
