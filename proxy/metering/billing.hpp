#pragma once
// Metering: how a request is paid for. Decided before the request is forwarded (which endpoint,
// which price, what it may cost) and settled when it ends (from its usage, or from the estimate
// when the usage never came). The rule that holds it together: while a budget applies, every
// admitted request is paid for. A request that ends without usage after it reached the upstream
// is charged its estimate, never $0; a model without a price is refused (or charged the
// [pricing] fallback); an endpoint whose cost is not in a usage field is refused. docs/CONTROLS.md
// ("Every request is paid for") describes the rules; these functions are pure, for unit tests.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/usage.hpp"

namespace tokfence::proxy {

// How an endpoint is billed.
enum class EndpointCost {
  tokens,     // billed by tokens, reported in a usage field (chat, responses, messages, embeddings, ...)
  free,       // not billed (model listings, token counting, the HEAD clients send first)
  unmetered,  // billed in ways tokfence cannot see (batches, fine-tuning, images, audio, files, ...)
};

// `path` is what follows /<provider> (query allowed); `allowed_paths` are the provider's
// [providers.<name>] budget_allowed_paths (path suffixes, billed as tokens, any method).
EndpointCost endpoint_cost(ApiKind kind, std::string_view method, std::string_view path,
                           const std::vector<std::string>& allowed_paths);

// A request's tokens as far as they can be told before it runs: input from the body size, output
// from max_tokens (or its variants), else the provider's default_max_output_tokens.
Usage estimate_usage(const RequestInfo& info, std::int64_t default_max_output_tokens);

// The price budgets use for a model: the table's, else the [pricing] fallback, else nullopt.
std::optional<ModelPrice> price_for(const PricingTable& table, std::string_view provider, std::string_view model);

// Where a request log row's cost comes from (column cost_source).
enum class CostSource {
  usage,     // the response's usage at the model's price
  estimate,  // no (complete) usage although the upstream got the request: the admission estimate
  none,      // nothing billed: the request never reached the upstream, or the provider refused it
  free,      // an endpoint that is not billed
  unpriced,  // no price for the model (and no budget applied): cost unknown (NULL)
};
std::string_view to_string(CostSource source);

// How the exchange with the upstream ended.
enum class ExchangeEnd {
  not_sent,  // the request was never (completely) written to the upstream
  complete,  // the response arrived whole and was relayed whole
  cut,       // sent, but the response was cut: client gone, upstream reset, timeout, malformed
};

struct Settlement {
  std::optional<Picodollars> cost;  // nullopt = unknown (CostSource::unpriced)
  CostSource source = CostSource::none;
};

// The cost to settle. `status` is the upstream's status (0 when none). A complete response with
// usage costs its usage; a complete 2xx response without usage, or any cut one, costs at least its
// `estimate` (a cut one may have been billed further than the usage seen so far); a complete
// non-2xx response without usage and an unsent request cost 0.
Settlement settle_cost(const std::optional<ModelPrice>& price, EndpointCost endpoint, const Usage& usage,
                       const Usage& estimate, ExchangeEnd end, int status);

// Whether `body` is one JSON object (validated, not built). Used only while a budget applies: a
// body tokfence cannot read could ask for anything of the upstream.
bool is_json_object(std::string_view body);

}  // namespace tokfence::proxy
