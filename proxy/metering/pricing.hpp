#pragma once
// Pricing: an embedded table of current models (USD per million tokens, stored as micro-dollars
// per million), overridable by [pricing."<model>"]. Costs are exact integers in pico-dollars
// (tokens x micro-dollars-per-million): never rounded, and an unknown price is "unknown", not $0.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/money.hpp"
#include "proxy/metering/usage.hpp"

namespace tokfence::proxy {

struct PricedModel {
  std::string provider;  // built-in provider it belongs to ("" = any)
  std::string model;
  ModelPrice price;
};

// Whether an upstream that was asked for model `asked` and says it answered with `answered` used
// another model, not the one asked for or a snapshot of it: the names share no look-up name of
// PricingTable::find (case, a date or -latest suffix, a provider prefix aside). "gpt-4o" answered
// by "gpt-4o-2024-08-06" is the same; "openai/gpt-4o-mini" answered by "openai/gpt-4-32k" (a
// gateway's fallback list, review 15a O1) is another. False when either name is empty.
bool answered_by_another_model(std::string_view asked, std::string_view answered);

// Whether two prices charge the same per token (input, output, cache read and write), whatever
// their per-call fees: `tokfence pricing update` compares a LiteLLM entry (no fee) with the table's.
bool same_token_prices(const ModelPrice& a, const ModelPrice& b);

class PricingTable {
 public:
  // The embedded table, then the `tokfence pricing update` table (config.pricing_update_file, when
  // it exists; an unreadable one is reported on stderr and ignored), then `config.pricing_overrides`.
  explicit PricingTable(const Config& config);
  // The same with `updates` in place of the file's content.
  PricingTable(const Config& config, const std::vector<PricedModel>& updates);
  // [pricing] fallback: the price of models the table does not know (for budgets), or nullopt.
  const std::optional<ModelPrice>& fallback() const { return fallback_; }
  // Exact name first, then the name with a date suffix removed (-20250514, -2025-08-07, @...),
  // then a provider prefix removed ("openai/gpt-4o" on openrouter).
  std::optional<ModelPrice> find(std::string_view provider, std::string_view model) const;
  const std::vector<PricedModel>& models() const { return models_; }
  // The dearest price in the table (by output, then input): what an answer from a model the table
  // does not know is charged when it is not the model asked for (see answered_by_another_model).
  std::optional<ModelPrice> dearest() const;
  // Models of one provider, for rendering client configs (launch, harness).
  std::vector<PricedModel> models_of(std::string_view provider) const;

 private:
  std::vector<PricedModel> models_;
  // The price for `name` (lowercased, exact) by the rules of find(), or nullopt.
  std::optional<ModelPrice> pick(std::string_view provider, std::string_view name) const;
  std::multimap<std::string, std::size_t, std::less<>> index_;  // lowercased model name -> models_ index
  std::optional<ModelPrice> fallback_;
};

// The daemon's current table, swapped as a whole by the `pricing_reload` control op; readers keep
// the snapshot they took (a request is priced by one table from admission to settlement).
class LivePricing {
 public:
  explicit LivePricing(std::shared_ptr<const PricingTable> table) : table_(std::move(table)) {}
  std::shared_ptr<const PricingTable> snapshot() const {
    std::lock_guard lock(mutex_);
    return table_;
  }
  void replace(std::shared_ptr<const PricingTable> table) {
    std::lock_guard lock(mutex_);
    table_ = std::move(table);
  }
  std::optional<ModelPrice> find(std::string_view provider, std::string_view model) const {
    return snapshot()->find(provider, model);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const PricingTable> table_;
};

// ---- `tokfence pricing update`: LiteLLM's model_prices_and_context_window.json ----------------

struct PriceUpdate {
  std::vector<PricedModel> models;  // sorted by provider, then model
  std::size_t skipped = 0;          // entries not priced per token (images, audio, ...) or of other clouds
};

// Parses LiteLLM's format: an object of model name -> {input_cost_per_token, output_cost_per_token,
// cache_read_input_token_cost, cache_creation_input_token_cost, litellm_provider, mode} (USD per
// token). litellm_provider maps to tokfence's provider names (gemini -> google, together_ai ->
// together, ...) and a "<that provider>/" prefix is dropped from the name. Entries without both
// token prices, of a mode other than chat/completion/responses/embedding, or of a provider
// tokfence does not know under a prefixed name are skipped. A price that is not a number, negative
// or above $1 per token is an error naming the entry; so is a file without a single usable entry.
Result<PriceUpdate> parse_litellm_prices(std::string_view text);

// The update file's own format: {"format":"tokfence-pricing","version":1,"models":[{provider,
// model, input, output, cache_read, cache_write}]} with micro-dollars per million tokens.
std::string serialize_price_updates(const std::vector<PricedModel>& models);
Result<std::vector<PricedModel>> parse_price_updates(std::string_view text);
// Reads `path`; a missing file is an empty table.
Result<std::vector<PricedModel>> load_price_updates(const std::filesystem::path& path);

Picodollars cost_of(const ModelPrice& price, const Usage& usage);

}  // namespace tokfence::proxy
