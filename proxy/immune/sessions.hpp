#pragma once
// Agent sessions (docs/IMMUNEFENCE.md): every `tokfence launch`, `tokfence run` and
// `tokfence session new` is one. A session has a name, limits of its own, the capability tokens
// issued to it (kept as SHA-256 hashes only), a risk state that sensors move up
// (GREEN -> YELLOW -> ORANGE -> RED; only `session reset` moves it down) and, for launch and run,
// decoy credentials planted inside the fence whose appearance in traffic means theft.
//
// The registry is shared by the proxy's I/O threads (authorize, observe, scope checks: no I/O
// except writing a transition, which happens at most three times per session) and the control
// thread (create, revoke, reset, list: SQLite writes). Tables in tokfence.db, owned here only:
//   immune_sessions(id TEXT PRIMARY KEY, name, kind, client_id, listener, created_ms, expires_ms,
//                   limits TEXT /* JSON */, decoys TEXT /* JSON, fake values */, risk_state,
//                   ended_ms, end_reason)
//   immune_tokens(token_hash TEXT PRIMARY KEY, session_id, issued_ms, expires_ms)
//   immune_transitions(session_id, ts_ms, from_state, to_state, sensor, request_id, detail)
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/decoys.hpp"
#include "core/error.hpp"
#include "core/glob.hpp"
#include "core/secret.hpp"
#include "proxy/immune/capability.hpp"
#include "proxy/immune/scanner.hpp"

namespace tokfence::immune {

// What moved a session's risk state.
// decoy_env: a decoy planted only as an environment variable was seen. A harmless agent that
// prints its environment while debugging sends those to the model too, so it is YELLOW, not RED.
enum class Sensor : std::uint8_t { honeytoken, decoy_env, secret_outbound, scope, egress_denials, reset };
std::string_view to_string(Sensor sensor);

// [immunefence] of config.toml (core/config.hpp), in the units the registry works in.
struct Settings {
  bool require_token = true;               // on the main listeners; bound listeners always require theirs
  std::int64_t session_ttl_ms = 8 * 3'600'000LL;       // `session new` default
  std::int64_t bound_session_ttl_ms = 7 * 86'400'000LL; // launch/run: they end with their socket
  std::int64_t yellow_token_ttl_ms = 3'600'000LL;       // tokens issued while YELLOW
  int scope_violations_to_orange = 3;
  int egress_denials_per_minute = 10;
  int yellow_rpm = 30;                     // a YELLOW session's rate when it has no rpm of its own
  bool sensor_honeytoken = true, sensor_secret_outbound = true, sensor_scope = true, sensor_egress = true;
};
Settings settings_from(const Config::ImmuneFence& config);

struct Limits {
  std::vector<std::string> providers;  // empty = every provider
  std::vector<std::string> models;     // '*' globs; empty = every model
  std::vector<std::string> endpoints;  // '*' globs on the path after /<provider>; empty = every path
  int rpm = 0;                         // 0 = none of its own
  std::int64_t budget_daily_pico = 0;  // 0 = none of its own
};
nlohmann::json limits_json(const Limits& limits);
Result<Limits> limits_from_json(const nlohmann::json& j);

struct Transition {
  std::int64_t ts_ms = 0;
  RiskState from = RiskState::green, to = RiskState::green;
  Sensor sensor = Sensor::reset;
  std::string request_id;
  std::string detail;
};

// One session's live state. Fields that never change are public; the rest is read with atomics
// on the request path.
class Session {
 public:
  std::string id, name, kind, client_id, listener;  // listener: the socket it is bound to, "" = none
  Limits limits;
  std::int64_t created_ms = 0, expires_ms = 0;

  RiskState state() const { return state_.load(std::memory_order_acquire); }
  bool ended() const { return ended_.load(std::memory_order_acquire); }
  // Counts a request against the session's own rate (YELLOW: halved, or Settings::yellow_rpm):
  // false when over it this minute.
  bool take_rate(std::int64_t now_ms, const Settings& settings);
  // The session's own daily budget (Limits::budget_daily_pico), held like the global budgets
  // (proxy/controls): a request holds its estimate from admission until it settles, and is refused
  // when the day's spend plus the holds in flight reaches the limit or would pass it with this
  // estimate, unless nothing else is in flight. So concurrent requests cannot jointly pass the
  // limit by more than one request. Use BudgetHold, which settles every hold exactly once.
  bool try_hold(std::int64_t estimate_pico, std::int64_t now_ms);
  void settle_hold(std::int64_t held_pico, std::int64_t actual_pico, std::int64_t now_ms);
  std::int64_t spent_today_pico(std::int64_t now_ms) const;
  // At the daemon's start: the day the request log shows for this session (its first request in
  // the last day and what its requests cost since), since the spend above lives in memory.
  void restore_spend(std::int64_t day_start_ms, std::int64_t spent_pico);

 private:
  friend class Registry;
  std::atomic<RiskState> state_{RiskState::green};
  std::atomic<bool> ended_{false};
  mutable std::mutex mutex_;  // the counters below and transitions_
  std::int64_t rate_minute_ = 0;
  int rate_count_ = 0;
  std::int64_t day_start_ms_ = 0;
  std::int64_t spent_pico_ = 0;
  std::int64_t held_pico_ = 0;  // estimates of the requests in flight
  int scope_violations_ = 0;
  std::int64_t egress_minute_ = 0;
  int egress_denials_ = 0;
  std::vector<Transition> transitions_;
  std::optional<Decoys> decoys_;
};

// A request's hold on its session's budget. Settled with the request's real cost by settle(),
// released at no cost by release() (the request never went out), and otherwise, when it is left
// another way (an exception, the coroutine destroyed at shutdown), charged its estimate.
class BudgetHold {
 public:
  BudgetHold() = default;  // no session: holds nothing
  // Empty when the session's budget refuses the request.
  static std::optional<BudgetHold> take(std::shared_ptr<Session> session, std::int64_t estimate_pico,
                                        std::int64_t now_ms);
  BudgetHold(BudgetHold&& other) noexcept { *this = std::move(other); }
  BudgetHold& operator=(BudgetHold&& other) noexcept;
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;
  ~BudgetHold() { finish(held_); }
  void settle(std::int64_t actual_pico) { finish(actual_pico); }
  void release() { finish(0); }

 private:
  void finish(std::int64_t actual_pico) noexcept;
  std::shared_ptr<Session> session_;
  std::int64_t held_ = 0;
};

// A refusal for the proxy to answer: status 403 and a tokfence_* type.
struct Refusal {
  int status = 403;
  std::string_view type;
  std::string message;
};

// A token the registry accepts, as the request path holds it between requests of a connection.
struct TokenEntry {
  std::shared_ptr<Session> session;
  std::int64_t expires_ms = 0;
  std::atomic<bool> revoked{false};
  std::atomic<bool> signature_checked{false};
};

struct Issued {
  std::shared_ptr<Session> session;
  std::string token;  // the only copy the daemon hands out; never stored
  std::int64_t token_expires_ms = 0;
};

struct SessionRequest {
  std::string name;        // "" = derived from client_id
  std::string kind = "manual";  // manual | run | launch
  std::string client_id;   // the agent's label (codex, openclaw:NAME); "" = name
  std::string listener;    // bound socket path, "" = none
  Limits limits;
  std::int64_t ttl_ms = 0;  // 0 = Settings' default for the kind
  bool decoys = false;
};

// The scanner and what its needles' owners are: owners[hit.owner] is a session id (decoys) or a
// provider name (vault keys).
// Two scanners, so that a worthless match cannot hide a real one (find() reports one hit): the
// values whose appearance is theft (file decoys, vault keys), and the decoys planted only as
// environment variables (Sensor::decoy_env).
struct ScanSet {
  SecretScanner scanner;
  SecretScanner env_scanner;
  std::vector<std::string> owners;
  bool empty() const { return scanner.empty() && env_scanner.empty(); }
};

class Registry {
 public:
  using Notify = std::function<void(const std::string& line, bool desktop)>;
  static Result<std::unique_ptr<Registry>> open(const std::filesystem::path& db, SigningKey key, Settings settings,
                                                Notify notify);
  ~Registry();
  const Settings& settings() const { return settings_; }

  Result<Issued> create(SessionRequest request, std::int64_t now_ms);
  // A new token for a live session (tokfence env --session N): its TTL is the session's rest, or
  // Settings::yellow_token_ttl_ms while YELLOW or worse.
  Result<Issued> issue(const std::string& name_or_id, std::int64_t now_ms);
  // Ends the session: its tokens stop working at once, its listener's requests too.
  Result<std::shared_ptr<Session>> revoke(const std::string& name_or_id, std::string reason, std::int64_t now_ms);
  // Ends every live session bound to `listener` (its socket closed).
  void end_bound(const std::string& listener, std::int64_t now_ms);
  // Back to GREEN with a fresh token; the old tokens stop working.
  Result<Issued> reset(const std::string& name_or_id, std::int64_t now_ms);

  std::shared_ptr<Session> find(const std::string& name_or_id) const;
  std::vector<std::shared_ptr<Session>> live() const;
  nlohmann::json describe(const Session& session, bool with_transitions, std::int64_t now_ms) const;
  // The decoys planted for `session` ({"files","env","values"}; null when none): for the launcher
  // that plants them, once, in the reply that opens the session's socket.
  nlohmann::json decoys_of(const Session& session) const;
  // Every session, ended ones too (the last `limit`), from the database.
  Result<nlohmann::json> history(std::size_t limit) const;

  // The request path. `token`: the capability the request carried ("" = none). `bound`: the
  // listener's session id ("" = a main or unbound listener). Returns the entry (null when no
  // token was needed and none was sent) or the refusal.
  std::variant<std::shared_ptr<TokenEntry>, Refusal> authorize(std::string_view token, const std::string& bound,
                                                              bool token_required, std::int64_t now_ms);
  // Whether an entry an earlier request of the connection got is still good.
  static std::optional<Refusal> recheck(const TokenEntry& entry, std::int64_t now_ms);
  // Whether the session may use this provider, model, method and path; a violation is the scope
  // sensor. A GET/HEAD needs no model (listing models). Endpoint entries may name a method
  // ("POST /v1/responses"), so a fenced agent can generate without listing stored data.
  std::optional<Refusal> check_scope(Session& session, std::string_view provider, std::string_view model,
                                     std::string_view method, std::string_view path, std::string_view request_id,
                                     std::int64_t now_ms);
  // A sensor fired: moves the state by the rules (docs/IMMUNEFENCE.md) and records the transition.
  void observe(Session& session, Sensor sensor, std::string_view request_id, std::string detail, std::int64_t now_ms);

  // The scanner over every live session's decoys and the vault's keys (rebuilt when either changes).
  std::shared_ptr<const ScanSet> scanner() const;
  void set_vault_keys(const std::map<std::string, SecretString, std::less<>>& keys);
  // The session whose decoy a hit names (null: a vault key's hit, or the session is gone).
  std::string describe_hit(const Hit& hit) const;

  struct Impl;

 private:
  explicit Registry(std::unique_ptr<Impl> impl, Settings settings);
  // find() may end an expired session (a write), so Impl's look-up is not const.
  std::unique_ptr<Impl> impl_;
  Settings settings_;
};

}  // namespace tokfence::immune
