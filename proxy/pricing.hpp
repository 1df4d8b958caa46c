#pragma once
// Pricing: an embedded table of current models (USD per million tokens, stored as micro-dollars
// per million), overridable by [pricing."<model>"]. Costs are exact integers in pico-dollars
// (tokens x micro-dollars-per-million): never rounded, and an unknown price is "unknown", not $0.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "proxy/usage.hpp"

namespace tokfence::proxy {

using Picodollars = std::int64_t;

struct PricedModel {
  std::string provider;  // built-in provider it belongs to ("" = any)
  std::string model;
  ModelPrice price;
};

class PricingTable {
 public:
  // The embedded table plus `config.pricing_overrides`.
  explicit PricingTable(const Config& config);
  // Exact name first, then the name with a date suffix removed (-20250514, -2025-08-07, @...),
  // then a provider prefix removed ("openai/gpt-4o" on openrouter).
  std::optional<ModelPrice> find(std::string_view provider, std::string_view model) const;
  const std::vector<PricedModel>& models() const { return models_; }
  // Models of one provider, for rendering client configs (launch, harness).
  std::vector<PricedModel> models_of(std::string_view provider) const;

 private:
  std::vector<PricedModel> models_;
  // The price for `name` (lowercased, exact) by the rules of find(), or nullopt.
  std::optional<ModelPrice> pick(std::string_view provider, std::string_view name) const;
  std::multimap<std::string, std::size_t, std::less<>> index_;  // lowercased model name -> models_ index
};

Picodollars cost_of(const ModelPrice& price, const Usage& usage);
// "$0.000123" style: exact (down to the pico-dollar), trailing zeros dropped but cents kept
// ("$1.50", "$0.00000005"); "unknown" is the caller's job.
std::string format_usd(Picodollars cost);
// Parses "12.5" / "0.75" / "$3" (USD) into pico-dollars; nullopt for negative, non-numeric, more
// than 12 decimals, or absurd (above kMaxUsd).
std::optional<Picodollars> parse_usd(std::string_view text);
inline constexpr std::int64_t kMaxUsd = 1'000'000;

}  // namespace tokfence::proxy
