#include "proxy/daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <vector>

#include "core/file.hpp"
#include "core/home.hpp"
#include "core/process.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/controls/controls.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/request_log.hpp"
#include "proxy/http/server.hpp"
#include "proxy/control/server.hpp"
#include "proxy/egress/local_ca.hpp"
#include "proxy/egress/policy.hpp"
#include "proxy/immune/control_ops.hpp"
#include "proxy/snapshot/snapshot.hpp"
#include "proxy/dashboard/listener.hpp"
#include "proxy/dashboard/metrics.hpp"
#include "core/sqlite.hpp"
#include "core/time.hpp"

namespace tokfence::proxy {

void daemon_log(const std::string& text) {
  static std::mutex mutex;
  const std::string stamp = utc_rfc3339(now_ms());
  std::lock_guard lock(mutex);
  std::cerr << stamp << " tokfence: " << text << std::endl;
}

namespace {

namespace fs = std::filesystem;

// Local midnight, for "today" in `status`.
std::int64_t start_of_today_ms() { return start_of_local_day(now_ms()); }

// Keys in memory must not be readable through ptrace, /proc/<pid>/mem or a core file.
void harden_process() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit none{0, 0};
  ::setrlimit(RLIMIT_CORE, &none);
}

// Every client connection is a descriptor (two while it is proxied): the soft limit a shell gives
// (often 1024) would run out long before the connection caps, and once it does no new connection,
// not even the control socket's, can be accepted. Raised to the hard limit; the caps in
// proxy/server.cpp are then fitted below it.
void raise_descriptor_limit() {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur == files.rlim_max) return;
  files.rlim_cur = files.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &files) != 0)
    daemon_log(std::string("warning: cannot raise the descriptor limit: ") + std::strerror(errno));
}

// The single-instance lock: an flock on daemon.pid, held for the daemon's life.
class PidLock {
 public:
  static Result<PidLock> acquire(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return fail("daemon: cannot open pid file: " + path.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      [[maybe_unused]] auto n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      return fail("daemon: already running (pid " + std::string(buf[0] ? buf : "?") +
                  "): stop it with 'tokfence stop' first");
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    [[maybe_unused]] int r = ::ftruncate(fd, 0);
    [[maybe_unused]] auto w = ::pwrite(fd, pid.data(), pid.size(), 0);
    return PidLock(fd, path);
  }
  PidLock(PidLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  ~PidLock() {
    if (fd_ >= 0) {
      ::unlink(path_.c_str());
      ::close(fd_);
    }
  }

 private:
  PidLock(int fd, fs::path path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  fs::path path_;
};

// core/file: random O_EXCL temp name + renameat, so a link planted at the name (or at the old fixed
// `<name>.tmp`) is replaced, never written through.
Result<void> write_private_file(const fs::path& path, const std::string& text) {
  auto ok = file::write_atomic(path, text, {.mode = 0600, .owner = std::nullopt});
  if (!ok) return fail("daemon: cannot write " + path.string() + ": " + ok.error().message);
  return {};
}

// `[daemon] socket_path` names a directory tokfence may not own. Policy (docs/PROXY.md):
//  - a missing directory is created 0700 (tokfence made it, so it may set its mode);
//  - an existing one is never chmodded; it is refused unless it, and every directory above it, is owned
//    by root or by us, and it is writable by nobody else (group/world-writable is refused even with the
//    sticky bit: in /tmp anyone can squat the name); an ancestor may be writable by others only with the
//    sticky bit (others cannot then rename our entries away).
// The default socket lives in the tokfence home, which Home::ensure already manages.
// Returns the directory resolved (core/file.hpp check_trusted_dir): the socket goes there.
Result<fs::path> check_socket_dir(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail("daemon: socket_path: cannot check " + dir.string() + ": " + std::strerror(errno));
    if (auto ok = ensure_private_dir(dir); !ok) return fail("daemon: socket_path: " + ok.error().message);
  }
  auto trusted = file::check_trusted_dir(dir);
  if (!trusted)
    return fail("daemon: socket_path: " + trusted.error().message +
                ": use a directory only you (or root) can write, or remove [daemon] socket_path for the default in "
                "the tokfence home");
  return *trusted;
}

// Per-launch proxy sockets that must outlive a restart (detached launches), in tokfence.db.
class SocketStore {
 public:
  static Result<SocketStore> open(const fs::path& db_path) {
    auto db = sqlite::Database::open(db_path, sqlite::Create::yes);
    if (!db) return std::unexpected(db.error());
    auto schema = db->exec(
        "CREATE TABLE IF NOT EXISTS proxy_sockets(path TEXT PRIMARY KEY, caller TEXT NOT NULL, "
        "mode INTEGER NOT NULL, created_ms INTEGER NOT NULL)");
    if (!schema) return std::unexpected(schema.error());
    // The listener's egress policy (JSON, as `egress` list shows it), kept with the socket.
    if (!db->prepare("SELECT egress FROM proxy_sockets LIMIT 0"))
      if (auto ok = db->exec("ALTER TABLE proxy_sockets ADD COLUMN egress TEXT"); !ok) return std::unexpected(ok.error());
    // The ImmuneFence session the socket belongs to ("" or NULL: none), so that a restart brings
    // the socket back bound to it, or not at all when it has ended.
    if (!db->prepare("SELECT session_id FROM proxy_sockets LIMIT 0"))
      if (auto ok = db->exec("ALTER TABLE proxy_sockets ADD COLUMN session_id TEXT"); !ok) return std::unexpected(ok.error());
    return SocketStore(std::move(*db));
  }
  // The stored egress policy of the persisted socket at `path` ("" when none).
  std::string egress_of(const std::string& path) {
    std::lock_guard lock(*mutex_);
    auto st = db_.prepare("SELECT coalesce(egress, '') FROM proxy_sockets WHERE path = ?");
    if (!st) return "";
    st->bind(1, path);
    auto row = st->step();
    return row && *row ? st->column_text(0) : std::string();
  }
  // Stores `policy` with the persisted socket at `path` (nothing when it is not persisted).
  Result<void> put_egress(const std::string& path, const std::string& policy) {
    std::lock_guard lock(*mutex_);
    auto st = db_.prepare("UPDATE proxy_sockets SET egress = ? WHERE path = ?");
    if (!st) return std::unexpected(st.error());
    st->bind(1, policy).bind(2, path);
    return st->run();
  }
  Result<std::vector<ProxySocketInfo>> all() {
    std::lock_guard lock(*mutex_);
    auto st = db_.prepare("SELECT path, caller, mode, coalesce(session_id, '') FROM proxy_sockets ORDER BY path");
    if (!st) return std::unexpected(st.error());
    std::vector<ProxySocketInfo> out;
    auto done = st->for_each_row([&](const sqlite::Statement& row) {
      out.push_back({row.column_text(0), row.column_text(1), static_cast<int>(row.column_int64(2)), true, {},
                     row.column_text(3)});
    });
    if (!done) return std::unexpected(done.error());
    return out;
  }
  Result<void> put(const ProxySocketInfo& s) {
    std::lock_guard lock(*mutex_);
    auto st = db_.prepare(
        "INSERT OR REPLACE INTO proxy_sockets(path, caller, mode, created_ms, session_id) VALUES(?,?,?,?,?)");
    if (!st) return std::unexpected(st.error());
    st->bind(1, s.path).bind(2, s.caller).bind(3, s.mode).bind(4, now_ms()).bind(5, s.session_id);
    return st->run();
  }
  Result<void> remove(const std::string& path) {
    std::lock_guard lock(*mutex_);
    auto st = db_.prepare("DELETE FROM proxy_sockets WHERE path = ?");
    if (!st) return std::unexpected(st.error());
    st->bind(1, path);
    return st->run();
  }

 private:
  explicit SocketStore(sqlite::Database db) : db_(std::move(db)) {}
  sqlite::Database db_;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

// The keys and, beside them, when each was added and last rotated (unix seconds, 0 = never): the
// dashboard's vault page shows the dates with the key's fingerprint, never the key.
struct KeyDates {
  std::int64_t added_at = 0;
  std::int64_t rotated_at = 0;
};
struct LoadedKeys {
  KeyStore::Map keys;                      // provider keys (entries without hosts)
  std::map<std::string, KeyDates> dates;   // of the provider keys
  inspect::SecretBook bound;               // entries with hosts: never a provider key
};

Result<LoadedKeys> load_keys(vault::Vault& vault) {
  auto all = vault.records();  // what get_all() returns, with the dates (one read of the vault)
  if (!all) return std::unexpected(all.error());
  LoadedKeys loaded;
  for (auto& r : *all) {
    if (!r.hosts.empty()) {
      loaded.bound.emplace(r.provider, inspect::BoundSecret{std::move(r.key), std::move(r.hosts), r.in_path});
      continue;
    }
    loaded.dates[r.provider] = {r.added_at, r.rotated_at};
    loaded.keys.emplace(r.provider, std::move(r.key));
  }
  return loaded;
}

bool valid_label(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

json socket_json(const ProxySocketInfo& s) {
  return {{"path", s.path}, {"caller", s.caller}, {"mode", s.mode}, {"persist", s.persist}};
}


// What a running daemon holds. Its own control ops (the controls register theirs) are members,
// registered from one table; everything they touch is here, so no op captures run_daemon's locals.
struct Daemon {
  Daemon(const Home& h, const Config& c, std::string v) : home(h), config(c), version(std::move(v)) {}

  const Home& home;
  const Config& config;
  std::string version;
  std::shared_ptr<vault::Vault> vault;
  std::shared_ptr<KeyStore> keys = std::make_shared<KeyStore>();
  // Secrets bound to hosts, substituted for placeholders on inspected egress (docs/EGRESS.md),
  // and the local CA whose certificates the fences trust for those hosts.
  std::shared_ptr<inspect::LiveSecrets> bound_secrets = std::make_shared<inspect::LiveSecrets>();
  std::shared_ptr<egress::LocalCa> local_ca;
  // The keys' dates, replaced with them (install_keys); read by `status` for the dashboard.
  std::mutex key_dates_mutex;
  std::map<std::string, KeyDates> key_dates;
  std::mutex reload_mutex;  // reload(): one at a time
  std::shared_ptr<RequestLog> request_log;
  std::shared_ptr<Controls> controls;
  std::shared_ptr<immune::Registry> immune;  // ImmuneFence: sessions, tokens, sensors
  std::shared_ptr<LivePricing> pricing;
  std::optional<SocketStore> sockets;
  std::unique_ptr<ProxyServer> server;
  // TOKFENCE_HOME/desktop_snapshot.json (docs/WIDGET.md): dirty after each request row and each
  // control op, rewritten by its own timer thread at most once a second.
  std::unique_ptr<SnapshotWriter> snapshot_file;
  // Counters for GET /metrics, fed by every request row; served by `dashboard` when enabled.
  std::shared_ptr<Metrics> metrics = std::make_shared<Metrics>();
  // The control ops, a member so the dashboard's actions (which dispatch through it in-process)
  // never outlive it; `router_ready` once its ops and observer are in place.
  ControlRouter router;
  std::atomic<bool> router_ready{false};
  // Request rows for the dashboard's live view (fed like `metrics`).
  std::shared_ptr<DashboardEvents> dashboard_events = std::make_shared<DashboardEvents>();
  std::unique_ptr<DashboardListener> dashboard;
  int port = 0;
  fs::path main_socket;
  std::int64_t started_at = now_ms();
  pid_t self = ::getpid();

  Result<json> ping(const json&) { return json{{"pid", self}, {"version", version}}; }

  void install_keys(LoadedKeys loaded) {
    keys->replace(std::move(loaded.keys));
    retire_bound_secrets(loaded.bound);
    bound_secrets->replace(std::move(loaded.bound));
    std::lock_guard lock(key_dates_mutex);
    key_dates = std::move(loaded.dates);
  }

  // Each key in memory as `tokfence vault list` shows it: its fingerprint
  // (SecretString::fingerprint()) and dates, never the key.
  json vault_keys() {
    const auto snapshot = keys->snapshot();
    std::lock_guard lock(key_dates_mutex);
    json out = json::array();
    for (const auto& [name, key] : *snapshot) {
      const auto dates = key_dates.find(name);
      const KeyDates d = dates == key_dates.end() ? KeyDates{} : dates->second;
      // Shaped like `tokfence vault list --json`: rotated_at null when never rotated.
      out.push_back({{"provider", name}, {"fingerprint", key.fingerprint()}, {"added_at", d.added_at},
                     {"rotated_at", d.rotated_at ? json(d.rotated_at) : json(nullptr)}});
    }
    return out;
  }

  // The live ImmuneFence sessions as status, the snapshot and /metrics show them.
  json immune_sessions() const {
    json sessions = json::array();
    for (const auto& session : immune->live())
      sessions.push_back({{"name", session->name}, {"kind", session->kind}, {"risk_state", immune::to_string(session->state())}});
    return sessions;
  }

  Result<json> status(const json&) {
    json out = {{"running", true},
                {"pid", self},
                {"version", version},
                {"started_at", started_at / 1000},
                {"host", config.daemon.host},
                {"port", port},
                {"tcp_listeners", server->tcp_addresses()},
                {"proxy_socket", main_socket.string()},
                {"control_socket", home.control_socket().string()},
                {"vault_backend", vault->backend_name()}};
    if (dashboard) out["dashboard_listeners"] = dashboard->addresses();
    json key_names = json::array();
    // Held in a local: the temporary of `: *keys->snapshot()` would die before the loop runs
    // (until C++23's P2718, which g++ 12 lacks), and a reload meanwhile would free the map.
    const auto key_map = keys->snapshot();
    for (const auto& [name, key] : *key_map) key_names.push_back(name);
    out["keys"] = key_names;
    out["vault_keys"] = vault_keys();
    json extra = json::array();
    for (const auto& s : server->unix_sockets())
      if (!s.caller.empty()) extra.push_back(socket_json(s));
    out["proxy_sockets"] = extra;
    out["immunefence"] = {{"require_token", immune->settings().require_token}, {"sessions", immune_sessions()}};
    // Rows are written in batches: flush so `status` counts every request answered so far.
    server->hand_over_finished_rows();
    request_log->flush();
    auto totals = totals_since(config.logging.db_path, start_of_today_ms());
    if (totals) {
      out["today"] = {{"requests", totals->requests},
                      {"input_tokens", totals->input_tokens},
                      {"output_tokens", totals->output_tokens},
                      {"cache_read_tokens", totals->cache_read_tokens},
                      {"cache_write_tokens", totals->cache_write_tokens},
                      {"cost_pico", totals->cost},
                      {"cost_usd", format_usd(totals->cost)},
                      {"unknown_cost_requests", totals->unknown_cost_requests}};
    } else {
      out["today"] = {{"error", totals.error().message}};
    }
    out["controls"] = controls->status();
    // Rows dropped (queue full past its back-pressure wait) or lost (commits failed): the audit
    // trail has gaps, and `status` says so.
    const auto log_stats = request_log->stats();
    out["request_log"] = {{"recorded", log_stats.recorded},
                          {"committed", log_stats.committed},
                          {"queued", log_stats.queued},
                          {"dropped", log_stats.dropped},
                          {"lost", log_stats.lost}};
    return out;
  }

  // The widget snapshot (`tokfence widget render --json`, desktop_snapshot.json), with every
  // request answered so far counted. `running` false: the one written as the daemon exits.
  json snapshot(bool running) {
    server->hand_over_finished_rows();
    request_log->flush();
    SnapshotSources in;
    in.running = running;
    in.pid = self;
    const std::string& host = config.daemon.host;
    in.addr = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    in.controls = controls->status();
    std::vector<std::string> names;
    const auto key_map = keys->snapshot();  // held: see status()
    for (const auto& [name, key] : *key_map) names.push_back(name);
    in.vault_providers = std::move(names);
    for (const auto& s : server->unix_sockets())
      if (!s.caller.empty()) in.sessions.push_back(socket_json(s));
    in.immunefence_sessions = immune_sessions();
    if (running) {
      const auto st = request_log->stats();
      in.request_log = {{"recorded", st.recorded}, {"committed", st.committed}, {"queued", st.queued},
                        {"dropped", st.dropped}, {"lost", st.lost}};
    }
    in.version = version;
    return build_snapshot(config, in, now_ms());
  }
  Result<json> widget_snapshot(const json&) { return snapshot(true); }

  // GET /metrics: rows still waiting for their caller look-up are counted first.
  std::string metrics_text() {
    server->hand_over_finished_rows();
    Metrics::Gauges g;
    g.controls = controls->status();
    g.log = request_log->stats();
    for (const auto& s : server->unix_sockets())
      if (!s.caller.empty()) ++g.proxy_sessions;
    for (const auto& s : immune->live()) ++g.sessions_by_risk[std::string(immune::to_string(s->state()))];
    g.start_time_ms = started_at;
    const auto activity = server->activity();
    g.active_connections = activity.connections;
    g.active_streams = activity.streams;
    g.egress_allowed = activity.egress_allowed;
    g.egress_denied = activity.egress_denied;
    return metrics->render(g);
  }

  // The request log commits in batches (up to 50 ms late): `tokfence log` and `stats` ask for this
  // first, so they show every request answered before they ran.
  Result<json> flush_log(const json&) {
    server->hand_over_finished_rows();
    request_log->flush();
    return json{{"flushed", true}};
  }

  // `tokfence pricing update` wrote a new table: priced from the next request on.
  Result<json> pricing_reload(const json&) {
    auto updates = load_price_updates(config.pricing_update_file);
    if (!updates) return fail("pricing: reload failed, keeping the prices in use: " + updates.error().message);
    auto table = std::make_shared<const PricingTable>(config, *updates);
    const std::size_t models = table->models().size();
    pricing->replace(std::move(table));
    daemon_log("pricing reloaded: " + std::to_string(updates->size()) + " updated price(s)");
    return json{{"models", models}, {"updated", updates->size()}};
  }

  Result<json> reload_keys(const json&) {
    auto n = reload("keys reloaded");
    if (!n) return fail("vault: reload failed, keeping the keys in memory: " + n.error().message);
    return json{{"keys", *n}};
  }

  // Re-reads the vault and installs its keys and bound secrets, the scanner's too; returns the
  // number of keys. One reload at a time: the `reload_keys` op (a control thread each, so two
  // `vault rotate` at once) and SIGHUP (the main thread) would otherwise read and replace the
  // bound-secret book together (retire_bound_secrets, retired_seq), and the scanner could end
  // with the older of two reloads.
  Result<std::size_t> reload(const std::string& what) {
    std::lock_guard lock(reload_mutex);
    auto loaded = load_keys(*vault);
    if (!loaded) return std::unexpected(loaded.error());
    const std::size_t n = loaded->keys.size(), bound = loaded->bound.size();
    install_keys(std::move(*loaded));
    immune->set_vault_keys(every_secret());
    daemon_log(what + ": " + std::to_string(n) + " provider(s), " + std::to_string(bound) + " bound secret(s)");
    return n;
  }

  // `tokfence dashboard --print-url`: a one-time login URL for the web dashboard (docs/DASHBOARD.md).
  Result<json> dashboard_login(const json&) {
    if (!dashboard) return fail("dashboard: off: set [dashboard] enabled = true in config.toml, then 'tokfence stop' and 'tokfence start -d'");
    return dashboard->login_url();
  }

  Result<json> shutdown(const json&) {
    // The main thread does the work (sigwait in run_daemon); this thread only answers.
    ::kill(self, SIGTERM);
    return json{{"pid", self}, {"grace_seconds", config.daemon.shutdown_grace_seconds}};
  }

  Result<json> open_proxy_socket(const json& r) {
    if (!r.contains("path") || !r["path"].is_string()) return fail("open_proxy_socket: 'path' (string) is required");
    if (!r.contains("caller") || !r["caller"].is_string() || !valid_label(r["caller"].get<std::string>()))
      return fail("open_proxy_socket: 'caller' must be a non-empty label of printable characters (max 128)");
    ProxySocketInfo s;
    s.path = r["path"].get<std::string>();
    s.caller = r["caller"].get<std::string>();
    s.mode = 0660;
    if (r.contains("mode")) {
      // Range-checked as 64 bits: get<int>() would wrap 4294967296 + 0660 to 0660.
      if (!r["mode"].is_number_integer() || r["mode"].get<std::int64_t>() < 0 || r["mode"].get<std::int64_t>() > 0777)
        return fail("open_proxy_socket: 'mode' must be an integer permission between 0 and 0777 (e.g. 432 = 0660)");
      s.mode = static_cast<int>(r["mode"].get<std::int64_t>());
    }
    s.persist = r.value("persist", false);
    // The forward proxy's policy (docs/EGRESS.md); checked before anything is opened.
    if (r.contains("egress")) {
      auto policy = egress::policy_from_json(r["egress"], server->egress_settings());
      if (!policy) return fail("open_proxy_socket: " + policy.error().message);
      s.egress = std::move(*policy);
    }
    if (!fs::path(s.path).is_absolute()) return fail("open_proxy_socket: path must be absolute: " + s.path);
    if (fs::path(s.path) == main_socket || fs::path(s.path) == home.control_socket())
      return fail("open_proxy_socket: path is one of the daemon's own sockets: " + s.path);
    // ImmuneFence: the socket's own session (launch and run ask for one): its token is the only
    // credential the socket accepts, and it ends when the socket closes.
    std::optional<immune::SessionRequest> session_request;
    if (r.contains("session")) {
      auto req = immune::session_request_from(r["session"]);
      if (!req) return fail("open_proxy_socket: " + req.error().message);
      if (req->kind != "run" && req->kind != "launch") return fail("open_proxy_socket: session.kind must be \"run\" or \"launch\"");
      req->client_id = s.caller;
      req->listener = s.path;
      session_request = std::move(*req);
    }
    for (const auto& open : server->unix_sockets())
      if (open.path == s.path) {
        if (open.caller != s.caller)
          return fail("open_proxy_socket: already open for caller '" + open.caller + "': " + s.path);
        if (session_request) {
          // A new session for this socket (a relaunch): the old one ends with the old listener,
          // and its connections' requests are refused from now on.
          (void)server->close_unix(s.path);
          immune->end_bound(s.path, now_ms());
          break;
        }
        if (r.contains("egress")) {  // re-opened with a policy: it replaces the one in force
          if (auto live = server->egress_policy(s.path)) live->update([&](egress::Policy& p) { p = s.egress; });
          (void)sockets->put_egress(s.path, egress::policy_json(s.egress).dump());
        }
        return json{{"path", s.path}, {"already_open", true}};
      }
    std::optional<immune::Issued> issued;
    if (session_request) {
      auto made = immune->create(std::move(*session_request), now_ms());
      if (!made) return fail("open_proxy_socket: " + made.error().message);
      issued = std::move(*made);
      s.session_id = issued->session->id;
    }
    auto undo_session = [&] {
      if (issued) (void)immune->revoke(issued->session->id, "its socket could not be opened", now_ms());
    };
    if (auto ok = server->listen_unix(s); !ok) {
      undo_session();
      return std::unexpected(ok.error());
    }
    if (s.persist) {
      auto ok = sockets->put(s);
      if (ok) ok = sockets->put_egress(s.path, egress::policy_json(s.egress).dump());
      if (!ok) {
        (void)server->close_unix(s.path);
        undo_session();
        return std::unexpected(ok.error());
      }
    }
    daemon_log("proxy socket opened: " + s.path + " (caller " + s.caller + (s.persist ? ", persisted" : "") +
               (issued ? ", session " + issued->session->name + ")" : ")"));
    json reply = {{"path", s.path}, {"already_open", false}};
    if (issued)
      reply["session"] = {{"session_id", issued->session->id},
                          {"name", issued->session->name},
                          {"token", issued->token},
                          {"expires_at_ms", issued->token_expires_ms},
                          {"decoys", immune->decoys_of(*issued->session)}};
    return reply;
  }

  Result<json> close_proxy_socket(const json& r) {
    if (!r.contains("path") || !r["path"].is_string()) return fail("close_proxy_socket: 'path' (string) is required");
    std::string path = r["path"].get<std::string>();
    if (fs::path(path) == main_socket) return fail("close_proxy_socket: the main proxy socket stays open: " + path);
    auto closed = server->close_unix(path);
    auto removed = sockets->remove(path);
    immune->end_bound(path, now_ms());
    if (!closed) return std::unexpected(closed.error());
    if (!removed) return std::unexpected(removed.error());
    daemon_log("proxy socket closed: " + path);
    return json{{"path", path}};
  }

  Result<json> list_proxy_sockets(const json&) {
    json list = json::array();
    std::set<std::string> persisted;
    if (auto all = sockets->all())
      for (const auto& s : *all) persisted.insert(s.path);
    for (auto s : server->unix_sockets()) {
      if (s.caller.empty()) continue;
      s.persist = persisted.count(s.path) > 0;
      list.push_back(socket_json(s));
    }
    return json{{"sockets", list}};
  }

  // {"op":"egress","caller":C,"action":"allow"|"deny"|"list","rule":"HOST[:PORT]"}: changes or
  // shows the forward-proxy policy of caller C's sockets; a change applies from their next
  // connection on. "list" without a caller: every labeled socket's policy.
  Result<json> egress_op(const json& r) {
    const std::string action = r.contains("action") && r["action"].is_string() ? r["action"].get<std::string>() : "";
    if (action != "allow" && action != "deny" && action != "list")
      return fail("egress: 'action' must be \"allow\", \"deny\" or \"list\"");
    if (r.contains("caller") && !r["caller"].is_string()) return fail("egress: 'caller' must be a string");
    const std::string caller = r.value("caller", std::string());
    std::vector<ProxySocketInfo> matching;
    std::string open_callers;
    for (const auto& s : server->unix_sockets()) {
      if (s.caller.empty()) continue;
      if (open_callers.find("'" + s.caller + "'") == std::string::npos)
        open_callers += (open_callers.empty() ? "'" : ", '") + s.caller + "'";
      if (caller.empty() || s.caller == caller) matching.push_back(s);
    }
    auto listener_json = [](const ProxySocketInfo& s) {
      json j = egress::policy_json(s.egress);
      j["caller"] = s.caller;
      j["path"] = s.path;
      return j;
    };
    if (caller.empty()) {
      if (action != "list") return fail("egress: 'caller' is required to " + action + " (e.g. openclaw:NAME or codex)");
      json all = json::array();
      for (const auto& s : matching) all.push_back(listener_json(s));
      return json{{"listeners", all}};
    }
    if (matching.empty())
      return fail("egress: no proxy socket is open for caller '" + caller + "'" +
                  (open_callers.empty() ? std::string(" (none is open)") : " (open: " + open_callers + ")"));
    if (action != "list") {
      if (!r.contains("rule") || !r["rule"].is_string()) return fail("egress: 'rule' (HOST[:PORT]) is required to " + action);
      auto rule = egress::parse_rule(r["rule"].get<std::string>());
      if (!rule) return std::unexpected(rule.error());
      for (auto& s : matching) {
        auto live = server->egress_policy(s.path);
        if (!live) continue;
        live->update([&](egress::Policy& p) { action == "allow" ? egress::allow(p, *rule) : egress::deny(p, *rule); });
        s.egress = *live->snapshot();
        if (auto ok = sockets->put_egress(s.path, egress::policy_json(s.egress).dump()); !ok)
          daemon_log("warning: egress policy of " + s.path + " not persisted: " + ok.error().message);
      }
      daemon_log("egress: " + caller + ": " + action + " " + rule->text());
    }
    json out = listener_json(matching.front());
    out.erase("path");
    return out;
  }

  using Op = Result<json> (Daemon::*)(const json&);
  static constexpr std::pair<const char*, Op> kOps[] = {
      {"ping", &Daemon::ping},
      {"status", &Daemon::status},
      {"flush_log", &Daemon::flush_log},
      {"widget_snapshot", &Daemon::widget_snapshot},
      {"pricing_reload", &Daemon::pricing_reload},
      {"reload_keys", &Daemon::reload_keys},
      {"shutdown", &Daemon::shutdown},
      {"open_proxy_socket", &Daemon::open_proxy_socket},
      {"close_proxy_socket", &Daemon::close_proxy_socket},
      {"list_proxy_sockets", &Daemon::list_proxy_sockets},
      {"egress", &Daemon::egress_op},
      {"dashboard_login", &Daemon::dashboard_login},
  };

  void register_ops(ControlRouter& router) {
    for (const auto& [op, member] : kOps) router.add(op, [this, member](const json& r) { return (this->*member)(r); });
    controls->register_ops(router);
    immune::register_session_ops(router, immune);
  }

  // Everything the daemon serves from, opened in order; the first failure stops the start.
  Result<void> open(std::shared_ptr<vault::Vault> the_vault) {
    if (!the_vault) return fail("daemon: no vault");
    vault = std::move(the_vault);
    auto loaded = load_keys(*vault);
    if (!loaded) return fail("daemon: cannot load keys: " + loaded.error().message);
    install_keys(std::move(*loaded));

    std::error_code ec;
    fs::create_directories(config.logging.db_path.parent_path(), ec);
    auto log = RequestLog::open(config.logging.db_path, config.logging.retention_days);
    if (!log) return std::unexpected(log.error());
    request_log = std::move(*log);
    auto controls_made = make_controls(config);
    if (!controls_made) return std::unexpected(controls_made.error());
    controls = std::move(*controls_made);
    pricing = std::make_shared<LivePricing>(std::make_shared<const PricingTable>(config));
    auto store = SocketStore::open(config.logging.db_path);
    if (!store) return std::unexpected(store.error());
    sockets.emplace(std::move(*store));

    snapshot_file = std::make_unique<SnapshotWriter>(home.desktop_snapshot_file(), [this] { return snapshot(true); });
    snapshot_file->warn = daemon_log;
    // The I/O threads only mark the snapshot dirty (a flag store); its own thread rewrites it.
    auto observed_log = observe_records(request_log, [file = snapshot_file.get(), m = metrics.get(),
                                                      e = dashboard_events.get()](const RequestRecord& r) {
      m->record(r);
      e->publish(r);
      file->mark_dirty();
    });
    if (auto ok = open_immunefence(); !ok) return ok;
    auto ca = egress::LocalCa::load_or_create(home.root());
    if (!ca) return fail("daemon: egress CA: " + ca.error().message);
    local_ca = std::make_shared<egress::LocalCa>(std::move(*ca));
    auto inspect_tls = [ca = local_ca](const std::string& host) { return ca->server_context(host); };
    auto server_made = ProxyServer::create(
        {config, keys, observed_log, controls, pricing, immune, daemon_log, bound_secrets, inspect_tls});
    if (!server_made) return std::unexpected(server_made.error());
    server = std::move(*server_made);
    return listen();
  }

  // ImmuneFence's signing key and session registry; the scanner starts with the vault's keys.
  Result<void> open_immunefence() {
    auto key = immune::SigningKey::load_or_create(home.immunefence_key());
    if (!key) return std::unexpected(key.error());
    auto notify = [desktop = config.notifications.desktop](const std::string& line, bool alarm) {
      daemon_log(line);
      if (alarm && desktop) desktop_notify("tokfence ImmuneFence", line, true);
    };
    auto registry = immune::Registry::open(config.logging.db_path, std::move(*key),
                                           immune::settings_from(config.immunefence), notify);
    if (!registry) return std::unexpected(registry.error());
    immune = std::move(*registry);
    immune->set_vault_keys(every_secret());
    return restore_session_spend();
  }

  // A session's own daily budget is counted in memory: at start its day comes back from the request
  // log (its requests of the last day, not before it was created), or a restart would start the
  // day again. The window restored starts at the first such request, so it holds at least what the
  // session's real rolling day holds.
  Result<void> restore_session_spend() {
    const std::int64_t now = now_ms();
    for (const auto& session : immune->live()) {
      if (session->limits.budget_daily_pico <= 0) continue;
      auto spend = session_spend_since(config.logging.db_path, session->name,
                                       std::max<std::int64_t>(now - std::int64_t{24} * 3600 * 1000, session->created_ms));
      if (!spend) return std::unexpected(spend.error());
      if (spend->first_ms > 0) session->restore_spend(spend->first_ms, spend->cost);
    }
    return {};
  }

  // A bound secret rotated away, removed or rebound keeps being watched for in its old hosts'
  // answers (never sent: its key has a '~', which no placeholder name has) for the daemon's
  // lifetime, because a host may still hold the old value (docs/EGRESS.md, "Known limits").
  static constexpr std::size_t kMaxRetiredSecrets = 64;
  std::uint64_t retired_seq = 0;
  void retire_bound_secrets(inspect::SecretBook& next) {
    std::size_t retired = 0;
    for (const auto& [name, secret] : next) retired += name.find('~') != std::string::npos ? 1 : 0;
    const auto book = bound_secrets->snapshot();  // held: see status()
    for (const auto& [name, secret] : *book) {
      if (retired >= kMaxRetiredSecrets) break;
      const bool already = name.find('~') != std::string::npos;
      if (!already) {
        auto now = next.find(name);
        if (now != next.end() && now->second.value == secret.value && now->second.hosts == secret.hosts) continue;
      }
      next.emplace(already ? name : name + "~retired-" + std::to_string(++retired_seq), secret);
      ++retired;
    }
  }

  // Provider keys and bound secrets: what the secret_outbound sensor looks for in requests (an
  // agent never holds a bound secret, so one in a model request means it was leaked to it).
  KeyStore::Map every_secret() const {
    KeyStore::Map all = *keys->snapshot();
    const auto book = bound_secrets->snapshot();  // held: see status()
    for (const auto& [name, secret] : *book) all.emplace("secret:" + name, secret.value);
    return all;
  }

  // The TCP listener, the main Unix socket and the persisted per-launch sockets.
  Result<void> listen() {
    auto bound = server->listen_tcp(config.daemon.host, config.daemon.port);
    if (!bound) return std::unexpected(bound.error());
    port = *bound;
    if (config.dashboard.enabled) {
      auto dispatch = [this](const json& op) -> json {
        if (!router_ready.load()) return {{"ok", false}, {"error", "daemon: still starting: try again"}};
        return router.dispatch(op);
      };
      auto started = DashboardListener::start({config.dashboard.port, [this] { return metrics_text(); }, daemon_log,
                                               dispatch, config.logging.db_path, dashboard_events});
      if (!started) return std::unexpected(started.error());
      dashboard = std::move(*started);
      server->add_own_port(dashboard->port());
    }
    main_socket = config.daemon.socket_path.empty() ? home.default_proxy_socket() : config.daemon.socket_path;
    if (main_socket == home.default_proxy_socket()) {
      if (auto ok = ensure_private_dir(main_socket.parent_path()); !ok) return std::unexpected(ok.error());
    } else if (auto dir = check_socket_dir(main_socket.parent_path()); !dir) {
      return std::unexpected(dir.error());
    } else {
      main_socket = *dir / main_socket.filename();
    }
    if (auto ok = server->listen_unix({main_socket.string(), "", 0660, false, {}, {}}); !ok) return std::unexpected(ok.error());
    auto persisted = sockets->all();
    if (!persisted) {
      daemon_log("warning: cannot read persisted proxy sockets: " + persisted.error().message);
      return {};
    }
    for (auto s : *persisted) {
      // Its egress policy, as stored; one that no longer parses (a preset gone from config.toml)
      // leaves the socket with none: deny by default.
      if (auto text = sockets->egress_of(s.path); !text.empty()) {
        auto parsed = json::parse(text, nullptr, false);
        auto policy = egress::policy_from_json(parsed.is_discarded() ? json() : parsed, server->egress_settings());
        if (policy)
          s.egress = std::move(*policy);
        else
          daemon_log("warning: egress policy of " + s.path + " dropped: " + policy.error().message);
      }
      // A socket that belonged to a session comes back only while that session lives (fail
      // closed: a revoked or expired launch must not get a socket with no session's rules).
      if (!s.session_id.empty() && !immune->find(s.session_id)) {
        daemon_log("persisted proxy socket not re-created: " + s.path + ": its session has ended");
        (void)sockets->remove(s.path);
        continue;
      }
      if (auto ok = server->listen_unix(s); !ok)
        daemon_log("warning: persisted proxy socket not re-created: " + ok.error().message);
      else
        daemon_log("proxy socket re-created: " + s.path + " (caller " + s.caller + ")");
    }
    return {};
  }

  json runtime_json() const {
    return {{"pid", self},
            {"host", config.daemon.host},
            {"port", port},
            {"proxy_socket", main_socket.string()},
            {"control_socket", home.control_socket().string()},
            {"vault_backend", vault->backend_name()},
            {"version", version},
            {"started_at", started_at / 1000},
            {"dashboard_port", dashboard ? json(dashboard->port()) : json(nullptr)}};
  }
};

// Blocks until SIGTERM or SIGINT; SIGHUP reloads the keys from the vault and keeps waiting.
int wait_for_stop(const sigset_t& signals, Daemon& daemon) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig != SIGHUP) return sig;
    // The same reload as the `reload_keys` op, bound secrets included in the scanner's needles.
    if (auto n = daemon.reload("keys reloaded (SIGHUP)"); !n) daemon_log("warning: key reload failed: " + n.error().message);
  }
}

}  // namespace

Result<void> run_daemon(DaemonOptions options) {
  harden_process();
  raise_descriptor_limit();
  const Home& home = options.home;
  const Config& config = options.config;
  if (auto ok = home.ensure(); !ok) return std::unexpected(ok.error());

  auto lock = PidLock::acquire(home.pid_file());
  if (!lock) return std::unexpected(lock.error());

  // Signals are taken by sigwait on this thread only; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Daemon daemon{home, config, options.version};
  if (auto ok = daemon.open(std::move(options.vault)); !ok) return std::unexpected(ok.error());
  ControlRouter& router = daemon.router;
  daemon.register_ops(router);
  router.set_observer([file = daemon.snapshot_file.get()](const std::string&) { file->mark_dirty(); });
  daemon.router_ready = true;  // the dashboard's actions may dispatch from now on

  daemon.server->start();
  auto control = ControlServer::start(home.control_socket(), router);
  if (!control) {
    daemon.server->shutdown(std::chrono::seconds(0));
    return std::unexpected(control.error());
  }
  if (auto ok = write_private_file(home.runtime_file(), daemon.runtime_json().dump(2) + "\n"); !ok) {
    (*control)->stop();
    daemon.server->shutdown(std::chrono::seconds(0));
    return std::unexpected(ok.error());
  }
  daemon_log("daemon started (pid " + std::to_string(daemon.self) + "): http://" + config.daemon.host + ":" +
             std::to_string(daemon.port) + ", unix " + daemon.main_socket.string() + ", vault " +
             daemon.vault->backend_name() + ", " + std::to_string(daemon.keys->size()) + " key(s)");
  daemon.snapshot_file->start();
  if (options.on_ready) options.on_ready(daemon.port);

  const int sig = wait_for_stop(signals, daemon);
  daemon_log(std::string("stopping (") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + "): in-flight requests get " +
             std::to_string(config.daemon.shutdown_grace_seconds) + " s");
  daemon.snapshot_file->stop();
  if (daemon.dashboard) daemon.dashboard->stop();
  daemon.server->shutdown(std::chrono::seconds(config.daemon.shutdown_grace_seconds));
  daemon.request_log->flush();
  daemon.snapshot_file->write(daemon.snapshot(false));
  (*control)->stop();
  ::unlink(home.runtime_file().c_str());
  daemon.server.reset();
  daemon.keys->replace({});
  daemon_log("daemon stopped; request log flushed");
  return {};
}

}  // namespace tokfence::proxy
