// Containment controls (see controls.hpp and docs/CONTROLS.md).
//
// Everything admit() and settle() need lives in memory behind one mutex: the kill flag, revoked
// providers, rate-limit logs, budgets, and a ledger per period (the current calendar day and
// month) with what each provider settled in it. The ledger is filled from the `requests` table at
// start and then kept by settle(), so setting a budget at run time needs no database read and the
// request path never touches the disk. Control ops write SQLite first and change memory only once
// the row is committed; warnings are written, logged and shown on a background thread.
//
// Budget accounting. A budget refuses a request when its scope's settled spend plus the estimates
// of the requests in flight reaches the limit, or would pass it with this request's estimate. One
// exception keeps budgets usable for requests with generous estimates: a request whose estimate
// does not fit is still admitted when nothing else of that scope is in flight (and the budget is
// not exhausted). So in-flight requests never jointly exceed the limit by more than one request,
// which bounds the overshoot by one request's cost as long as estimates are not too low. To keep
// low estimates from breaking that, the reserved amount is the larger of the request's estimate and
// the highest real cost among the last settled requests of the same provider and model.
//
// Costs count in the window in which the request started, as the request log records it
// (ts_ms = start), so a restart recomputes the same numbers.
#include "proxy/controls/controls.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/names.hpp"
#include "core/process.hpp"
#include "core/time.hpp"
#include "proxy/controls/store.hpp"
#include "proxy/controls/time_zone.hpp"
#include "proxy/controls/rate_limit.hpp"

extern char** environ;

namespace tokfence::proxy {

namespace {

using nlohmann::json;

constexpr Picodollars kMaxBudget = 1'000'000 * kPicoPerUsd;
constexpr std::size_t kLearnedModels = 4096;
constexpr std::int64_t kInFlightRetrySeconds = 5;

double usd_number(Picodollars p) { return static_cast<double>(p) / static_cast<double>(kPicoPerUsd); }

double percent_of(Picodollars spent, Picodollars limit) {
  if (limit <= 0) return 0;
  const double pct = static_cast<double>(spent) * 100.0 / static_cast<double>(limit);
  return std::round(pct * 10.0) / 10.0;
}

std::string sanitize(std::string_view text, std::size_t max = 40) {
  std::string out;
  for (char c : text.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > max) out += "...";
  return out;
}

std::string known_provider_list(const Config& config) {
  std::string out;
  for (const auto& p : config.providers()) out += (out.empty() ? "" : ", ") + p.name;
  return out;
}

// --- background work: warnings (database row, log line, notify-send) -----------------------------

class Worker {
 public:
  Worker() : thread_([this] { run(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // runs what is queued first
  }
  void post(std::function<void()> task) {
    {
      std::lock_guard lock(mutex_);
      if (queue_.size() >= 256) return;  // a flood of warnings is not worth unbounded memory
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// --- in-memory state -----------------------------------------------------------------------------

struct Tally {
  Picodollars cost = 0;
  std::int64_t unknown_cost_requests = 0;
  std::int64_t unknown_cost_tokens = 0;
};

struct Ledger {
  TimeWindow window;
  std::map<std::string, Tally> providers;
  Tally global;
  const Tally& of(const std::string& scope) const {
    static const Tally kNone;
    if (scope == "global") return global;
    auto it = providers.find(scope);
    return it == providers.end() ? kNone : it->second;
  }
};

struct Budget {
  StoredBudget stored;
  std::int64_t warned_window_start = INT64_MIN;  // the window whose warning already fired
};

struct InFlight {
  std::string provider;
  std::string model_key;
  std::int64_t start_ms = 0;
  Picodollars reserved = 0;
};

struct Learned {
  std::array<Picodollars, 8> recent{};
  std::size_t next = 0;
  Picodollars max() const { return *std::max_element(recent.begin(), recent.end()); }
};

std::size_t period_index(BudgetPeriod p) { return p == BudgetPeriod::daily ? 0 : 1; }

class ControlsImpl final : public Controls {
 public:
  ControlsImpl(const Config& config, TimeZone zone, Clock clock, std::unique_ptr<ControlsStore> store,
               ControlsOptions options)
      : config_(config),
        zone_(std::move(zone)),
        clock_(std::move(clock)),
        store_(std::move(store)),
        warnings_enabled_(options.warnings),
        warning_sink_(std::move(options.warning_sink)) {
    if (warnings_enabled_) worker_ = std::make_unique<Worker>();
  }

  ~ControlsImpl() override { worker_.reset(); }

  Result<void> load() {
    auto stored = store_->load();
    if (!stored) return std::unexpected(stored.error());
    const std::int64_t now = clock_();
    std::lock_guard lock(mutex_);
    killed_ = stored->killed;
    revoked_ = stored->revoked;
    rpm_ = stored->ratelimits;
    for (auto& [scope, b] : stored->budgets) budgets_[scope] = Budget{b};
    for (auto p : {BudgetPeriod::daily, BudgetPeriod::monthly}) {
      auto& ledger = ledgers_[period_index(p)];
      ledger.window = window_containing(zone_, p, now);
      if (auto ok = fill_from_log(ledger); !ok) return ok;
    }
    // Seed what requests of each model really cost, so that the first requests after a start do
    // not reserve less than they will spend.
    const std::int64_t skew = now - now_ms();
    if (auto seen = store_->max_cost_by_model(now - skew - 30LL * 86400 * 1000, static_cast<int>(kLearnedModels))) {
      for (const auto& [key, cost] : *seen) learned_[key].recent[0] = cost;
    } else {
      return std::unexpected(seen.error());
    }
    for (auto& [scope, b] : budgets_) {
      auto fired = store_->warning_fired(scope, b.stored.period, ledgers_[period_index(b.stored.period)].window.start_ms);
      if (!fired) return std::unexpected(fired.error());
      if (*fired) b.warned_window_start = ledgers_[period_index(b.stored.period)].window.start_ms;
    }
    for (auto& [scope, b] : budgets_) check_warning(b, now);
    return {};
  }

  std::variant<Reservation, Refusal> admit(const AdmitRequest& request) override {
    const std::int64_t now = clock_();
    std::lock_guard lock(mutex_);
    roll(now);
    if (killed_) {
      return Refusal{503, "tokfence_killed",
                     "tokfence kill switch is on: every request is refused until 'tokfence unkill'", json::object(),
                     std::nullopt};
    }
    if (revoked_.contains(request.provider)) {
      return Refusal{403, "tokfence_provider_revoked",
                     "provider '" + request.provider + "' is revoked: 'tokfence restore " + request.provider +
                         "' re-enables it",
                     json{{"provider", request.provider}}, std::nullopt};
    }
    const auto rpm = rpm_.find(request.provider);
    if (rpm != rpm_.end()) {
      if (auto wait = limiter_.check(request.provider, rpm->second, now)) {
        return Refusal{429, "tokfence_rate_limited",
                       "rate limit for '" + request.provider + "' reached: " + std::to_string(rpm->second) +
                           " requests per minute; retry in " + std::to_string(*wait) + " s",
                       json{{"provider", request.provider}, {"rpm", rpm->second}}, *wait};
      }
    }

    std::string model_key = request.provider + '\n' + request.model;
    Picodollars estimate = std::max<Picodollars>(0, request.estimated_cost.value_or(0));
    if (request.estimated_cost && request.endpoint == EndpointCost::tokens) {
      if (auto it = learned_.find(model_key); it != learned_.end()) estimate = std::max(estimate, it->second.max());
    }
    std::vector<const Budget*> applicable;
    for (const std::string& scope : {request.provider, std::string("global")})
      if (auto it = budgets_.find(scope); it != budgets_.end()) applicable.push_back(&it->second);
    std::optional<Refusal> refusal;
    for (const Budget* b : applicable) {
      const Ledger& ledger = ledgers_[period_index(b->stored.period)];
      const Picodollars spent = ledger.of(b->stored.scope).cost;
      const Picodollars reserved = reserved_of(b->stored.scope);
      const Picodollars committed = add_saturating(spent, reserved);
      const bool exhausted = committed >= b->stored.limit;
      const bool fits = add_saturating(committed, estimate) <= b->stored.limit;
      if (!exhausted && (fits || reserved == 0)) continue;
      // Used up: nothing passes before the reset. Merely no room beside the requests in flight: a
      // retry may pass as soon as they settle below their estimates.
      const std::int64_t to_reset = std::max<std::int64_t>(1, (ledger.window.end_ms - now + 999) / 1000);
      const int retry = static_cast<int>(exhausted ? to_reset : std::min<std::int64_t>(to_reset, kInFlightRetrySeconds));
      // Both budgets must have room, so the longer wait is the one worth telling.
      if (refusal && refusal->retry_after_seconds >= retry) continue;
      const std::string resets_at = iso8601(zone_, ledger.window.end_ms);
      const std::string scope_text =
          b->stored.scope == "global" ? std::string("global budget") : "budget for '" + b->stored.scope + "'";
      refusal = Refusal{
          429, "tokfence_budget_exceeded",
          scope_text + " (" + std::string(to_string(b->stored.period)) + ") " +
              (exhausted ? "is used up" : "has no room for this request while others are in flight") + ": spent " +
              format_usd(spent) + (reserved > 0 ? " + " + format_usd(reserved) + " in flight" : "") + " of " +
              format_usd(b->stored.limit) + "; resets at " + resets_at,
          json{{"scope", b->stored.scope},
               {"period", to_string(b->stored.period)},
               {"limit", usd_number(b->stored.limit)},
               {"spent", usd_number(spent)},
               {"reserved", usd_number(reserved)},
               {"reason", exhausted ? "exhausted" : "reserved_in_flight"},
               {"resets_at", resets_at}},
          retry};
    }
    if (refusal) return *refusal;
    // After the budgets' own check: a used-up budget answers 429 for everything in its scope.
    if (!applicable.empty() || request.session_budget) {
      if (auto unpaid = refuse_unpaid(request)) return *unpaid;
    }

    if (rpm != rpm_.end()) limiter_.record(request.provider, now);
    const std::uint64_t id = next_id_++;
    const bool learn = request.estimated_cost && request.endpoint == EndpointCost::tokens;
    in_flight_[id] = InFlight{request.provider, learn ? std::move(model_key) : std::string(), now, estimate};
    reserved_by_provider_[request.provider] = add_saturating(reserved_by_provider_[request.provider], estimate);
    reserved_total_ = add_saturating(reserved_total_, estimate);
    return Reservation{id};
  }

  bool budget_applies(std::string_view provider) const override {
    std::lock_guard lock(mutex_);
    return budgets_.contains(std::string(provider)) || budgets_.contains("global");
  }

  bool killed() const override {
    std::lock_guard lock(mutex_);
    return killed_;
  }

  // While a budget applies, a request that could not be paid for is refused: its endpoint bills
  // outside any usage field, its body cannot be read, or its model has no price (and there is no
  // [pricing] fallback).
  static std::optional<Refusal> refuse_unpaid(const AdmitRequest& request) {
    if (request.endpoint == EndpointCost::unmetered) {
      const std::string endpoint = sanitize(request.method, 16) + " " + sanitize(request.path, 120);
      return Refusal{403, "tokfence_budget_unmetered_endpoint",
                     "endpoint '" + endpoint + "' of '" + request.provider +
                         "' is not billed through a usage field, so its cost cannot be counted, and a budget "
                         "applies: to allow it (charged by usage, else its estimate), add its path to "
                         "[providers." + request.provider + "] budget_allowed_paths in config.toml",
                     json{{"provider", request.provider}, {"endpoint", endpoint}}, std::nullopt};
    }
    if (request.endpoint == EndpointCost::free) return std::nullopt;
    if (request.usage_comes_later) {
      return Refusal{403, "tokfence_budget_background",
                     "request: \"background\": true is answered before it runs and its usage is reported only "
                     "later (GET /v1/responses/<id>), so its cost cannot be counted, and a budget applies to '" +
                         request.provider + "': send it without background mode",
                     json{{"provider", request.provider}}, std::nullopt};
    }
    if (request.body_unreadable) {
      return Refusal{400, "tokfence_budget_unreadable_body",
                     "request: the body is not a JSON object, so its cost cannot be estimated, and a budget "
                     "applies to '" + request.provider + "': send valid JSON",
                     json{{"provider", request.provider}}, std::nullopt};
    }
    if (!request.estimated_cost) {
      const std::string model = request.model.empty() ? std::string("(none)") : sanitize(request.model, 80);
      return Refusal{403, "tokfence_budget_unknown_cost",
                     "model '" + model + "' of '" + request.provider +
                         "' has no price, and a budget applies: add [pricing.\"" + model +
                         "\"] (input, output in USD per million tokens) or a [pricing] fallback to config.toml, "
                         "or load prices with 'tokfence pricing update --from FILE'",
                     json{{"provider", request.provider}, {"model", request.model}}, std::nullopt};
    }
    return std::nullopt;
  }

  void settle(Reservation reservation, std::optional<Picodollars> actual_cost, std::int64_t tokens) override {
    const std::int64_t now = clock_();
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(reservation.id);
    if (it == in_flight_.end()) return;  // settled already, or never admitted
    const InFlight f = std::move(it->second);
    in_flight_.erase(it);
    roll(now);
    if (auto r = reserved_by_provider_.find(f.provider); r != reserved_by_provider_.end()) {
      r->second -= f.reserved;
      if (r->second <= 0) reserved_by_provider_.erase(r);
    }
    reserved_total_ = std::max<Picodollars>(0, reserved_total_ - f.reserved);

    const Picodollars cost = std::max<Picodollars>(0, actual_cost.value_or(0));
    for (auto& ledger : ledgers_) {
      if (!ledger.window.contains(f.start_ms)) continue;
      for (Tally* t : {&ledger.providers[f.provider], &ledger.global}) {
        if (actual_cost) {
          t->cost = add_saturating(t->cost, cost);
        } else if (tokens > 0) {
          t->unknown_cost_requests += 1;
          t->unknown_cost_tokens = add_saturating(t->unknown_cost_tokens, tokens);
        }
      }
    }
    if (actual_cost && !f.model_key.empty()) {
      if (learned_.size() >= kLearnedModels && !learned_.contains(f.model_key)) learned_.clear();
      Learned& l = learned_[f.model_key];
      l.recent[l.next] = cost;
      l.next = (l.next + 1) % l.recent.size();
    }
    for (const std::string& scope : {f.provider, std::string("global")})
      if (auto b = budgets_.find(scope); b != budgets_.end()) check_warning(b->second, now);
  }

  void register_ops(ControlRouter& router) override {
    for (const auto& [op, member] : kOps) router.add(op, [this, member](const json& request) { return run(member, request); });
  }

  // One op of the control protocol, by name; apply_control_offline's entry (no daemon running).
  Result<json> handle(const json& request) {
    if (!request.is_object() || !request.contains("op") || !request["op"].is_string())
      return fail("control request: missing 'op'");
    const std::string op = request["op"].get<std::string>();
    for (const auto& [name, member] : kOps)
      if (op == name) return run(member, request);
    return fail("control request: unknown op '" + sanitize(op) + "'");
  }

  json status() const override {
    const std::int64_t now = clock_();
    std::lock_guard lock(mutex_);
    roll(now);
    json out;
    out["killed"] = killed_;
    out["revoked"] = json::array();
    for (const auto& p : revoked_) out["revoked"].push_back(p);
    out["timezone"] = zone_.name();
    out["budgets"] = budgets_json();
    out["ratelimits"] = json::array();
    for (const auto& [provider, rpm] : rpm_)
      out["ratelimits"].push_back({{"provider", provider}, {"rpm", rpm}, {"used", limiter_.count(provider, now)}});
    out["warnings"] = json::array();
    for (const auto& [scope, b] : budgets_) {
      const Ledger& ledger = ledgers_[period_index(b.stored.period)];
      if (b.warned_window_start != ledger.window.start_ms) continue;
      out["warnings"].push_back({{"scope", scope},
                                 {"period", to_string(b.stored.period)},
                                 {"message", warning_text(b, ledger.of(scope).cost, ledger.window)}});
    }
    out["in_flight"] = in_flight_.size();
    return out;
  }

  // Each op: check the request, persist, then apply to memory (see run()).
  Result<json> kill(const json&, std::int64_t now) { return set_killed(true, now); }
  Result<json> unkill(const json&, std::int64_t now) { return set_killed(false, now); }
  Result<json> set_killed(bool on, std::int64_t now) {
    if (auto ok = store_->set_killed(on, now); !ok) return std::unexpected(ok.error());
    std::lock_guard lock(mutex_);
    const bool changed = killed_ != on;
    killed_ = on;
    return json{{"killed", on}, {"changed", changed}};
  }

  Result<json> revoke(const json& request, std::int64_t now) { return set_revoked(request, "revoke", true, now); }
  Result<json> restore(const json& request, std::int64_t now) { return set_revoked(request, "restore", false, now); }
  Result<json> set_revoked(const json& request, const std::string& op, bool revoke, std::int64_t now) {
    auto provider = string_arg(request, "provider", op);
    if (!provider) return std::unexpected(provider.error());
    bool is_revoked;
    {
      std::lock_guard lock(mutex_);
      is_revoked = revoked_.contains(*provider);
    }
    // A provider removed from the config can still be restored; everything else must exist.
    if (revoke || !is_revoked)
      if (auto ok = check_known_provider(config_, *provider); !ok) return std::unexpected(ok.error());
    auto changed = store_->set_revoked(*provider, revoke, now);
    if (!changed) return std::unexpected(changed.error());
    std::lock_guard lock(mutex_);
    if (revoke)
      revoked_.insert(*provider);
    else
      revoked_.erase(*provider);
    return json{{"provider", *provider}, {"revoked", revoke}, {"changed", *changed}};
  }

  Result<json> budget_set(const json& request, std::int64_t now) {
    const std::string op = "budget_set";
    auto scope = string_arg(request, "scope", op);
    if (!scope) return std::unexpected(scope.error());
    if (auto ok = check_budget_scope(config_, *scope); !ok) return std::unexpected(ok.error());
    auto amount_text = text_arg(request, "amount", op);
    if (!amount_text) return std::unexpected(amount_text.error());
    auto amount = parse_budget_amount(*amount_text);
    if (!amount) return std::unexpected(amount.error());
    auto period_text = string_arg(request, "period", op);
    if (!period_text) return std::unexpected(period_text.error());
    auto period = parse_budget_period(*period_text);
    if (!period) return fail("budget period: unknown: '" + sanitize(*period_text) + "': use daily or monthly");
    StoredBudget b{*scope, *period, *amount, now};
    if (auto ok = store_->put_budget(b); !ok) return std::unexpected(ok.error());
    std::lock_guard lock(mutex_);
    roll(now);
    budgets_[*scope] = Budget{b};
    check_warning(budgets_[*scope], now);
    return budget_json(budgets_[*scope]);
  }

  Result<json> budget_clear(const json& request, std::int64_t) {
    auto scope = string_arg(request, "scope", "budget_clear");
    if (!scope) return std::unexpected(scope.error());
    bool exists;
    {
      std::lock_guard lock(mutex_);
      exists = budgets_.contains(*scope);
    }
    if (!exists)
      if (auto ok = check_budget_scope(config_, *scope); !ok) return std::unexpected(ok.error());
    auto changed = store_->clear_budget(*scope);
    if (!changed) return std::unexpected(changed.error());
    std::lock_guard lock(mutex_);
    budgets_.erase(*scope);
    return json{{"scope", *scope}, {"cleared", *changed}};
  }

  Result<json> budget_status(const json&, std::int64_t now) {
    std::lock_guard lock(mutex_);
    roll(now);
    return json{{"budgets", budgets_json()}, {"timezone", zone_.name()}};
  }

  Result<json> ratelimit_set(const json& request, std::int64_t now) {
    const std::string op = "ratelimit_set";
    auto provider = string_arg(request, "provider", op);
    if (!provider) return std::unexpected(provider.error());
    if (auto ok = check_known_provider(config_, *provider); !ok) return std::unexpected(ok.error());
    auto rpm_text = text_arg(request, "rpm", op);
    if (!rpm_text) return std::unexpected(rpm_text.error());
    auto rpm = parse_rpm(*rpm_text);
    if (!rpm) return std::unexpected(rpm.error());
    if (auto ok = store_->put_ratelimit(*provider, *rpm, now); !ok) return std::unexpected(ok.error());
    std::lock_guard lock(mutex_);
    rpm_[*provider] = *rpm;
    return json{{"provider", *provider}, {"rpm", *rpm}};
  }

  Result<json> ratelimit_clear(const json& request, std::int64_t) {
    auto provider = string_arg(request, "provider", "ratelimit_clear");
    if (!provider) return std::unexpected(provider.error());
    bool exists;
    {
      std::lock_guard lock(mutex_);
      exists = rpm_.contains(*provider);
    }
    if (!exists)
      if (auto ok = check_known_provider(config_, *provider); !ok) return std::unexpected(ok.error());
    auto changed = store_->clear_ratelimit(*provider);
    if (!changed) return std::unexpected(changed.error());
    std::lock_guard lock(mutex_);
    rpm_.erase(*provider);
    limiter_.forget(*provider);
    return json{{"provider", *provider}, {"cleared", *changed}};
  }

  Result<json> controls_status(const json&, std::int64_t) { return status(); }

  using Op = Result<json> (ControlsImpl::*)(const json&, std::int64_t);
  static constexpr std::pair<const char*, Op> kOps[] = {
      {"kill", &ControlsImpl::kill},
      {"unkill", &ControlsImpl::unkill},
      {"revoke", &ControlsImpl::revoke},
      {"restore", &ControlsImpl::restore},
      {"budget_set", &ControlsImpl::budget_set},
      {"budget_clear", &ControlsImpl::budget_clear},
      {"budget_status", &ControlsImpl::budget_status},
      {"ratelimit_set", &ControlsImpl::ratelimit_set},
      {"ratelimit_clear", &ControlsImpl::ratelimit_clear},
      {"controls_status", &ControlsImpl::controls_status},
  };

  // Ops run one at a time: persist-then-apply must not interleave between two ops.
  Result<json> run(Op member, const json& request) {
    std::lock_guard ops(ops_mutex_);
    return (this->*member)(request, clock_());
  }

 private:
  static Result<std::string> string_arg(const json& request, const char* key, const std::string& op) {
    auto it = request.find(key);
    if (it == request.end() || !it->is_string()) return fail(op + ": missing '" + key + "' (a string)");
    return it->get<std::string>();
  }
  // A string, or a number given as JSON (kept as its text).
  static Result<std::string> text_arg(const json& request, const char* key, const std::string& op) {
    auto it = request.find(key);
    if (it != request.end() && it->is_string()) return it->get<std::string>();
    if (it != request.end() && it->is_number()) return it->dump();
    return fail(op + ": missing '" + key + "'");
  }

  Picodollars reserved_of(const std::string& scope) const {
    if (scope == "global") return reserved_total_;
    auto it = reserved_by_provider_.find(scope);
    return it == reserved_by_provider_.end() ? 0 : it->second;
  }

  // Moves each ledger to the window containing `now`. A new window starts empty: every request
  // settled from now on started in it or is attributed to the window it started in (gone).
  // A clock set back also starts empty (documented: the ledger does not re-read the log).
  void roll(std::int64_t now) const {
    for (auto p : {BudgetPeriod::daily, BudgetPeriod::monthly}) {
      Ledger& ledger = ledgers_[period_index(p)];
      if (ledger.window.contains(now)) continue;
      ledger.window = window_containing(zone_, p, now);
      ledger.providers.clear();
      ledger.global = {};
    }
  }

  // Requires mutex_. Reads the request log for `ledger.window` (real time: the request log stamps
  // rows with the system clock, which differs from clock_ only under the test offset).
  Result<void> fill_from_log(Ledger& ledger) {
    const std::int64_t skew = clock_() - now_ms();
    auto spent = store_->spent_between(ledger.window.start_ms - skew, ledger.window.end_ms - skew);
    if (!spent) return std::unexpected(spent.error());
    ledger.providers.clear();
    ledger.global = {};
    for (const auto& [provider, s] : *spent) {
      Tally t{s.cost, s.unknown_cost_requests, s.unknown_cost_tokens};
      ledger.providers[provider] = t;
      ledger.global.cost = add_saturating(ledger.global.cost, t.cost);
      ledger.global.unknown_cost_requests += t.unknown_cost_requests;
      ledger.global.unknown_cost_tokens = add_saturating(ledger.global.unknown_cost_tokens, t.unknown_cost_tokens);
    }
    return {};
  }

  std::string warning_text(const Budget& b, Picodollars spent, const TimeWindow& window) const {
    const std::string scope_text =
        b.stored.scope == "global" ? std::string("global budget") : "budget for '" + b.stored.scope + "'";
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", percent_of(spent, b.stored.limit));
    return scope_text + " (" + std::string(to_string(b.stored.period)) + ") at " + pct + ": spent " +
           format_usd(spent) + " of " + format_usd(b.stored.limit) + "; resets at " + iso8601(zone_, window.end_ms);
  }

  // Requires mutex_. Fires the warning once per window when spend crosses the threshold.
  void check_warning(Budget& b, std::int64_t now) const {
    const Ledger& ledger = ledgers_[period_index(b.stored.period)];
    if (b.warned_window_start == ledger.window.start_ms) return;
    const Picodollars spent = ledger.of(b.stored.scope).cost;
    const int threshold = config_.notifications.budget_warning_percent;
    if (static_cast<__int128>(spent) * 100 < static_cast<__int128>(b.stored.limit) * threshold) return;
    b.warned_window_start = ledger.window.start_ms;
    if (!worker_) return;
    const std::string text = warning_text(b, spent, ledger.window);
    const StoredBudget stored = b.stored;
    const std::int64_t window_start = ledger.window.start_ms;
    const bool desktop = config_.notifications.desktop;
    worker_->post([this, text, stored, window_start, spent, threshold, now, desktop] {
      // A previous daemon run in this window may have warned already.
      auto fired = store_->warning_fired(stored.scope, stored.period, window_start);
      if (fired && *fired) return;
      auto ok = store_->record_warning(stored.scope, stored.period, window_start, threshold, spent, stored.limit, now);
      const std::string line = "tokfence: warning: " + text +
                               (ok ? std::string() : " (could not record it: " + ok.error().message + ")");
      if (warning_sink_)
        warning_sink_(line);
      else
        std::cerr << line << std::endl;
      if (desktop) desktop_notify("tokfence: budget warning", text);
    });
  }

  json budget_json(const Budget& b) const {
    const Ledger& ledger = ledgers_[period_index(b.stored.period)];
    const Tally& t = ledger.of(b.stored.scope);
    const Picodollars reserved = reserved_of(b.stored.scope);
    return json{{"scope", b.stored.scope},
                {"period", to_string(b.stored.period)},
                {"limit", usd_number(b.stored.limit)},
                {"limit_pico", b.stored.limit},
                {"limit_text", format_usd(b.stored.limit)},
                {"spent", usd_number(t.cost)},
                {"spent_pico", t.cost},
                {"spent_text", format_usd(t.cost)},
                {"reserved", usd_number(reserved)},
                {"reserved_pico", reserved},
                {"reserved_text", format_usd(reserved)},
                {"percent", percent_of(t.cost, b.stored.limit)},
                {"window_start", iso8601(zone_, ledger.window.start_ms)},
                {"window_start_ms", ledger.window.start_ms},
                {"resets_at_ms", ledger.window.end_ms},
                {"resets_at", iso8601(zone_, ledger.window.end_ms)},
                {"resets_in_seconds", std::max<std::int64_t>(0, (ledger.window.end_ms - clock_() + 999) / 1000)},
                {"warned", b.warned_window_start == ledger.window.start_ms},
                {"warning_percent", config_.notifications.budget_warning_percent},
                {"unknown_cost_requests", t.unknown_cost_requests},
                {"unknown_cost_tokens", t.unknown_cost_tokens}};
  }

  json budgets_json() const {
    json out = json::array();
    // global first, then providers by name
    if (auto it = budgets_.find("global"); it != budgets_.end()) out.push_back(budget_json(it->second));
    for (const auto& [scope, b] : budgets_)
      if (scope != "global") out.push_back(budget_json(b));
    return out;
  }

  const Config config_;
  const TimeZone zone_;
  const Clock clock_;
  std::unique_ptr<ControlsStore> store_;
  const bool warnings_enabled_;
  const std::function<void(const std::string&)> warning_sink_;

  std::mutex ops_mutex_;
  mutable std::mutex mutex_;  // guards everything below
  bool killed_ = false;
  std::set<std::string> revoked_;
  std::map<std::string, int> rpm_;
  mutable RateLimiter limiter_;
  mutable std::map<std::string, Budget> budgets_;
  mutable std::array<Ledger, 2> ledgers_;  // daily, monthly
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  std::map<std::string, Picodollars> reserved_by_provider_;
  Picodollars reserved_total_ = 0;
  std::unordered_map<std::string, Learned> learned_;
  std::uint64_t next_id_ = 1;

  std::unique_ptr<Worker> worker_;  // last: joined first on destruction
};

Result<TimeZone> zone_of(const Config& config) {
  if (config.budget.timezone.empty()) return TimeZone::local();
  auto zone = TimeZone::load(config.budget.timezone);
  if (!zone) return fail("config [budget] timezone: " + zone.error().message);
  return zone;
}

Result<std::unique_ptr<ControlsImpl>> make_impl(const Config& config, ControlsOptions options) {
  auto zone = zone_of(config);
  if (!zone) return std::unexpected(zone.error());
  auto store = ControlsStore::open(config.logging.db_path);
  if (!store) return std::unexpected(store.error());
  Clock clock = options.clock ? options.clock : default_clock();
  auto impl = std::make_unique<ControlsImpl>(config, std::move(*zone), std::move(clock), std::move(*store),
                                             std::move(options));
  if (auto ok = impl->load(); !ok) return std::unexpected(ok.error());
  return impl;
}

std::int64_t parse_offset_seconds(std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str()) return 0;
  return v;
}

}  // namespace

Clock default_clock() {
  std::int64_t fixed = 0;
  if (const char* v = std::getenv("TOKFENCE_TEST_NOW_OFFSET_SECONDS"); v && *v) fixed = parse_offset_seconds(v);
  std::string file;
  if (const char* v = std::getenv("TOKFENCE_TEST_NOW_OFFSET_FILE"); v && *v) file = v;
  if (fixed == 0 && file.empty()) return now_ms;
  return [fixed, file] {
    std::int64_t offset = fixed;
    if (!file.empty()) {
      std::ifstream in(file);
      std::string line;
      if (in && std::getline(in, line)) offset += parse_offset_seconds(line);
    }
    return now_ms() + offset * 1000;
  };
}

Result<std::unique_ptr<Controls>> make_controls(const Config& config, ControlsOptions options) {
  auto impl = make_impl(config, std::move(options));
  if (!impl) return std::unexpected(impl.error());
  return std::unique_ptr<Controls>(std::move(*impl));
}

Result<std::unique_ptr<Controls>> make_controls(const Config& config) { return make_controls(config, {}); }

Result<nlohmann::json> apply_control_offline(const Config& config, const nlohmann::json& request, Clock clock) {
  ControlsOptions options;
  options.clock = std::move(clock);
  options.warnings = false;
  auto impl = make_impl(config, std::move(options));
  if (!impl) return std::unexpected(impl.error());
  return (*impl)->handle(request);
}

Result<Picodollars> parse_budget_amount(std::string_view text) {
  const std::string shown = sanitize(text);
  const std::string fix = ": use a positive amount of US dollars like 5 or 12.50";
  std::string_view s = text;
  if (!s.empty() && s.front() == '$') s.remove_prefix(1);
  if (!s.empty() && s.front() == '-') return fail("budget amount: must be positive: '" + shown + "'" + fix);
  const std::size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
  auto digits = [](std::string_view d) {
    return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (s.empty() || (whole.empty() && frac.empty()) || !digits(whole) || !digits(frac) ||
      (dot != std::string_view::npos && frac.empty()))
    return fail("budget amount: not a number: '" + shown + "'" + fix);
  if (frac.size() > 12) return fail("budget amount: more than 12 decimal places: '" + shown + "'" + fix);
  std::string_view w = whole;
  while (w.size() > 1 && w.front() == '0') w.remove_prefix(1);
  if (w.size() > 7) return fail("budget amount: too large: '" + shown + "': use at most 1000000 US dollars");
  Picodollars value = 0;
  for (char c : w) value = value * 10 + (c - '0');
  value *= kPicoPerUsd;
  Picodollars scale = kPicoPerUsd / 10;
  for (char c : frac) {
    value += (c - '0') * scale;
    scale /= 10;
  }
  if (value > kMaxBudget) return fail("budget amount: too large: '" + shown + "': use at most 1000000 US dollars");
  if (value <= 0)
    return fail("budget amount: must be more than zero: '" + shown + "'" + fix +
                " (to block a provider use 'tokfence revoke <provider>')");
  return value;
}

Result<int> parse_rpm(std::string_view text) {
  const std::string shown = sanitize(text);
  const std::string fix = ": use a whole number of requests per minute from 1 to " + std::to_string(kMaxRpm);
  if (text.empty() || text.size() > 12 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("rate limit: not a whole number: '" + shown + "'" + fix);
  const long long v = std::stoll(std::string(text));
  if (v < 1 || v > kMaxRpm) return fail("rate limit: out of range: '" + shown + "'" + fix);
  return static_cast<int>(v);
}

Result<void> check_known_provider(const Config& config, std::string_view provider) {
  if (auto ok = check_provider_name(provider); !ok) return ok;
  if (config.provider(provider)) return {};
  return fail("provider '" + std::string(provider) + "': unknown: use one of " + known_provider_list(config) +
              ", or add [providers." + std::string(provider) + "] to config.toml");
}

Result<void> check_budget_scope(const Config& config, std::string_view scope) {
  if (scope == "global") return {};
  if (!is_valid_provider_name(scope))
    return fail("budget scope '" + sanitize(scope) + "': not 'global' or a provider name ([a-z0-9][a-z0-9_-]{0,31})");
  if (config.provider(scope)) return {};
  return fail("budget scope '" + std::string(scope) + "': unknown: use global or one of " + known_provider_list(config));
}

ReservationGuard::ReservationGuard(ReservationGuard&& other) noexcept
    : controls_(other.controls_),
      reservation_(other.reservation_),
      if_abandoned_(other.if_abandoned_),
      settled_(std::exchange(other.settled_, true)) {}

ReservationGuard& ReservationGuard::operator=(ReservationGuard&& other) noexcept {
  if (this == &other) return *this;
  abandon();
  controls_ = other.controls_;
  reservation_ = other.reservation_;
  if_abandoned_ = other.if_abandoned_;
  settled_ = std::exchange(other.settled_, true);
  return *this;
}

ReservationGuard::~ReservationGuard() { abandon(); }

void ReservationGuard::abandon() noexcept {
  if (settled_) return;
  settled_ = true;
  try {
    controls_->settle(reservation_, if_abandoned_, 0);
  } catch (...) {
    // settle() does no I/O and should not throw; a destructor must not, whatever it does.
  }
}

void ReservationGuard::settle(std::optional<Picodollars> actual_cost, std::int64_t tokens) {
  if (settled_) return;
  settled_ = true;
  controls_->settle(reservation_, actual_cost, tokens);
}

std::variant<ReservationGuard, Refusal> admit_guarded(Controls& controls, const AdmitRequest& request) {
  auto decision = controls.admit(request);
  if (auto* refusal = std::get_if<Refusal>(&decision)) return std::move(*refusal);
  return ReservationGuard(controls, std::get<Reservation>(decision), request.estimated_cost);
}

}  // namespace tokfence::proxy
