#pragma once
// Containment controls: kill switch, revoke, per-provider RPM limits, budgets with in-flight
// reservations. One instance per daemon; admit() and settle() are called from any I/O thread and
// are cheap (a mutex and a few map look-ups, no I/O); persistence happens off the request path.
//
// Check order on admit: kill (503 tokfence_killed) -> revoked (403 tokfence_provider_revoked) ->
// rate limit (429 tokfence_rate_limited, Retry-After) -> budgets (429 tokfence_budget_exceeded with
// limit/spent/resets_at, Retry-After at the reset).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/metering/billing.hpp"
#include "proxy/metering/pricing.hpp"

namespace tokfence::proxy {

struct AdmitRequest {
  std::string provider;
  std::string model;
  // Estimate reserved against budgets until settle(); nullopt = the model has no known price.
  std::optional<Picodollars> estimated_cost;
  std::int64_t estimated_tokens = 0;
  // How the endpoint is billed, and whether the body could be read (checked only while a budget
  // applies): while one does, unmetered endpoints, unreadable bodies and token requests without a
  // price are refused (docs/CONTROLS.md, "Every request is paid for").
  EndpointCost endpoint = EndpointCost::tokens;
  bool body_unreadable = false;
  bool usage_comes_later = false;  // RequestInfo::background: refused while a budget applies
  // The request's own session has a budget (immune::Limits::budget_daily_pico): the refusals of what
  // cannot be paid for apply as they do under a global or provider budget, else an unpriced model or
  // a background request would be free against it.
  bool session_budget = false;
  std::string method, path;  // for the refusal's message
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

class Controls;

// Settles a reservation exactly once: by settle(), or, if the request path is left another way
// (an exception, a coroutine destroyed at shutdown), at `if_abandoned` when destroyed, so that an
// abandoned request neither keeps its reservation forever nor costs nothing. Moving a guard moves
// the duty: the moved-from guard settles nothing.
class ReservationGuard {
 public:
  ReservationGuard(Controls& controls, Reservation reservation, std::optional<Picodollars> if_abandoned)
      : controls_(&controls), reservation_(reservation), if_abandoned_(if_abandoned) {}
  ReservationGuard(ReservationGuard&& other) noexcept;
  // Settles this guard's reservation (as abandoned) before taking `other`'s.
  ReservationGuard& operator=(ReservationGuard&& other) noexcept;
  ReservationGuard(const ReservationGuard&) = delete;
  ReservationGuard& operator=(const ReservationGuard&) = delete;
  ~ReservationGuard();
  // Settles at `actual_cost` (nullopt = unknown price); later calls do nothing.
  void settle(std::optional<Picodollars> actual_cost, std::int64_t tokens);

 private:
  // Settles at if_abandoned_ unless settled; never throws.
  void abandon() noexcept;

  Controls* controls_;
  Reservation reservation_;
  std::optional<Picodollars> if_abandoned_;
  bool settled_ = false;
};

class Controls {
 public:
  virtual ~Controls() = default;
  virtual std::variant<Reservation, Refusal> admit(const AdmitRequest& request) = 0;
  // `actual_cost` nullopt = unknown price; tokens are still counted.
  virtual void settle(Reservation reservation, std::optional<Picodollars> actual_cost, std::int64_t tokens) = 0;
  // Whether a budget (the provider's or the global one) is set: the proxy then checks what it
  // otherwise leaves to the upstream (a body it cannot read).
  virtual bool budget_applies(std::string_view provider) const = 0;
  // Whether the kill switch is on: the forward proxy refuses new egress and cuts live tunnels.
  virtual bool killed() const = 0;
  // Registers the control ops (revoke, restore, kill, unkill, budget_*, ratelimit_*, controls_status).
  virtual void register_ops(ControlRouter& router) = 0;
  // For `tokfence status`: kill state, revoked providers, budgets, rate limits, warnings.
  virtual nlohmann::json status() const = 0;
};

// Controls::admit(), with an admitted request's reservation in a guard that settles it at the
// request's estimated cost unless it is settled otherwise.
std::variant<ReservationGuard, Refusal> admit_guarded(Controls& controls, const AdmitRequest& request);

// State is loaded from and stored in the SQLite database at config.logging.db_path.
Result<std::unique_ptr<Controls>> make_controls(const Config& config);

// ---- Additions (controls helper): clock injection, offline changes, shared validation ----------
// (docs/CONTROLS.md describes the semantics, tables and the test-only clock override.)

// Unix time in milliseconds. Controls read time only through this, so tests can roll windows over.
using Clock = std::function<std::int64_t()>;

// The system clock, shifted by TOKFENCE_TEST_NOW_OFFSET_SECONDS (read once, when set) and by the
// number of seconds in the file named by TOKFENCE_TEST_NOW_OFFSET_FILE (re-read on each call, when
// set). Both are for tests only: with neither set this is the plain system clock.
Clock default_clock();

struct ControlsOptions {
  Clock clock;                     // empty = default_clock()
  // Budget warnings (log line, controls_warnings row, notify-send) run on a background thread.
  // Off for one-shot CLI use, where nobody would see them and the daemon warns at its next start.
  bool warnings = true;
  // Called (on the background thread) with each warning line; empty = write it to stderr.
  std::function<void(const std::string&)> warning_sink;
};

Result<std::unique_ptr<Controls>> make_controls(const Config& config, ControlsOptions options);

// Applies one control op (the same JSON the control socket takes, e.g. {"op":"kill"}) straight to
// the database, for when no daemon runs. Validation and results are those of the daemon's op.
Result<nlohmann::json> apply_control_offline(const Config& config, const nlohmann::json& request,
                                             Clock clock = {});

// Validation shared by the CLI and the control ops. Errors name the accepted form.
// "5", "12.50", "0.000001" US dollars -> pico-dollars; > 0 and <= 1,000,000.
Result<Picodollars> parse_budget_amount(std::string_view text);
// A whole number 1..100000.
Result<int> parse_rpm(std::string_view text);
inline constexpr int kMaxRpm = 100000;
// A budget scope: "global" or a provider known to `config`.
Result<void> check_budget_scope(const Config& config, std::string_view scope);
// A provider known to `config` (built-in or [providers.*]).
Result<void> check_known_provider(const Config& config, std::string_view provider);

}  // namespace tokfence::proxy
