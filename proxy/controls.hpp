#pragma once
// Containment controls: kill switch, revoke, per-provider RPM limits, budgets with in-flight
// reservations. One instance per daemon; admit() and settle() are called from any I/O thread and
// are cheap (a mutex and a few map look-ups, no I/O); persistence happens off the request path.
//
// Check order on admit: kill (503 tokfence_killed) -> revoked (403 tokfence_provider_revoked) ->
// rate limit (429 tokfence_rate_limited, Retry-After) -> budgets (429 tokfence_budget_exceeded with
// limit/spent/resets_at, Retry-After at the reset).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "proxy/control_protocol.hpp"
#include "proxy/pricing.hpp"

namespace tokfence::proxy {

struct AdmitRequest {
  std::string provider;
  std::string model;
  // Estimate reserved against budgets until settle(); nullopt = the model has no known price.
  std::optional<Picodollars> estimated_cost;
  std::int64_t estimated_tokens = 0;
};

struct Refusal {
  int status = 403;
  std::string type;      // tokfence_killed, tokfence_provider_revoked, ...
  std::string message;
  nlohmann::json extra;  // merged into the error object (limit, spent, resets_at, ...)
  std::optional<int> retry_after_seconds;
};

// Handed out by admit(); settle exactly once (the proxy does so on every path, including client
// disconnect and upstream failure).
struct Reservation {
  std::uint64_t id = 0;
};

class Controls {
 public:
  virtual ~Controls() = default;
  virtual std::variant<Reservation, Refusal> admit(const AdmitRequest& request) = 0;
  // `actual_cost` nullopt = unknown price; tokens are still counted.
  virtual void settle(Reservation reservation, std::optional<Picodollars> actual_cost, std::int64_t tokens) = 0;
  // Registers the control ops (revoke, restore, kill, unkill, budget_*, ratelimit_*, controls_status).
  virtual void register_ops(ControlRouter& router) = 0;
  // For `tokfence status`: kill state, revoked providers, budgets, rate limits, warnings.
  virtual nlohmann::json status() const = 0;
};

// State is loaded from and stored in the SQLite database at config.logging.db_path.
Result<std::unique_ptr<Controls>> make_controls(const Config& config);

}  // namespace tokfence::proxy
