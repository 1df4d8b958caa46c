// Metering decisions (see metering.hpp): the endpoint allow-list, estimates, settlement.
#include "proxy/metering/billing.hpp"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

namespace tokfence::proxy {
namespace {

std::string_view route_path(std::string_view path) {
  path = path.substr(0, path.find('?'));
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// GET .../models and GET .../models/<id> (OpenAI, Anthropic, Gemini).
bool is_model_listing(std::string_view path) {
  if (ends_with(path, "/models")) return true;
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  std::string_view parent = path.substr(0, slash);
  std::string_view id = path.substr(slash + 1);
  // A model id, not an action on one (":generateContent" and friends are POSTs anyway).
  return ends_with(parent, "/models") && !id.empty() && id.find(':') == std::string_view::npos;
}

}  // namespace

EndpointCost endpoint_cost(ApiKind kind, std::string_view method, std::string_view path,
                           const std::vector<std::string>& allowed_paths) {
  const std::string_view p = route_path(path);
  for (const auto& allowed : allowed_paths) {
    std::string_view a = route_path(allowed);
    if (!a.empty() && ends_with(p, a)) return EndpointCost::tokens;
  }
  if (method == "HEAD") {
    // Claude Code sends HEAD <base URL> before its first request; nothing runs for it.
    return p.empty() || p == "/" || p == "/v1" ? EndpointCost::free : EndpointCost::unmetered;
  }
  if (method == "GET") return is_model_listing(p) ? EndpointCost::free : EndpointCost::unmetered;
  if (method != "POST") return EndpointCost::unmetered;
  // Counting tokens is free (Anthropic, OpenAI Responses, Gemini).
  if (ends_with(p, "/messages/count_tokens") || ends_with(p, "/responses/input_tokens") || ends_with(p, ":countTokens"))
    return EndpointCost::free;
  switch (kind) {
    case ApiKind::openai_chat:
    case ApiKind::openai_responses:
    case ApiKind::anthropic_messages:
    case ApiKind::gemini: return EndpointCost::tokens;
    case ApiKind::other: break;
  }
  // Legacy completions and embeddings report usage the way chat does.
  if (ends_with(p, "/completions") || ends_with(p, "/embeddings")) return EndpointCost::tokens;
  return EndpointCost::unmetered;
}

Usage estimate_usage(const RequestInfo& info, std::int64_t default_max_output_tokens) {
  Usage estimate;
  estimate.input_tokens = std::max<std::int64_t>(0, info.estimated_input_tokens);
  estimate.tool_calls = std::max<std::int64_t>(0, info.tool_calls);
  const std::int64_t per_answer =
      info.max_output_tokens > 0 ? info.max_output_tokens : std::max<std::int64_t>(0, default_max_output_tokens);
  // Saturates rather than overflows: max_tokens is whatever the client wrote.
  const std::int64_t choices = std::clamp<std::int64_t>(info.choices, 1, kMaxEstimatedChoices);
  estimate.output_tokens = per_answer > std::numeric_limits<std::int64_t>::max() / choices
                               ? std::numeric_limits<std::int64_t>::max()
                               : per_answer * choices;
  return estimate;
}

std::optional<ModelPrice> price_for(const PricingTable& table, std::string_view provider, std::string_view model) {
  if (auto price = table.find(provider, model)) return price;
  return table.fallback();
}

std::string_view to_string(CostSource source) {
  switch (source) {
    case CostSource::usage: return "usage";
    case CostSource::estimate: return "estimate";
    case CostSource::none: return "none";
    case CostSource::free: return "free";
    case CostSource::unpriced: return "unpriced";
  }
  return "unpriced";
}

Settlement settle_cost(const std::optional<ModelPrice>& price, EndpointCost endpoint, const Usage& usage,
                       const Usage& estimate, ExchangeEnd end, int status) {
  if (endpoint == EndpointCost::free) return {0, CostSource::free};
  if (end == ExchangeEnd::not_sent) return {0, CostSource::none};
  if (!price) return {std::nullopt, CostSource::unpriced};
  const Picodollars estimated = cost_of(*price, estimate);
  if (end == ExchangeEnd::complete) {
    if (usage.found) return {cost_of(*price, usage), CostSource::usage};
    // Providers do not bill the errors they answer (400, 401, 429, 5xx); a whole 2xx answer
    // without usage (a stream asked without it, a reply too big to read) was billed.
    if (status < 200 || status >= 300) return {0, CostSource::none};
    return {estimated, CostSource::estimate};
  }
  // Cut short: the upstream may have gone on generating (and billing) past what was seen, and a
  // stream's usage may have been partial (Anthropic's message_start), so at least the estimate.
  if (usage.found) {
    const Picodollars seen = cost_of(*price, usage);
    if (seen >= estimated) return {seen, CostSource::usage};
  }
  return {estimated, CostSource::estimate};
}

bool is_json_object(std::string_view body) {
  auto first = body.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || body[first] != '{') return false;
  return nlohmann::json::accept(body.begin(), body.end());
}

}  // namespace tokfence::proxy
