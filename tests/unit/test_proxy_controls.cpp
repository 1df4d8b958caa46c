#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "proxy/controls/controls.hpp"
#include "proxy/controls/time_zone.hpp"
#include "proxy/metering/request_log.hpp"
#include "core/sqlite.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using namespace tokfence::proxy;
using nlohmann::json;

namespace {

constexpr Picodollars kUsd = 1'000'000'000'000;
constexpr Picodollars kCent = kUsd / 100;

using test::TempDir;

// A clock the test moves by hand.
struct ManualClock {
  std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(0);
  Clock clock() const {
    auto n = now;
    return [n] { return n->load(); };
  }
  void set(std::int64_t ms) { now->store(ms); }
  void advance(std::int64_t ms) { now->fetch_add(ms); }
};

std::int64_t utc_ms(int y, unsigned m, unsigned d, int hh = 0, int mm = 0) {
  return (days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60) * 1000;
}

struct Fixture {
  TempDir dir;
  Config config;
  ManualClock clock;
  std::shared_ptr<std::vector<std::string>> warnings = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::mutex> warnings_mutex = std::make_shared<std::mutex>();

  Fixture() {
    config.logging.db_path = dir.path / "tokfence.db";
    config.budget.timezone = "UTC";
    clock.set(utc_ms(2025, 6, 1, 12));
  }
  std::unique_ptr<Controls> make() {
    ControlsOptions options;
    options.clock = clock.clock();
    auto w = warnings;
    auto m = warnings_mutex;
    options.warning_sink = [w, m](const std::string& line) {
      std::lock_guard lock(*m);
      w->push_back(line);
    };
    auto c = make_controls(config, options);
    REQUIRE(c);
    return std::move(*c);
  }
  json op(const json& request) {
    auto r = apply_control_offline(config, request, clock.clock());
    REQUIRE(r);
    return *r;
  }
  std::string op_error(const json& request) {
    auto r = apply_control_offline(config, request, clock.clock());
    REQUIRE_FALSE(r);
    return r.error().message;
  }
  // Everything the controls tables hold, to prove a failed op changed nothing.
  std::string dump_tables() {
    auto db = sqlite::Database::open(config.logging.db_path, sqlite::Create::no);
    REQUIRE(db);
    std::string out;
    for (const char* sql : {"SELECT killed FROM controls_kill", "SELECT provider FROM controls_revoked",
                            "SELECT scope || period || limit_pico FROM controls_budgets",
                            "SELECT provider || rpm FROM controls_ratelimits",
                            "SELECT scope || window_start_ms FROM controls_warnings"}) {
      auto st = db->prepare(sql);
      REQUIRE(st);
      for (;;) {
        auto row = st->step();
        REQUIRE(row);
        if (!*row) break;
        out += st->column_text(0) + ";";
      }
      out += "|";
    }
    return out;
  }
};

// Admits through a Controls instance by ops on a router, like the daemon does.
json call(Controls& controls, const json& request) {
  ControlRouter router;
  controls.register_ops(router);
  return router.dispatch(request);
}

AdmitRequest req(std::string provider, std::optional<Picodollars> estimate = 0, std::string model = "gpt-4o") {
  AdmitRequest r;
  r.provider = std::move(provider);
  r.model = std::move(model);
  r.estimated_cost = estimate;
  return r;
}

const Refusal* refused(const std::variant<Reservation, Refusal>& v) { return std::get_if<Refusal>(&v); }
Reservation admitted(const std::variant<Reservation, Refusal>& v) {
  auto* r = std::get_if<Reservation>(&v);
  if (!r) FAIL("refused: " << std::get<Refusal>(v).type << ": " << std::get<Refusal>(v).message);
  return *r;
}

}  // namespace

TEST_CASE("proxy::Controls checks kill, then revoke, then rate limit, then budgets") {
  Fixture f;
  auto c = f.make();
  CHECK(call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}})["ok"] == true);
  c->settle(admitted(c->admit(req("openai"))), kUsd, 10);  // budget used up
  auto r = c->admit(req("openai"));
  REQUIRE(refused(r));
  CHECK(refused(r)->type == "tokfence_budget_exceeded");

  CHECK(call(*c, {{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", 1}})["ok"] == true);
  // Refusals take no rate-limit slot: the budget refused above, so one request still "fits"...
  r = c->admit(req("openai"));
  CHECK(refused(r)->type == "tokfence_budget_exceeded");
  CHECK(call(*c, {{"op", "budget_clear"}, {"scope", "openai"}})["cleared"] == true);
  c->settle(admitted(c->admit(req("openai"))), 0, 0);
  r = c->admit(req("openai"));
  CHECK(refused(r)->type == "tokfence_rate_limited");
  CHECK(refused(r)->status == 429);

  CHECK(call(*c, {{"op", "revoke"}, {"provider", "openai"}})["ok"] == true);
  r = c->admit(req("openai"));
  CHECK(refused(r)->type == "tokfence_provider_revoked");
  CHECK(refused(r)->status == 403);
  CHECK(refused(r)->message.find("tokfence restore openai") != std::string::npos);

  CHECK(call(*c, {{"op", "kill"}})["ok"] == true);
  r = c->admit(req("openai"));
  CHECK(refused(r)->type == "tokfence_killed");
  CHECK(refused(r)->status == 503);
  // Every provider, also one the configuration does not know (added later).
  CHECK(refused(c->admit(req("some-new-provider")))->type == "tokfence_killed");

  CHECK(call(*c, {{"op", "unkill"}})["killed"] == false);
  CHECK(refused(c->admit(req("openai")))->type == "tokfence_provider_revoked");
  CHECK(call(*c, {{"op", "restore"}, {"provider", "openai"}})["revoked"] == false);
  CHECK(refused(c->admit(req("openai")))->type == "tokfence_rate_limited");
  CHECK(call(*c, {{"op", "ratelimit_clear"}, {"provider", "openai"}})["cleared"] == true);
  c->settle(admitted(c->admit(req("openai"))), 0, 0);
}

TEST_CASE("proxy::Controls state survives a restart") {
  Fixture f;
  {
    auto c = f.make();
    call(*c, {{"op", "kill"}});
    call(*c, {{"op", "revoke"}, {"provider", "anthropic"}});
    call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "2.5"}, {"period", "monthly"}});
    call(*c, {{"op", "ratelimit_set"}, {"provider", "google"}, {"rpm", "30"}});
  }
  auto c = f.make();
  json s = c->status();
  CHECK(s["killed"] == true);
  CHECK(s["revoked"] == json::array({"anthropic"}));
  REQUIRE(s["budgets"].size() == 1);
  CHECK(s["budgets"][0]["scope"] == "global");
  CHECK(s["budgets"][0]["period"] == "monthly");
  CHECK(s["budgets"][0]["limit_pico"] == 250 * kCent);
  CHECK(s["budgets"][0]["resets_at"] == "2025-07-01T00:00:00+00:00");
  REQUIRE(s["ratelimits"].size() == 1);
  CHECK(s["ratelimits"][0]["rpm"] == 30);
  CHECK(refused(c->admit(req("openai")))->type == "tokfence_killed");
}

TEST_CASE("proxy::Controls recomputes spent in the window from the request log at start") {
  Fixture f;
  {
    auto log = RequestLog::open(f.config.logging.db_path, 3650);
    REQUIRE(log);
    auto row = [&](std::string id, std::int64_t ts, std::string provider, std::optional<Picodollars> cost, int tokens) {
      RequestRecord r;
      r.id = std::move(id);
      r.ts_ms = ts;
      r.provider = std::move(provider);
      r.model = "m";
      r.status = 200;
      r.usage.input_tokens = tokens;
      r.cost = cost;
      (*log)->record(r);
    };
    // The clock is 2025-06-01 12:00 UTC, but the log is stamped with the real clock: shift by the skew.
    const std::int64_t skew = f.clock.now->load() - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          std::chrono::system_clock::now().time_since_epoch())
                                                          .count();
    row("req_0000000000000001", utc_ms(2025, 6, 1, 1) - skew, "openai", 30 * kCent, 10);
    row("req_0000000000000002", utc_ms(2025, 6, 1, 2) - skew, "anthropic", 20 * kCent, 10);
    row("req_0000000000000003", utc_ms(2025, 5, 31, 23) - skew, "openai", 40 * kCent, 10);  // yesterday
    row("req_0000000000000004", utc_ms(2025, 6, 1, 3) - skew, "openai", std::nullopt, 500);  // unknown price
    row("req_0000000000000005", utc_ms(2025, 6, 1, 3) - skew, "openai", std::nullopt, 0);    // refused: no tokens
    (*log)->flush();
  }
  f.op({{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  f.op({{"op", "budget_set"}, {"scope", "global"}, {"amount", "10"}, {"period", "monthly"}});
  auto c = f.make();
  json s = c->status();
  REQUIRE(s["budgets"].size() == 2);
  CHECK(s["budgets"][0]["scope"] == "global");
  CHECK(s["budgets"][0]["spent_pico"] == 50 * kCent);  // May 31 is another month
  CHECK(s["budgets"][1]["scope"] == "openai");
  CHECK(s["budgets"][1]["spent_pico"] == 30 * kCent);
  CHECK(s["budgets"][1]["unknown_cost_requests"] == 1);
  CHECK(s["budgets"][1]["unknown_cost_tokens"] == 500);
  CHECK(s["budgets"][1]["percent"] == 30.0);
}

TEST_CASE("proxy::Controls budget refusal carries limit, spent, resets_at and Retry-After") {
  Fixture f;
  f.config.budget.timezone = "Europe/Berlin";
  f.clock.set(utc_ms(2025, 6, 1, 20));  // 22:00 in Berlin: two hours to the reset
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "0.50"}, {"period", "daily"}});
  c->settle(admitted(c->admit(req("openai", 10 * kCent))), 60 * kCent, 100);
  auto r = c->admit(req("openai", kCent));
  REQUIRE(refused(r));
  const Refusal& x = *refused(r);
  CHECK(x.status == 429);
  CHECK(x.type == "tokfence_budget_exceeded");
  CHECK(x.extra["limit"] == 0.5);
  CHECK(x.extra["spent"] == 0.6);
  CHECK(x.extra["resets_at"] == "2025-06-02T00:00:00+02:00");
  CHECK(x.extra["scope"] == "openai");
  CHECK(x.extra["reason"] == "exhausted");
  REQUIRE(x.retry_after_seconds);
  CHECK(*x.retry_after_seconds == 7200);
  // Other providers are not limited by openai's budget.
  admitted(c->admit(req("anthropic")));
  // The window rolls over at local midnight.
  f.clock.set(utc_ms(2025, 6, 1, 22));
  c->settle(admitted(c->admit(req("openai", kCent))), kCent, 10);
  CHECK(c->status()["budgets"][0]["spent_pico"] == kCent);
}

TEST_CASE("proxy::Controls applies provider and global budgets and the first exhausted refuses") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "5"}, {"period", "daily"}});
  call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "1"}, {"period", "monthly"}});
  c->settle(admitted(c->admit(req("anthropic"))), kUsd, 10);
  auto r = c->admit(req("openai"));
  REQUIRE(refused(r));
  CHECK(refused(r)->extra["scope"] == "global");
  CHECK(refused(r)->extra["resets_at"] == "2025-07-01T00:00:00+00:00");
  call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "100"}, {"period", "monthly"}});
  c->settle(admitted(c->admit(req("openai"))), 5 * kUsd, 10);
  r = c->admit(req("openai"));
  CHECK(refused(r)->extra["scope"] == "openai");
  CHECK(refused(r)->extra["resets_at"] == "2025-06-02T00:00:00+00:00");
  admitted(c->admit(req("anthropic")));
}

TEST_CASE("proxy::Controls reserves estimates in flight and settles the real cost") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  auto a = admitted(c->admit(req("openai", 40 * kCent)));
  auto b = admitted(c->admit(req("openai", 40 * kCent)));
  // 80 cents reserved: a third 40-cent request does not fit while they are in flight.
  auto r = c->admit(req("openai", 40 * kCent));
  REQUIRE(refused(r));
  CHECK(refused(r)->extra["reserved"] == 0.8);
  CHECK(refused(r)->extra["reason"] == "reserved_in_flight");
  CHECK(refused(r)->retry_after_seconds == 5);  // not the reset 12 h away: a retry may pass soon
  json s = c->status();
  CHECK(s["budgets"][0]["reserved_pico"] == 80 * kCent);
  CHECK(s["budgets"][0]["spent_pico"] == 0);
  c->settle(a, 10 * kCent, 100);
  c->settle(a, 10 * kCent, 100);  // a second settle of the same reservation is ignored
  s = c->status();
  CHECK(s["budgets"][0]["reserved_pico"] == 40 * kCent);
  CHECK(s["budgets"][0]["spent_pico"] == 10 * kCent);
  auto d = admitted(c->admit(req("openai", 40 * kCent)));
  c->settle(b, 10 * kCent, 100);
  c->settle(d, 10 * kCent, 100);
  s = c->status();
  CHECK(s["budgets"][0]["reserved_pico"] == 0);
  CHECK(s["budgets"][0]["spent_pico"] == 30 * kCent);
  CHECK(s["in_flight"] == 0);
}

TEST_CASE("proxy::Controls lets one request run alone even when its estimate exceeds the room") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  auto a = admitted(c->admit(req("openai", 5 * kUsd)));  // alone: allowed
  CHECK(refused(c->admit(req("openai", kCent))));        // but nothing else meanwhile
  c->settle(a, 20 * kCent, 10);
  admitted(c->admit(req("openai", 5 * kUsd)));
}

TEST_CASE("proxy::Controls bounds the overshoot of 64 concurrent requests by one request's cost") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "1"}, {"period", "daily"}});
  const Picodollars cost = 30 * kCent;  // room for three
  // One request of each model has settled before (in this run or in the log read at start), so
  // the controls know what these requests really cost.
  c->settle(admitted(c->admit(req("openai", 5 * kCent, "m"))), cost, 100);
  c->settle(admitted(c->admit(req("anthropic", 5 * kCent, "m"))), cost, 100);
  std::atomic<int> ok{2}, no{0};
  std::vector<std::thread> threads;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 64; ++i) {
      threads.emplace_back([&, i] {
        std::mt19937 rng(static_cast<unsigned>(i));
        // The estimate is below the real cost (no max_tokens): the learned cost must cover it.
        auto v = c->admit(req(i % 2 ? "openai" : "anthropic", 5 * kCent, "m"));
        if (auto* r = std::get_if<Reservation>(&v)) {
          ++ok;
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
          c->settle(*r, cost, 100);
        } else {
          ++no;
        }
      });
    }
    for (auto& t : threads) t.join();
    threads.clear();
  }
  json s = c->status();
  const Picodollars spent = s["budgets"][0]["spent_pico"].get<Picodollars>();
  INFO("admitted " << ok << ", refused " << no << ", spent " << spent);
  CHECK(spent <= kUsd + cost);
  CHECK(spent >= kUsd - cost);  // the budget did get used
  CHECK(no > 0);
  CHECK(s["budgets"][0]["reserved_pico"] == 0);
}

TEST_CASE("proxy::Controls with exact estimates overshoots only by a last request admitted alone") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "0.95"}, {"period", "daily"}});
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        auto v = c->admit(req("openai", 3 * kCent, "n"));
        if (auto* r = std::get_if<Reservation>(&v)) {
          ++ok;
          std::this_thread::yield();
          c->settle(*r, 3 * kCent, 10);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  json s = c->status();
  // 31 requests fit in 95 cents; a 32nd may start once nothing else is in flight.
  CHECK(s["budgets"][0]["spent_pico"].get<Picodollars>() <= 95 * kCent + 3 * kCent);
  CHECK(s["budgets"][0]["spent_pico"].get<Picodollars>() == ok * 3 * kCent);
}

TEST_CASE("proxy::Controls counts unknown-cost requests by tokens and can refuse them") {
  Fixture f;
  auto c = f.make();
  c->settle(admitted(c->admit(req("openai", std::nullopt, "mystery"))), std::nullopt, 1234);
  c->settle(admitted(c->admit(req("openai", std::nullopt, "mystery"))), std::nullopt, 100);
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  json b = c->status()["budgets"][0];
  CHECK(b["unknown_cost_requests"] == 2);
  CHECK(b["unknown_cost_tokens"] == 1334);
  CHECK(b["spent_pico"] == 0);

  // Once a budget applies, an unknown price is refused (issue 15: never free), naming the fix.
  auto r = c->admit(req("openai", std::nullopt, "mystery"));
  REQUIRE(refused(r));
  CHECK(refused(r)->type == "tokfence_budget_unknown_cost");
  CHECK(refused(r)->message.find("[pricing.\"mystery\"]") != std::string::npos);
  // Only where a budget applies.
  admitted(c->admit(req("anthropic", std::nullopt, "mystery")));
}

TEST_CASE("proxy::Controls refuses what a budget cannot count while one applies") {
  Fixture f;
  auto c = f.make();
  auto with = [](EndpointCost endpoint, bool unreadable, std::optional<Picodollars> estimate) {
    AdmitRequest r = req("openai", estimate);
    r.endpoint = endpoint;
    r.body_unreadable = unreadable;
    r.method = "POST";
    r.path = "/v1/images/generations";
    return r;
  };
  // No budget: everything passes as before.
  c->settle(admitted(c->admit(with(EndpointCost::unmetered, false, std::nullopt))), std::nullopt, 0);
  c->settle(admitted(c->admit(with(EndpointCost::tokens, true, 0))), 0, 0);
  CHECK_FALSE(c->budget_applies("openai"));
  call(*c, {{"op", "budget_set"}, {"scope", "global"}, {"amount", "1"}, {"period", "daily"}});
  CHECK(c->budget_applies("openai"));
  CHECK(c->budget_applies("anthropic"));

  auto r = c->admit(with(EndpointCost::unmetered, false, 0));
  REQUIRE(refused(r));
  CHECK(refused(r)->type == "tokfence_budget_unmetered_endpoint");
  CHECK(refused(r)->message.find("budget_allowed_paths") != std::string::npos);
  CHECK(refused(r)->message.find("POST /v1/images/generations") != std::string::npos);
  r = c->admit(with(EndpointCost::tokens, true, 0));
  REQUIRE(refused(r));
  CHECK(refused(r)->type == "tokfence_budget_unreadable_body");
  CHECK(refused(r)->status == 400);
  // Free endpoints (model listings, count_tokens) pass without a price.
  c->settle(admitted(c->admit(with(EndpointCost::free, false, 0))), 0, 0);
  c->settle(admitted(c->admit(with(EndpointCost::tokens, false, kCent))), kCent, 10);
}

// Review 13a M1: a session's own budget is a budget too. Without this, an unpriced model, a
// background request or an unmetered endpoint held and settled $0 against it.
TEST_CASE("proxy::Controls refuses what a session's own budget cannot count, with no other budget") {
  Fixture f;
  auto c = f.make();
  CHECK_FALSE(c->budget_applies("openai"));
  AdmitRequest r = req("openai", std::nullopt, "mystery");
  r.session_budget = true;
  auto refusal = c->admit(r);
  REQUIRE(refused(refusal));
  CHECK(refused(refusal)->type == "tokfence_budget_unknown_cost");
  r = req("openai", kCent);
  r.session_budget = true;
  r.usage_comes_later = true;
  refusal = c->admit(r);
  REQUIRE(refused(refusal));
  CHECK(refused(refusal)->type == "tokfence_budget_background");
  r.usage_comes_later = false;
  r.endpoint = EndpointCost::unmetered;
  refusal = c->admit(r);
  REQUIRE(refused(refusal));
  CHECK(refused(refusal)->type == "tokfence_budget_unmetered_endpoint");
  // A priced request of a session with a budget, and an unpriced one of a session without, pass.
  r.endpoint = EndpointCost::tokens;
  c->settle(admitted(c->admit(r)), kCent, 10);
  c->settle(admitted(c->admit(req("openai", std::nullopt, "mystery"))), std::nullopt, 10);
}

TEST_CASE("proxy::ReservationGuard settles exactly once, at the estimate when abandoned") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
  {
    ReservationGuard guard(*c, admitted(c->admit(req("openai", 30 * kCent))), 30 * kCent);
    CHECK(c->status()["budgets"][0]["reserved_pico"] == 30 * kCent);
  }  // left without settle(): charged the estimate, reservation released
  CHECK(c->status()["budgets"][0]["reserved_pico"] == 0);
  CHECK(c->status()["budgets"][0]["spent_pico"] == 30 * kCent);
  {
    ReservationGuard guard(*c, admitted(c->admit(req("openai", 30 * kCent))), 30 * kCent);
    guard.settle(5 * kCent, 10);
    guard.settle(7 * kCent, 10);  // ignored
  }
  CHECK(c->status()["budgets"][0]["spent_pico"] == 35 * kCent);
}

namespace {

// Controls that admit everything and note every settle(): what a guard did, call by call.
class CountingControls final : public Controls {
 public:
  struct Settled {
    std::uint64_t reservation;
    std::optional<Picodollars> cost;
  };
  std::vector<Settled> settled;
  std::variant<Reservation, Refusal> admit(const AdmitRequest& request) override {
    if (request.model == "refuse-me") return Refusal{429, "tokfence_budget_exceeded", "budget: spent", {}, 60};
    return Reservation{++admitted_};
  }
  void settle(Reservation reservation, std::optional<Picodollars> cost, std::int64_t) override {
    settled.push_back({reservation.id, cost});
  }
  bool budget_applies(std::string_view) const override { return true; }
  bool killed() const override { return false; }
  void register_ops(ControlRouter&) override {}
  json status() const override { return json::object(); }

 private:
  std::uint64_t admitted_ = 0;
};

}  // namespace

TEST_CASE("proxy::ReservationGuard moved: the moved-from guard settles nothing, the new one once") {
  CountingControls c;
  {
    ReservationGuard first(c, Reservation{7}, 30 * kCent);
    {
      ReservationGuard second(std::move(first));
      second.settle(5 * kCent, 10);
    }  // second's destructor: already settled
    CHECK(c.settled.size() == 1);
  }  // first's destructor: moved from, nothing to settle
  REQUIRE(c.settled.size() == 1);
  CHECK(c.settled[0].reservation == 7);
  CHECK(c.settled[0].cost == 5 * kCent);
}

TEST_CASE("proxy::ReservationGuard move-assigned: the reservation it held is settled as abandoned, once") {
  CountingControls c;
  {
    ReservationGuard held(c, Reservation{1}, 10 * kCent);
    ReservationGuard other(c, Reservation{2}, 20 * kCent);
    held = std::move(other);
    REQUIRE(c.settled.size() == 1);
    CHECK(c.settled[0].reservation == 1);
    CHECK(c.settled[0].cost == 10 * kCent);
  }
  REQUIRE(c.settled.size() == 2);
  CHECK(c.settled[1].reservation == 2);
  CHECK(c.settled[1].cost == 20 * kCent);
}

TEST_CASE("proxy::ReservationGuard left by an exception settles once, at the estimate") {
  CountingControls c;
  auto request_path = [&c] {
    ReservationGuard guard(c, Reservation{3}, 12 * kCent);
    throw std::runtime_error("something on the data path failed");
  };
  CHECK_THROWS_AS(request_path(), std::runtime_error);
  REQUIRE(c.settled.size() == 1);
  CHECK(c.settled[0].reservation == 3);
  CHECK(c.settled[0].cost == 12 * kCent);
}

TEST_CASE("proxy::admit_guarded: a refusal as is, an admission in a guard that settles at the estimate") {
  CountingControls c;
  AdmitRequest request;
  request.provider = "openai";
  request.model = "refuse-me";
  auto refused = admit_guarded(c, request);
  REQUIRE(std::holds_alternative<Refusal>(refused));
  CHECK(std::get<Refusal>(refused).retry_after_seconds == 60);
  request.model = "gpt-4o";
  request.estimated_cost = 4 * kCent;
  {
    auto admitted = admit_guarded(c, request);
    REQUIRE(std::holds_alternative<ReservationGuard>(admitted));
    CHECK(c.settled.empty());
  }
  REQUIRE(c.settled.size() == 1);
  CHECK(c.settled[0].cost == 4 * kCent);
}

TEST_CASE("proxy::Controls rate limit admits exactly rpm in a minute and then recovers") {
  Fixture f;
  auto c = f.make();
  call(*c, {{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", 3}});
  for (int i = 0; i < 3; ++i) {
    c->settle(admitted(c->admit(req("openai"))), 0, 0);
    f.clock.advance(1000);
  }
  auto r = c->admit(req("openai"));
  REQUIRE(refused(r));
  CHECK(refused(r)->type == "tokfence_rate_limited");
  CHECK(refused(r)->retry_after_seconds == 57);
  CHECK(refused(r)->extra["rpm"] == 3);
  f.clock.advance(57'000);
  c->settle(admitted(c->admit(req("openai"))), 0, 0);
  CHECK(refused(c->admit(req("openai"))));
  admitted(c->admit(req("anthropic")));
}

TEST_CASE("proxy::Controls warns once per window at the configured percentage") {
  Fixture f;
  f.config.notifications.budget_warning_percent = 80;
  f.config.notifications.desktop = false;
  {
    auto c = f.make();
    call(*c, {{"op", "budget_set"}, {"scope", "openai"}, {"amount", "1"}, {"period", "daily"}});
    c->settle(admitted(c->admit(req("openai"))), 79 * kCent, 10);
    CHECK(c->status()["budgets"][0]["warned"] == false);
    c->settle(admitted(c->admit(req("openai"))), kCent, 10);
    CHECK(c->status()["budgets"][0]["warned"] == true);
    CHECK(c->status()["warnings"].size() == 1);
    c->settle(admitted(c->admit(req("openai"))), 5 * kCent, 10);
  }
  REQUIRE(f.warnings->size() == 1);
  CHECK((*f.warnings)[0].find("budget for 'openai' (daily) at 80.0%") != std::string::npos);
  CHECK((*f.warnings)[0].find("resets at 2025-06-02T00:00:00+00:00") != std::string::npos);
  {
    // A restart in the same window does not warn again...
    auto c = f.make();
    CHECK(c->status()["budgets"][0]["warned"] == true);
  }
  CHECK(f.warnings->size() == 1);
  {
    // ...the next window does.
    f.clock.set(utc_ms(2025, 6, 2, 1));
    auto c = f.make();
    CHECK(c->status()["budgets"][0]["warned"] == false);
    c->settle(admitted(c->admit(req("openai"))), 90 * kCent, 10);
  }
  CHECK(f.warnings->size() == 2);
}

TEST_CASE("proxy::Controls ops reject bad input and change nothing") {
  Fixture f;
  f.op({{"op", "budget_set"}, {"scope", "openai"}, {"amount", "3"}, {"period", "daily"}});
  f.op({{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", "60"}});
  const std::string before = f.dump_tables();
  struct Case {
    json request;
    std::string message;
  };
  const std::vector<Case> cases{
      {{{"op", "budget_set"}, {"scope", "openai"}, {"amount", "-5"}, {"period", "daily"}},
       "budget amount: must be positive: '-5': use a positive amount of US dollars like 5 or 12.50"},
      {{{"op", "budget_set"}, {"scope", "openai"}, {"amount", "five"}, {"period", "daily"}},
       "budget amount: not a number: 'five'"},
      {{{"op", "budget_set"}, {"scope", "openai"}, {"amount", "0"}, {"period", "daily"}},
       "budget amount: must be more than zero"},
      {{{"op", "budget_set"}, {"scope", "openai"}, {"amount", "5"}, {"period", "weekly"}},
       "budget period: unknown: 'weekly': use daily or monthly"},
      {{{"op", "budget_set"}, {"scope", "nope"}, {"amount", "5"}, {"period", "daily"}},
       "budget scope 'nope': unknown: use global or one of"},
      {{{"op", "budget_set"}, {"scope", "Bad Name"}, {"amount", "5"}, {"period", "daily"}},
       "budget scope 'Bad Name': not 'global' or a provider name"},
      {{{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", "0"}}, "rate limit: out of range: '0'"},
      {{{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", "1000000"}},
       "rate limit: out of range: '1000000': use a whole number of requests per minute from 1 to 100000"},
      {{{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", "ten"}}, "rate limit: not a whole number: 'ten'"},
      {{{"op", "ratelimit_set"}, {"provider", "openai"}, {"rpm", -3}}, "rate limit: not a whole number: '-3'"},
      {{{"op", "revoke"}, {"provider", "nosuch"}}, "provider 'nosuch': unknown: use one of"},
      {{{"op", "revoke"}, {"provider", "UPPER"}}, "provider name 'UPPER': must match"},
      {{{"op", "restore"}, {"provider", "nosuch"}}, "provider 'nosuch': unknown"},
      {{{"op", "ratelimit_clear"}, {"provider", "nosuch"}}, "provider 'nosuch': unknown"},
      {{{"op", "budget_clear"}, {"scope", "nosuch"}}, "budget scope 'nosuch': unknown"},
      {{{"op", "revoke"}}, "revoke: missing 'provider'"},
      {{{"op", "frobnicate"}}, "unknown op 'frobnicate'"},
  };
  for (const auto& cs : cases) {
    INFO(cs.request.dump());
    const std::string error = f.op_error(cs.request);
    CHECK(error.find(cs.message) != std::string::npos);
    CHECK(f.dump_tables() == before);
  }
}

TEST_CASE("proxy::parse_budget_amount is exact and strict") {
  CHECK(parse_budget_amount("5").value() == 5 * kUsd);
  CHECK(parse_budget_amount("12.50").value() == 1250 * kCent);
  CHECK(parse_budget_amount("$0.000001").value() == 1'000'000);
  CHECK(parse_budget_amount(".5").value() == 50 * kCent);
  CHECK(parse_budget_amount("1000000").value() == 1'000'000 * kUsd);
  for (const char* bad : {"", "-1", "1e3", "abc", "1.2.3", "5.", "1000000.01", "99999999", " 5", "0.0000000000001",
                          "0", "0.00", "nan", "+5"})
    CHECK_FALSE(parse_budget_amount(bad));
}

TEST_CASE("proxy::Controls restore works for a provider removed from the config") {
  Fixture f;
  ProviderSpec custom;
  custom.name = "custom";
  custom.upstream = "http://127.0.0.1:1";
  custom.client_base_suffix = "/v1";
  custom.builtin = false;
  f.config.provider_overrides["custom"] = custom;
  f.op({{"op", "revoke"}, {"provider", "custom"}});
  f.config.provider_overrides.clear();
  json r = f.op({{"op", "restore"}, {"provider", "custom"}});
  CHECK(r["changed"] == true);
}

TEST_CASE("proxy::make_controls refuses an unknown [budget] timezone with the fix") {
  Fixture f;
  f.config.budget.timezone = "Mars/Olympus_Mons";
  auto c = make_controls(f.config, {});
  REQUIRE_FALSE(c);
  CHECK(c.error().message.find("config [budget] timezone: time zone 'Mars/Olympus_Mons': no such zone: use an IANA "
                               "name like Europe/Berlin") == 0);
}

TEST_CASE("proxy::default_clock honours the test-only offsets and nothing else") {
  auto real = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  TempDir dir;
  const auto file = dir.path / "offset";
  unsetenv("TOKFENCE_TEST_NOW_OFFSET_SECONDS");
  unsetenv("TOKFENCE_TEST_NOW_OFFSET_FILE");
  std::int64_t before = real();
  std::int64_t t = default_clock()();
  CHECK(t >= before);
  CHECK(t <= real());

  setenv("TOKFENCE_TEST_NOW_OFFSET_SECONDS", "86400", 1);
  setenv("TOKFENCE_TEST_NOW_OFFSET_FILE", file.c_str(), 1);
  Clock clock = default_clock();
  before = real();
  t = clock();
  CHECK(t >= before + 86'400'000);  // no file yet: only the fixed offset
  CHECK(t <= real() + 86'400'000);
  std::ofstream(file) << "60\n";
  before = real();
  t = clock();  // the file is re-read on every call
  CHECK(t >= before + 86'460'000);
  CHECK(t <= real() + 86'460'000);
  unsetenv("TOKFENCE_TEST_NOW_OFFSET_SECONDS");
  unsetenv("TOKFENCE_TEST_NOW_OFFSET_FILE");
}
