#pragma once
// The status snapshot that menu-bar widgets and desktop apps read: `tokfence widget render --json`
// and TOKFENCE_HOME/desktop_snapshot.json (docs/WIDGET.md has every key).
//
// The first keys are the original Tokfence's snapshot object, with the same names, types and
// meaning, so its SwiftBar plugin and SwiftUI app read ours unchanged: counts in whole cents,
// `generated_at` and `period_start` as RFC 3339 UTC without fractions (Swift's .iso8601 decoder
// refuses fractions), `last_request_at` as the local wall-clock "HH:MM:SS". Everything tokfence
// knows beyond that sits under keys the original never had (exact cost, cache tokens, per-provider
// totals, the kill switch proper, proxy sessions, the request log's health).
//
// build_snapshot reads only the request log (today's totals by provider, the newest row) through
// proxy/metering's read side; what only the daemon or the vault knows comes in SnapshotSources.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

// What the snapshot needs besides the request log. The daemon fills it from its own state; the CLI
// (no daemon running) from the database and the vault.
struct SnapshotSources {
  bool running = false;
  int pid = 0;
  std::string addr;                 // the TCP listener, "127.0.0.1:9471"; "" when not running
  // Controls::status() or the `controls_status` op's reply: killed, revoked, budgets, ratelimits,
  // warnings. null = unknown (a warning says why).
  nlohmann::json controls;
  // Providers with a key in the vault; nullopt = unknown (a warning says why).
  std::optional<std::vector<std::string>> vault_providers;
  // The daemon's per-caller proxy sockets (launches, `run` sessions): [{path, caller, persist}].
  nlohmann::json sessions = nlohmann::json::array();
  // ImmuneFence's live sessions: [{name, kind, risk_state}]; a RED one also gets a warning.
  nlohmann::json immunefence_sessions = nlohmann::json::array();
  // RequestLog::Stats of the running daemon as {recorded, committed, queued, dropped, lost}; null
  // when not running.
  nlohmann::json request_log;
  std::string version;
  std::vector<std::string> warnings;  // e.g. "vault: ..." (the original's "<part>: <message>")
};

// Builds the snapshot at `now_ms`. Never throws for a missing or unreadable database: the counters
// stay 0 and `warnings` says "db: ...".
nlohmann::json build_snapshot(const Config& config, const SnapshotSources& sources, std::int64_t now_ms);

// Whole cents, rounded to the nearest (half up): the original's unit for every amount.
std::int64_t cents_of(Picodollars amount);
// Whole micro-dollars, rounded to the nearest (half up).
std::int64_t micro_usd_of(Picodollars amount);

// Keeps a snapshot file current for a running daemon, off the I/O threads: mark_dirty() is one
// relaxed atomic store (what the request path pays); a timer thread rebuilds and rewrites the file
// at most once every `min_interval` while it is dirty (longer when building is slow: the pause is
// at least 20 times the last build, so the thread stays under 5 % of a core however many rows
// today has), and every `max_interval` regardless (so "today" rolls over at midnight). The file is replaced atomically through core's
// safe writer (random O_EXCL temp name, rename), mode 0600.
class SnapshotWriter {
 public:
  using Builder = std::function<nlohmann::json()>;
  SnapshotWriter(std::filesystem::path path, Builder build,
                 std::chrono::milliseconds min_interval = std::chrono::seconds(1),
                 std::chrono::milliseconds max_interval = std::chrono::seconds(60));
  ~SnapshotWriter();  // stop()s
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // Writes once now, then starts the timer thread.
  void start();
  void mark_dirty() noexcept { dirty_.store(true, std::memory_order_relaxed); }
  // Joins the timer thread, then writes `last` (e.g. the snapshot saying running: false), if given.
  void stop(const std::optional<nlohmann::json>& last = std::nullopt);
  // Writes `snapshot` now (the caller's thread). Errors go to the warn sink, at most one a minute.
  void write(const nlohmann::json& snapshot);
  std::function<void(const std::string&)> warn;

 private:
  void loop();

  const std::filesystem::path path_;
  const Builder build_;
  const std::chrono::milliseconds min_interval_, max_interval_;
  std::atomic<bool> dirty_{true};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
  std::chrono::steady_clock::time_point last_warning_{};
};

}  // namespace tokfence::proxy
