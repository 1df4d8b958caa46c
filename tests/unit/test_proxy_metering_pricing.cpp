#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "proxy/metering/pricing.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

constexpr Picodollars kDollar = 1'000'000'000'000LL;

ModelPrice price_of(const PricingTable& t, std::string_view provider, std::string_view model) {
  auto p = t.find(provider, model);
  INFO(provider << " " << model);
  REQUIRE(p);
  return *p;
}

}  // namespace

TEST_CASE("proxy::PricingTable covers the built-in providers' current models") {
  PricingTable t{Config{}};
  for (const auto& [provider, model] : std::vector<std::pair<std::string, std::string>>{
           {"openai", "gpt-5"},          {"openai", "gpt-5-mini"},        {"openai", "gpt-5-nano"},
           {"openai", "gpt-4.1"},        {"openai", "gpt-4.1-mini"},      {"openai", "gpt-4o"},
           {"openai", "gpt-4o-mini"},    {"openai", "o3"},                {"openai", "o4-mini"},
           {"anthropic", "claude-opus-4-1"}, {"anthropic", "claude-sonnet-4-5"}, {"anthropic", "claude-haiku-4-5"},
           {"anthropic", "claude-3-7-sonnet"}, {"anthropic", "claude-3-5-haiku"},
           {"google", "gemini-2.5-pro"}, {"google", "gemini-2.5-flash"}, {"google", "gemini-2.5-flash-lite"},
           {"mistral", "mistral-large-latest"}, {"groq", "llama-3.3-70b-versatile"}, {"xai", "grok-4"},
           {"deepseek", "deepseek-chat"}, {"together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"},
           {"fireworks", "accounts/fireworks/models/deepseek-v3"}, {"cerebras", "llama-3.3-70b"}}) {
    INFO(provider << " " << model);
    CHECK(t.find(provider, model).has_value());
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& m : t.models()) {
    INFO(m.provider << " " << m.model);
    CHECK(m.price.input > 0);
    CHECK(m.price.output >= 0);
    CHECK(m.price.cache_read >= 0);
    CHECK(m.price.cache_read <= m.price.input);
    CHECK(m.price.cache_write >= m.price.input);
    CHECK(seen.insert({m.provider, m.model}).second);
  }
  for (const auto& p : builtin_providers()) {
    if (p.name == "openrouter") continue;  // resells the others' models under their names
    INFO(p.name);
    CHECK(t.models_of(p.name).size() >= 2);
  }
}

TEST_CASE("proxy::PricingTable stores prices as micro-dollars per million tokens") {
  PricingTable t{Config{}};
  auto p = price_of(t, "openai", "gpt-4o");
  CHECK(p.input == 2'500'000);
  CHECK(p.output == 10'000'000);
  CHECK(p.cache_read == 1'250'000);
  auto s = price_of(t, "anthropic", "claude-sonnet-4-5");
  CHECK(s.input == 3'000'000);
  CHECK(s.output == 15'000'000);
  CHECK(s.cache_read == 300'000);
  CHECK(s.cache_write == 3'750'000);
  CHECK(price_of(t, "google", "gemini-2.0-flash-lite").input == 75'000);
}

TEST_CASE("proxy::PricingTable matches dated and aliased names to their base model") {
  PricingTable t{Config{}};
  auto same = [&](std::string_view provider, std::string_view dated, std::string_view base) {
    auto a = price_of(t, provider, dated);
    auto b = price_of(t, provider, base);
    INFO(dated << " vs " << base);
    CHECK(a.input == b.input);
    CHECK(a.output == b.output);
    CHECK(a.cache_read == b.cache_read);
    CHECK(a.cache_write == b.cache_write);
  };
  same("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4");
  same("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5");
  same("anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet");
  same("anthropic", "claude-opus-4-1@20250805", "claude-opus-4-1");
  same("openai", "gpt-5-2025-08-07", "gpt-5");
  same("openai", "gpt-4o-2024-08-06", "gpt-4o");
  same("openai", "GPT-4o-Mini", "gpt-4o-mini");
  same("mistral", "mistral-large-2411", "mistral-large");
  same("xai", "grok-4-0709", "grok-4");
  same("google", "gemini-2.0-flash-001", "gemini-2.0-flash");
  same("google", "models/gemini-2.5-pro", "gemini-2.5-pro");
  same("openrouter", "openai/gpt-4o", "gpt-4o");
  same("openrouter", "anthropic/claude-sonnet-4.5", "claude-sonnet-4-5");
  // An exact entry beats its base model: the first gpt-4o snapshot kept its launch price.
  CHECK(price_of(t, "openai", "gpt-4o-2024-05-13").input == 5'000'000);
}

TEST_CASE("proxy::PricingTable prefers the asking provider's entry for a shared name") {
  PricingTable t{Config{}};
  auto groq = price_of(t, "groq", "openai/gpt-oss-120b");
  auto together = price_of(t, "together", "openai/gpt-oss-120b");
  CHECK(groq.output != together.output);
}

TEST_CASE("proxy::PricingTable knows nothing about unknown models") {
  PricingTable t{Config{}};
  CHECK_FALSE(t.find("openai", "my-finetune"));
  CHECK_FALSE(t.find("openai", ""));
  CHECK_FALSE(t.find("openai", "gpt-"));
  CHECK_FALSE(t.find("anthropic", "claude-sonnet-9"));
}

TEST_CASE("proxy::PricingTable applies [pricing] overrides and additions") {
  Config config;
  config.pricing_overrides["gpt-4o"] = ModelPrice{1, 2, 3, 4};
  config.pricing_overrides["my-local-llama"] = ModelPrice{100'000, 200'000, 0, 0};
  PricingTable t{config};
  auto o = price_of(t, "openai", "gpt-4o-2024-08-06");
  CHECK(o.input == 1);
  CHECK(o.output == 2);
  CHECK(o.cache_read == 3);
  CHECK(o.cache_write == 4);
  CHECK(price_of(t, "ollama", "my-local-llama").output == 200'000);
  CHECK(price_of(t, "openai", "my-local-llama").input == 100'000);
  // The added model is listed, once, as usable by any provider.
  int listed = 0;
  for (const auto& m : t.models())
    if (m.model == "my-local-llama") {
      ++listed;
      CHECK(m.provider.empty());
    }
  CHECK(listed == 1);
}

TEST_CASE("proxy::cost_of is exact in pico-dollars") {
  ModelPrice gpt4o{2'500'000, 10'000'000, 1'250'000, 2'500'000};
  Usage u;
  u.input_tokens = 1000;
  u.output_tokens = 200;
  u.cache_read_tokens = 3;
  u.cache_write_tokens = 0;
  // 1000 x $2.50/M + 200 x $10/M + 3 x $1.25/M = $0.0025 + $0.002 + $0.00000375
  CHECK(cost_of(gpt4o, u) == 4'503'750'000LL);
  CHECK(format_usd(cost_of(gpt4o, u)) == "$0.00450375");
  Usage one;
  one.input_tokens = 1;
  CHECK(cost_of(ModelPrice{50'000, 0, 0, 0}, one) == 50'000);  // gpt-5-nano: $0.00000005 a token
  CHECK(cost_of(gpt4o, Usage{}) == 0);
  Usage huge;
  huge.output_tokens = std::numeric_limits<std::int64_t>::max();
  CHECK(cost_of(gpt4o, huge) == std::numeric_limits<Picodollars>::max());
}

TEST_CASE("format_usd keeps every digit and drops trailing zeros") {
  CHECK(format_usd(0) == "$0.00");
  CHECK(format_usd(kDollar) == "$1.00");
  CHECK(format_usd(kDollar * 3 / 2) == "$1.50");
  CHECK(format_usd(123'000'000) == "$0.000123");
  CHECK(format_usd(50'000) == "$0.00000005");
  CHECK(format_usd(1) == "$0.000000000001");
  CHECK(format_usd(12 * kDollar + 345'678'901'234) == "$12.345678901234");
  CHECK(format_usd(-kDollar / 4) == "-$0.25");
  CHECK(format_usd(std::numeric_limits<Picodollars>::min()) == "-$9223372.036854775808");
}

TEST_CASE("parse_usd reads dollar amounts exactly") {
  CHECK(parse_usd("12.5") == 12 * kDollar + kDollar / 2);
  CHECK(parse_usd("0.75") == kDollar * 3 / 4);
  CHECK(parse_usd("$3") == 3 * kDollar);
  CHECK(parse_usd(" 10 ") == 10 * kDollar);
  CHECK(parse_usd(".5") == kDollar / 2);
  CHECK(parse_usd("5.") == 5 * kDollar);
  CHECK(parse_usd("0") == 0);
  CHECK(parse_usd("0.000000000001") == 1);
  CHECK(parse_usd("1000000") == 1'000'000 * kDollar);
  CHECK(format_usd(*parse_usd("0.000123")) == "$0.000123");
}

TEST_CASE("parse_usd rejects negative, non-numeric, imprecise and absurd amounts") {
  for (auto bad : {"", " ", "-1", "-0.5", "abc", "1,5", "1.2.3", "nan", "NaN", "inf", "1e3", "0x10", "$", ".", "+5",
                   "5 dollars", "1000000.01", "1000000000", "1e9", "99999999999999999999", "0.0000000000001"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(parse_usd(bad).has_value());
  }
}

// ---- tokfence pricing update (LiteLLM's format) ----

namespace {

std::string read_sample() {
  // Next to this file's folder (CMake passes sources by absolute path).
  std::ifstream in(std::filesystem::path(__FILE__).parent_path().parent_path() / "pricing" / "litellm_sample.json");
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("proxy::parse_litellm_prices reads LiteLLM's per-token prices") {
  auto update = parse_litellm_prices(read_sample());
  REQUIRE(update);
  std::map<std::string, PricedModel> by;
  for (const auto& m : update->models) by[m.provider + "/" + m.model] = m;
  REQUIRE(by.count("openai/gpt-4o"));
  CHECK(by["openai/gpt-4o"].price.input == 3'000'000);       // 3e-06 a token = $3 / M
  CHECK(by["openai/gpt-4o"].price.output == 12'000'000);
  CHECK(by["openai/gpt-4o"].price.cache_read == 1'500'000);
  CHECK(by["openai/gpt-4o"].price.cache_write == 3'000'000);  // absent: as input
  CHECK(by["anthropic/claude-tf-test-4"].price.cache_write == 3'750'000);
  CHECK(by.count("google/gemini-tf-flash"));                  // gemini/ prefix dropped, provider mapped
  CHECK(by["openai/text-embedding-tf"].price.output == 0);    // embeddings have no output price
  CHECK_FALSE(by.count("/azure/gpt-4o"));                     // another cloud's name
  CHECK_FALSE(by.count("openai/dall-e-3"));                   // priced per image
  CHECK(update->skipped == 3);                                // azure, dall-e-3, whisper-1 (not sample_spec)
  CHECK(update->models.size() == 6);

  // The update file round-trips, and the table built with it uses the new prices.
  auto text = serialize_price_updates(update->models);
  auto back = parse_price_updates(text);
  REQUIRE(back);
  CHECK(back->size() == update->models.size());
  Config config;
  PricingTable table(config, *back);
  CHECK(price_of(table, "openai", "gpt-4o").input == 3'000'000);
  CHECK(price_of(table, "openai", "gpt-4o-2024-08-06").input == 3'000'000);  // dated names follow
  CHECK(price_of(table, "openai", "tf-litellm-model").output == 8'000'000);
  CHECK(price_of(table, "google", "gemini-tf-flash").output == 2'500'000);
  // config.toml still wins.
  config.pricing_overrides["gpt-4o"] = ModelPrice{1, 2, 3, 4};
  CHECK(price_of(PricingTable(config, *back), "openai", "gpt-4o").input == 1);
}

TEST_CASE("proxy::parse_litellm_prices refuses bad files with a clear error") {
  auto error_of = [](std::string_view text) {
    auto r = parse_litellm_prices(text);
    REQUIRE_FALSE(r);
    return r.error().message;
  };
  CHECK_THAT(error_of("{not json"), Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of("[1,2]"), Catch::Contains("expected a JSON object"));
  CHECK_THAT(error_of(R"({"m":{"input_cost_per_token":"0.1","output_cost_per_token":1e-6,"mode":"chat"}})"),
             Catch::Contains("entry \"m\": input_cost_per_token must be a number"));
  CHECK_THAT(error_of(R"({"m":{"input_cost_per_token":-1e-6,"output_cost_per_token":1e-6}})"),
             Catch::Contains("must be between 0 and 1"));
  CHECK_THAT(error_of(R"({"m":{"input_cost_per_token":1e-6,"output_cost_per_token":5}})"), Catch::Contains("between 0 and 1"));
  CHECK_THAT(error_of(R"({"img":{"mode":"image_generation","input_cost_per_pixel":1e-9}})"),
             Catch::Contains("no per-token prices"));
  CHECK_THAT(error_of("{}"), Catch::Contains("no per-token prices"));
  CHECK_FALSE(parse_price_updates(R"({"format":"other"})"));
  CHECK_FALSE(parse_price_updates(R"({"format":"tokfence-pricing","models":[{"provider":"","model":"x","input":-1,"output":0,"cache_read":0,"cache_write":0}]})"));
}

TEST_CASE("answered_by_another_model: snapshots and spellings of the model asked for are the same model") {
  CHECK_FALSE(answered_by_another_model("gpt-4o", "gpt-4o-2024-08-06"));
  CHECK_FALSE(answered_by_another_model("claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"));
  CHECK_FALSE(answered_by_another_model("GPT-4o", "gpt-4o"));
  CHECK_FALSE(answered_by_another_model("openai/gpt-4o-mini", "gpt-4o-mini"));
  CHECK_FALSE(answered_by_another_model("", "gpt-4o"));
  CHECK_FALSE(answered_by_another_model("gpt-4o", ""));
  // Review 15a O1: a gateway's fallback answered.
  CHECK(answered_by_another_model("openai/gpt-4o-mini", "openai/gpt-4-32k"));
  CHECK(answered_by_another_model("gpt-4o-mini", "gpt-4o"));
  CHECK(answered_by_another_model("openrouter/auto", "anthropic/claude-opus-4"));
}

TEST_CASE("ModelPrice: an alias and its snapshot are one table row") {
  // Review 15e E2: claude-sonnet-4-0 is answered by claude-sonnet-4-20250514; the names share no
  // look-up name, but the table prices both as one model, so the proxy does not call it another.
  Config config;
  PricingTable table(config);
  auto alias = table.find("anthropic", "claude-sonnet-4-0");
  auto snapshot = table.find("anthropic", "claude-sonnet-4-20250514");
  REQUIRE(alias);
  REQUIRE(snapshot);
  CHECK(answered_by_another_model("claude-sonnet-4-0", "claude-sonnet-4-20250514"));
  CHECK(*alias == *snapshot);
  auto mini = table.find("openai", "gpt-4o-mini");
  auto full = table.find("openai", "gpt-4o");
  REQUIRE(mini);
  REQUIRE(full);
  CHECK_FALSE(*mini == *full);
  // pricing update compares token prices only: a LiteLLM entry has no per-call fee.
  ModelPrice without_fee = *alias;
  without_fee.tool_call = -1;
  CHECK(same_token_prices(*alias, without_fee));
  CHECK_FALSE(*alias == without_fee);
}
