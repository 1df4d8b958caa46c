// Pricing: the embedded table, name matching, exact cost arithmetic and USD text.
#include "proxy/metering/pricing.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace tokfence::proxy {
namespace {

struct Row {
  const char* provider;
  const char* model;
  // USD per million tokens. cache_write < 0 means "same as input" (providers that bill cache
  // writes as ordinary input, or never report them).
  double input, output, cache_read, cache_write;
};

// Prices checked 2025-11-20 against the providers' public pricing pages, from memory of them;
// standard (non-batch, non-priority) tier, the lowest context band where prices depend on prompt
// length (Gemini 2.5 Pro, Claude Sonnet 4.x <= 200k). Anthropic cache writes are the 5-minute
// rate (1.25 x input). Config [pricing."<model>"] corrects anything stale.
constexpr Row kRows[] = {
    // OpenAI
    {"openai", "gpt-5", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5-mini", 0.25, 2.00, 0.025, -1},
    {"openai", "gpt-5-nano", 0.05, 0.40, 0.005, -1},
    {"openai", "gpt-5-chat", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5-codex", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5-pro", 15.00, 120.00, 15.00, -1},
    {"openai", "gpt-5.1", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5.1-chat", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5.1-codex", 1.25, 10.00, 0.125, -1},
    {"openai", "gpt-5.1-codex-mini", 0.25, 2.00, 0.025, -1},
    {"openai", "gpt-4.1", 2.00, 8.00, 0.50, -1},
    {"openai", "gpt-4.1-mini", 0.40, 1.60, 0.10, -1},
    {"openai", "gpt-4.1-nano", 0.10, 0.40, 0.025, -1},
    {"openai", "gpt-4o", 2.50, 10.00, 1.25, -1},
    {"openai", "gpt-4o-2024-05-13", 5.00, 15.00, 5.00, -1},  // the first snapshot kept its launch price
    {"openai", "gpt-4o-mini", 0.15, 0.60, 0.075, -1},
    {"openai", "o1", 15.00, 60.00, 7.50, -1},
    {"openai", "o1-pro", 150.00, 600.00, 150.00, -1},
    {"openai", "o3", 2.00, 8.00, 0.50, -1},
    {"openai", "o3-pro", 20.00, 80.00, 20.00, -1},
    {"openai", "o3-mini", 1.10, 4.40, 0.55, -1},
    {"openai", "o4-mini", 1.10, 4.40, 0.275, -1},
    {"openai", "codex-mini", 1.50, 6.00, 0.375, -1},
    {"openai", "gpt-4-turbo", 10.00, 30.00, 10.00, -1},
    {"openai", "gpt-3.5-turbo", 0.50, 1.50, 0.50, -1},
    {"openai", "text-embedding-3-small", 0.02, 0, 0.02, -1},
    {"openai", "text-embedding-3-large", 0.13, 0, 0.13, -1},
    // Anthropic
    {"anthropic", "claude-opus-4-5", 5.00, 25.00, 0.50, 6.25},
    {"anthropic", "claude-opus-4-1", 15.00, 75.00, 1.50, 18.75},
    {"anthropic", "claude-opus-4", 15.00, 75.00, 1.50, 18.75},
    {"anthropic", "claude-opus-4-0", 15.00, 75.00, 1.50, 18.75},
    {"anthropic", "claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75},
    {"anthropic", "claude-sonnet-4", 3.00, 15.00, 0.30, 3.75},
    {"anthropic", "claude-sonnet-4-0", 3.00, 15.00, 0.30, 3.75},
    {"anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25},
    {"anthropic", "claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75},
    {"anthropic", "claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75},
    {"anthropic", "claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00},
    {"anthropic", "claude-3-opus", 15.00, 75.00, 1.50, 18.75},
    {"anthropic", "claude-3-haiku", 0.25, 1.25, 0.03, 0.30},
    // Google Gemini (cache storage is billed per hour, outside requests: not counted here)
    {"google", "gemini-3-pro-preview", 2.00, 12.00, 0.20, -1},
    {"google", "gemini-2.5-pro", 1.25, 10.00, 0.125, -1},
    {"google", "gemini-2.5-flash", 0.30, 2.50, 0.03, -1},
    {"google", "gemini-2.5-flash-lite", 0.10, 0.40, 0.01, -1},
    {"google", "gemini-2.0-flash", 0.10, 0.40, 0.025, -1},
    {"google", "gemini-2.0-flash-lite", 0.075, 0.30, 0.075, -1},
    {"google", "gemini-1.5-pro", 1.25, 5.00, 0.3125, -1},
    {"google", "gemini-1.5-flash", 0.075, 0.30, 0.01875, -1},
    // Mistral ("-latest" and "-2411"-style suffixes fall back to these)
    {"mistral", "mistral-large", 2.00, 6.00, 2.00, -1},
    {"mistral", "mistral-medium", 0.40, 2.00, 0.40, -1},
    {"mistral", "mistral-small", 0.10, 0.30, 0.10, -1},
    {"mistral", "magistral-medium", 2.00, 5.00, 2.00, -1},
    {"mistral", "magistral-small", 0.50, 1.50, 0.50, -1},
    {"mistral", "codestral", 0.30, 0.90, 0.30, -1},
    {"mistral", "devstral-medium", 0.40, 2.00, 0.40, -1},
    {"mistral", "devstral-small", 0.10, 0.30, 0.10, -1},
    {"mistral", "ministral-8b", 0.10, 0.10, 0.10, -1},
    {"mistral", "ministral-3b", 0.04, 0.04, 0.04, -1},
    // Groq
    {"groq", "llama-3.3-70b-versatile", 0.59, 0.79, 0.59, -1},
    {"groq", "llama-3.1-8b-instant", 0.05, 0.08, 0.05, -1},
    {"groq", "openai/gpt-oss-120b", 0.15, 0.75, 0.075, -1},
    {"groq", "openai/gpt-oss-20b", 0.10, 0.50, 0.05, -1},
    {"groq", "meta-llama/llama-4-scout-17b-16e-instruct", 0.11, 0.34, 0.11, -1},
    {"groq", "meta-llama/llama-4-maverick-17b-128e-instruct", 0.20, 0.60, 0.20, -1},
    {"groq", "moonshotai/kimi-k2-instruct", 1.00, 3.00, 0.50, -1},
    {"groq", "qwen/qwen3-32b", 0.29, 0.59, 0.29, -1},
    // xAI
    {"xai", "grok-4", 3.00, 15.00, 0.75, -1},
    {"xai", "grok-4-fast-reasoning", 0.20, 0.50, 0.05, -1},
    {"xai", "grok-4-fast-non-reasoning", 0.20, 0.50, 0.05, -1},
    {"xai", "grok-code-fast-1", 0.20, 1.50, 0.02, -1},
    {"xai", "grok-3", 3.00, 15.00, 0.75, -1},
    {"xai", "grok-3-mini", 0.30, 0.50, 0.075, -1},
    // DeepSeek (V3.2 prices; input = cache miss)
    {"deepseek", "deepseek-chat", 0.28, 0.42, 0.028, -1},
    {"deepseek", "deepseek-reasoner", 0.28, 0.42, 0.028, -1},
    // Together
    {"together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88, 0.88, -1},
    {"together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", 0.18, 0.18, 0.18, -1},
    {"together", "deepseek-ai/DeepSeek-V3", 1.25, 1.25, 1.25, -1},
    {"together", "deepseek-ai/DeepSeek-R1", 3.00, 7.00, 3.00, -1},
    {"together", "Qwen/Qwen2.5-72B-Instruct-Turbo", 1.20, 1.20, 1.20, -1},
    {"together", "openai/gpt-oss-120b", 0.15, 0.60, 0.15, -1},
    // Fireworks
    {"fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", 0.90, 0.90, 0.45, -1},
    {"fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct", 0.20, 0.20, 0.10, -1},
    {"fireworks", "accounts/fireworks/models/deepseek-v3", 0.90, 0.90, 0.45, -1},
    {"fireworks", "accounts/fireworks/models/qwen3-235b-a22b", 0.22, 0.88, 0.11, -1},
    {"fireworks", "accounts/fireworks/models/gpt-oss-120b", 0.15, 0.60, 0.075, -1},
    // Cerebras
    {"cerebras", "llama3.1-8b", 0.10, 0.10, 0.10, -1},
    {"cerebras", "llama-3.3-70b", 0.85, 1.20, 0.85, -1},
    {"cerebras", "gpt-oss-120b", 0.25, 0.69, 0.25, -1},
    {"cerebras", "qwen-3-32b", 0.40, 0.80, 0.40, -1},
};

std::int64_t micro(double usd) { return std::llround(usd * 1e6); }

// What one call of a tool the provider runs itself costs, in picodollars (the table's unit per
// token), by provider: the dearest of its paid tools' list prices (Anthropic web search $10 per
// 1,000; OpenAI's web search up to $25 per 1,000, a code interpreter container $0.03; Google's
// grounding $35 per 1,000 grounded prompts). Any other provider, and a model priced for every provider, gets the dearest of them.
std::int64_t server_tool_fee(std::string_view provider) {
  constexpr std::int64_t per_call_usd_to_pico = 1'000'000'000'000;
  if (provider == "anthropic") return per_call_usd_to_pico / 100;          // $0.01
  if (provider == "openai") return per_call_usd_to_pico * 3 / 100;         // $0.03 (a code interpreter container)
  return per_call_usd_to_pico * 35 / 1000;                                 // $0.035
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// One version suffix off the end, or nullopt: "@anything" (Vertex), "-latest", "-2025-08-07",
// "-20250514", "-0709"/"-2411" (xAI, Mistral, OpenAI's old snapshots), "-001" (Gemini).
std::optional<std::string> strip_version(std::string_view name) {
  if (auto at = name.find('@'); at != std::string_view::npos && at > 0) return std::string(name.substr(0, at));
  if (name.ends_with("-latest") && name.size() > 7) return std::string(name.substr(0, name.size() - 7));
  if (name.size() > 11) {
    auto tail = name.substr(name.size() - 11);  // -YYYY-MM-DD
    if (tail[0] == '-' && all_digits(tail.substr(1, 4)) && tail[5] == '-' && all_digits(tail.substr(6, 2)) &&
        tail[8] == '-' && all_digits(tail.substr(9, 2)))
      return std::string(name.substr(0, name.size() - 11));
  }
  auto dash = name.rfind('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  auto tail = name.substr(dash + 1);
  if (all_digits(tail) && (tail.size() == 8 || tail.size() == 4 || tail.size() == 3)) return std::string(name.substr(0, dash));
  return std::nullopt;
}

// Names to try, most specific first.
std::vector<std::string> candidates(std::string_view model) {
  std::vector<std::string> out;
  auto add_with_versions = [&](std::string name) {
    for (int i = 0; i < 4 && !name.empty(); ++i) {
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
      auto next = strip_version(name);
      if (!next) break;
      name = std::move(*next);
    }
  };
  std::string name = lower(model);
  add_with_versions(name);
  if (auto slash = name.rfind('/'); slash != std::string::npos) add_with_versions(name.substr(slash + 1));
  // OpenRouter spells Anthropic versions with dots: anthropic/claude-sonnet-4.5.
  auto base = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  if (base.find('.') != std::string::npos && base.starts_with("claude")) {
    std::replace(base.begin(), base.end(), '.', '-');
    add_with_versions(base);
  }
  return out;
}

}  // namespace

namespace {

std::vector<PricedModel> updates_or_warn(const Config& config) {
  if (config.pricing_update_file.empty()) return {};
  auto loaded = load_price_updates(config.pricing_update_file);
  if (loaded) return std::move(*loaded);
  // Only `tokfence pricing update` writes the file, after validating it; a damaged one costs the
  // updated prices (those models fall back to the embedded table or count as unknown, which a
  // budget refuses), never a daemon start.
  std::cerr << "tokfence: warning: " << loaded.error().message << ": ignored (run 'tokfence pricing update --from FILE')\n";
  return {};
}

}  // namespace

PricingTable::PricingTable(const Config& config) : PricingTable(config, updates_or_warn(config)) {}

PricingTable::PricingTable(const Config& config, const std::vector<PricedModel>& updates) {
  fallback_ = config.pricing_fallback;
  for (const auto& r : kRows) {
    ModelPrice p{micro(r.input), micro(r.output), micro(r.cache_read), r.cache_write < 0 ? micro(r.input) : micro(r.cache_write)};
    models_.push_back(PricedModel{r.provider, r.model, p});
  }
  // An updated price replaces the embedded entry of the same provider and name (an update for any
  // provider, every entry of that name), else adds one.
  for (const auto& u : updates) {
    auto key = lower(u.model);
    bool replaced = false;
    for (auto& m : models_) {
      if (lower(m.model) == key && (u.provider.empty() || m.provider == u.provider)) {
        m.price = u.price;
        replaced = true;
      }
    }
    if (!replaced) models_.push_back(u);
  }
  // An override replaces every embedded entry of that name (whatever the provider), else adds one
  // that any provider may use.
  for (const auto& [name, price] : config.pricing_overrides) {
    auto key = lower(name);
    bool replaced = false;
    for (auto& m : models_) {
      if (lower(m.model) == key) {
        m.price = price;
        replaced = true;
      }
    }
    if (!replaced) models_.push_back(PricedModel{"", name, price});
  }
  std::stable_sort(models_.begin(), models_.end(), [](const PricedModel& a, const PricedModel& b) {
    return a.provider != b.provider ? a.provider < b.provider : a.model < b.model;
  });
  for (std::size_t i = 0; i < models_.size(); ++i) index_.emplace(lower(models_[i].model), i);
  for (auto& m : models_)
    if (m.price.tool_call < 0) m.price.tool_call = server_tool_fee(m.provider);
  if (fallback_ && fallback_->tool_call < 0) fallback_->tool_call = server_tool_fee("");
}

std::optional<ModelPrice> PricingTable::pick(std::string_view provider, std::string_view name) const {
  auto [begin, end] = index_.equal_range(name);
  if (begin == end) return std::nullopt;
  // The provider's own entry, then a config addition, then whoever has the name.
  const PricedModel* any = nullptr;
  const PricedModel* custom = nullptr;
  for (auto it = begin; it != end; ++it) {
    const auto& m = models_[it->second];
    if (m.provider == provider) return m.price;
    if (m.provider.empty() && !custom) custom = &m;
    if (!any) any = &m;
  }
  return custom ? custom->price : any->price;
}

std::optional<ModelPrice> PricingTable::find(std::string_view provider, std::string_view model) const {
  if (model.empty()) return std::nullopt;
  // Most requests name a model exactly as the table does: found without building the candidate
  // list (allocations on every request, up to three look-ups each).
  const bool lowercase = std::none_of(model.begin(), model.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
  if (lowercase)
    if (auto exact = pick(provider, model)) return exact;
  // The first candidate is the model name lowercased: already looked up when it was lowercase.
  auto names = candidates(model);
  for (std::size_t i = lowercase ? 1 : 0; i < names.size(); ++i)
    if (auto price = pick(provider, names[i])) return price;
  return std::nullopt;
}

bool answered_by_another_model(std::string_view asked, std::string_view answered) {
  if (asked.empty() || answered.empty() || asked == answered) return false;  // the usual case: no allocation
  const auto a = candidates(asked), b = candidates(answered);
  return std::none_of(a.begin(), a.end(), [&](const std::string& name) { return std::find(b.begin(), b.end(), name) != b.end(); });
}

bool same_token_prices(const ModelPrice& a, const ModelPrice& b) {
  return a.input == b.input && a.output == b.output && a.cache_read == b.cache_read && a.cache_write == b.cache_write;
}

std::optional<ModelPrice> PricingTable::dearest() const {
  std::optional<ModelPrice> out;
  for (const auto& m : models_)
    if (!out || m.price.output > out->output || (m.price.output == out->output && m.price.input > out->input)) out = m.price;
  return out;
}

std::vector<PricedModel> PricingTable::models_of(std::string_view provider) const {
  std::vector<PricedModel> out;
  for (const auto& m : models_)
    if (m.provider == provider) out.push_back(m);
  return out;
}

Picodollars cost_of(const ModelPrice& price, const Usage& usage) {
  // 128-bit so that absurd token counts saturate instead of wrapping.
  __int128 total = static_cast<__int128>(usage.input_tokens) * price.input +
                   static_cast<__int128>(usage.output_tokens) * price.output +
                   static_cast<__int128>(usage.cache_read_tokens) * price.cache_read +
                   static_cast<__int128>(usage.cache_write_tokens) * price.cache_write +
                   static_cast<__int128>(usage.tool_calls) * std::max<std::int64_t>(0, price.tool_call);
  constexpr auto max = std::numeric_limits<Picodollars>::max();
  constexpr auto min = std::numeric_limits<Picodollars>::min();
  if (total > max) return max;
  if (total < min) return min;
  return static_cast<Picodollars>(total);
}

// ---- pricing update ----------------------------------------------------------------------------

namespace {

using json = nlohmann::json;

// LiteLLM's provider names -> tokfence's built-in providers. Others keep provider "" (any).
std::string tokfence_provider(std::string_view litellm) {
  static const std::pair<const char*, const char*> kMap[] = {
      {"openai", "openai"},       {"text-completion-openai", "openai"}, {"anthropic", "anthropic"},
      {"gemini", "google"},       {"mistral", "mistral"},               {"codestral", "mistral"},
      {"groq", "groq"},           {"xai", "xai"},                       {"deepseek", "deepseek"},
      {"together_ai", "together"}, {"fireworks_ai", "fireworks"},       {"cerebras", "cerebras"},
      {"openrouter", "openrouter"}};
  for (const auto& [from, to] : kMap)
    if (litellm == from) return to;
  return {};
}

constexpr std::int64_t kMaxMicroPerMillion = 1'000'000LL * 1'000'000LL;  // $1 per token

// USD per token (a JSON number) -> micro-dollars per million tokens.
Result<std::int64_t> per_token_price(const json& entry, const std::string& name, const char* field) {
  const json& v = entry.at(field);
  if (!v.is_number()) return fail("pricing: entry \"" + name + "\": " + field + " must be a number (USD per token)");
  double usd = v.get<double>();
  if (!std::isfinite(usd) || usd < 0 || usd > 1.0)
    return fail("pricing: entry \"" + name + "\": " + field + " must be between 0 and 1 (USD per token)");
  return static_cast<std::int64_t>(std::llround(usd * 1e12));
}

}  // namespace

Result<PriceUpdate> parse_litellm_prices(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return fail("pricing: not valid JSON (expected LiteLLM's model_prices_and_context_window.json)");
  if (!root.is_object()) return fail("pricing: expected a JSON object of model name -> prices (LiteLLM's format)");
  PriceUpdate out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& [name, entry] : root.items()) {
    if (name == "sample_spec") continue;  // LiteLLM's documentation entry
    if (!entry.is_object()) return fail("pricing: entry \"" + name + "\": must be an object");
    std::string mode = entry.contains("mode") && entry["mode"].is_string() ? entry["mode"].get<std::string>() : "";
    if (!mode.empty() && mode != "chat" && mode != "completion" && mode != "responses" && mode != "embedding") {
      ++out.skipped;
      continue;
    }
    const bool has_input = entry.contains("input_cost_per_token");
    const bool has_output = entry.contains("output_cost_per_token");
    if (!has_input || (!has_output && mode != "embedding")) {
      ++out.skipped;
      continue;
    }
    std::string litellm = entry.contains("litellm_provider") && entry["litellm_provider"].is_string()
                              ? entry["litellm_provider"].get<std::string>()
                              : "";
    std::string provider = tokfence_provider(litellm);
    std::string model = name;
    if (!provider.empty() && model.starts_with(litellm + "/")) model.erase(0, litellm.size() + 1);
    if (provider.empty() && model.find('/') != std::string::npos) {
      ++out.skipped;  // another cloud's name for a model (azure/..., bedrock/...)
      continue;
    }
    if (model.empty() || model.size() > 200) return fail("pricing: entry \"" + name + "\": model name must be 1-200 characters");
    ModelPrice p;
    auto input = per_token_price(entry, name, "input_cost_per_token");
    if (!input) return std::unexpected(input.error());
    p.input = *input;
    if (has_output) {
      auto output = per_token_price(entry, name, "output_cost_per_token");
      if (!output) return std::unexpected(output.error());
      p.output = *output;
    }
    p.cache_read = p.cache_write = p.input;
    if (entry.contains("cache_read_input_token_cost") && !entry["cache_read_input_token_cost"].is_null()) {
      auto v = per_token_price(entry, name, "cache_read_input_token_cost");
      if (!v) return std::unexpected(v.error());
      p.cache_read = *v;
    }
    if (entry.contains("cache_creation_input_token_cost") && !entry["cache_creation_input_token_cost"].is_null()) {
      auto v = per_token_price(entry, name, "cache_creation_input_token_cost");
      if (!v) return std::unexpected(v.error());
      p.cache_write = *v;
    }
    // Two entries for the same provider and name (a prefixed and a plain one): the first wins.
    if (!seen.emplace(provider, lower(model)).second) continue;
    out.models.push_back(PricedModel{provider, model, p});
  }
  if (out.models.empty()) return fail("pricing: no per-token prices in the file (expected LiteLLM's format)");
  std::sort(out.models.begin(), out.models.end(), [](const PricedModel& a, const PricedModel& b) {
    return a.provider != b.provider ? a.provider < b.provider : a.model < b.model;
  });
  return out;
}

std::string serialize_price_updates(const std::vector<PricedModel>& models) {
  json list = json::array();
  for (const auto& m : models)
    list.push_back(json{{"provider", m.provider},
                        {"model", m.model},
                        {"input", m.price.input},
                        {"output", m.price.output},
                        {"cache_read", m.price.cache_read},
                        {"cache_write", m.price.cache_write}});
  json root{{"format", "tokfence-pricing"}, {"version", 1}, {"unit", "micro-USD per million tokens"}, {"models", list}};
  return root.dump(1) + "\n";
}

Result<std::vector<PricedModel>> parse_price_updates(std::string_view text) {
  json root = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!root.is_object() || root.value("format", "") != "tokfence-pricing" || !root.contains("models") ||
      !root["models"].is_array())
    return fail("pricing: not a tokfence pricing table");
  std::vector<PricedModel> out;
  for (const auto& m : root["models"]) {
    auto price = [&](const char* k) -> std::optional<std::int64_t> {
      if (!m.contains(k) || !m[k].is_number_integer()) return std::nullopt;
      auto v = m[k].get<std::int64_t>();
      if (v < 0 || v > kMaxMicroPerMillion) return std::nullopt;
      return v;
    };
    auto in = price("input"), outp = price("output"), cr = price("cache_read"), cw = price("cache_write");
    if (!m.is_object() || !m.contains("model") || !m["model"].is_string() || !m.contains("provider") ||
        !m["provider"].is_string() || !in || !outp || !cr || !cw || m["model"].get<std::string>().empty())
      return fail("pricing: malformed entry in the pricing table");
    out.push_back(PricedModel{m["provider"].get<std::string>(), m["model"].get<std::string>(), ModelPrice{*in, *outp, *cr, *cw}});
  }
  return out;
}

Result<std::vector<PricedModel>> load_price_updates(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return std::vector<PricedModel>{};
    return fail("pricing: cannot read " + path.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = parse_price_updates(ss.str());
  if (!parsed) return fail(path.string() + ": " + parsed.error().message);
  return parsed;
}

}  // namespace tokfence::proxy
