#include "proxy/immune/sessions.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/file.hpp"
#include "core/money.hpp"
#include "core/names.hpp"
#include "core/sqlite.hpp"
#include "core/time.hpp"

namespace tokfence::immune {

namespace {

using json = nlohmann::json;

constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::string_view kEnvOwnerSuffix = "\tenv";
constexpr std::int64_t kDayMs = 86'400'000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS immune_sessions(
  id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, client_id TEXT NOT NULL, listener TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, limits TEXT NOT NULL, decoys TEXT,
  risk_state TEXT NOT NULL, ended_ms INTEGER, end_reason TEXT);
CREATE TABLE IF NOT EXISTS immune_tokens(
  token_hash TEXT PRIMARY KEY, session_id TEXT NOT NULL, issued_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS immune_transitions(
  session_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
  sensor TEXT NOT NULL, request_id TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS immune_transitions_session ON immune_transitions(session_id, ts_ms);
)sql";

Result<std::vector<std::string>> string_list(const json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) return fail(std::string("session: '") + key + "' must be a list of strings");
  for (const auto& v : j[key]) {
    if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 200)
      return fail(std::string("session: '") + key + "' must hold non-empty strings (at most 200 characters)");
    out.push_back(v.get<std::string>());
  }
  return out;
}

// A session name: what a person types after `tokfence session show`.
bool is_session_name_char(unsigned char c) { return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':'; }

bool valid_session_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), is_session_name_char);
}

// A launch's or run's session is named after its socket's label (any printable text): the
// characters a name may not hold become '-'.
std::string name_from_label(std::string_view label) {
  std::string name;
  for (unsigned char c : label.substr(0, 100)) name.push_back(is_session_name_char(c) ? static_cast<char>(c) : '-');
  return name.empty() ? std::string("agent") : name;
}

RiskState escalate(RiskState a, RiskState b) { return static_cast<RiskState>(std::max(+std::to_underlying(a), +std::to_underlying(b))); }

}  // namespace

std::string_view to_string(Sensor sensor) {
  switch (sensor) {
    case Sensor::honeytoken: return "honeytoken";
    case Sensor::decoy_env: return "decoy_env";
    case Sensor::secret_outbound: return "secret_outbound";
    case Sensor::scope: return "scope";
    case Sensor::egress_denials: return "egress_denials";
    case Sensor::reset: return "reset";
  }
  return "reset";
}

Settings settings_from(const Config::ImmuneFence& c) {
  Settings s;
  s.require_token = c.require_token;
  s.session_ttl_ms = c.session_ttl_hours * 3'600'000LL;
  s.yellow_token_ttl_ms = c.yellow_token_ttl_minutes * 60'000LL;
  s.scope_violations_to_orange = c.scope_violations_to_orange;
  s.egress_denials_per_minute = c.egress_denials_per_minute;
  s.yellow_rpm = c.yellow_rpm;
  auto on = [&](std::string_view name) { return std::find(c.sensors.begin(), c.sensors.end(), name) != c.sensors.end(); };
  s.sensor_honeytoken = on("honeytoken");
  s.sensor_secret_outbound = on("secret_outbound");
  s.sensor_scope = on("scope");
  s.sensor_egress = on("egress_denials");
  return s;
}

json limits_json(const Limits& l) {
  return {{"providers", l.providers}, {"models", l.models}, {"endpoints", l.endpoints}, {"rpm", l.rpm},
          {"budget_daily_pico", l.budget_daily_pico}};
}

Result<Limits> limits_from_json(const json& j) {
  Limits l;
  if (j.is_null()) return l;
  if (!j.is_object()) return fail("session: limits must be an object");
  for (const auto& [key, value] : j.items())
    if (key != "providers" && key != "models" && key != "endpoints" && key != "rpm" && key != "budget_daily_pico")
      return fail("session: unknown limit '" + key + "'");
  auto providers = string_list(j, "providers");
  if (!providers) return std::unexpected(providers.error());
  for (const auto& p : *providers)
    if (!is_valid_provider_name(p)) return fail("session: not a provider name: '" + p + "'");
  auto models = string_list(j, "models");
  if (!models) return std::unexpected(models.error());
  auto endpoints = string_list(j, "endpoints");
  if (!endpoints) return std::unexpected(endpoints.error());
  l.providers = std::move(*providers);
  l.models = std::move(*models);
  l.endpoints = std::move(*endpoints);
  if (j.contains("rpm")) {
    if (!j["rpm"].is_number_integer() || j["rpm"].get<std::int64_t>() < 0 || j["rpm"].get<std::int64_t>() > 100000)
      return fail("session: rpm must be an integer from 0 to 100000");
    l.rpm = j["rpm"].get<int>();
  }
  if (j.contains("budget_daily_pico")) {
    if (!j["budget_daily_pico"].is_number_integer() || j["budget_daily_pico"].get<std::int64_t>() < 0)
      return fail("session: budget_daily_pico must be a non-negative integer");
    l.budget_daily_pico = j["budget_daily_pico"].get<std::int64_t>();
  }
  return l;
}

bool Session::take_rate(std::int64_t now_ms, const Settings& settings) {
  int rpm = limits.rpm;
  if (state() >= RiskState::yellow) rpm = rpm > 0 ? std::max(1, rpm / 2) : settings.yellow_rpm;
  if (rpm <= 0) return true;
  std::lock_guard lock(mutex_);
  const std::int64_t minute = now_ms / kMinuteMs;
  if (minute != rate_minute_) {
    rate_minute_ = minute;
    rate_count_ = 0;
  }
  if (rate_count_ >= rpm) return false;
  ++rate_count_;
  return true;
}

std::int64_t Session::spent_today_pico(std::int64_t now_ms) const {
  std::lock_guard lock(mutex_);
  return now_ms - day_start_ms_ < kDayMs ? spent_pico_ : 0;
}

void Session::restore_spend(std::int64_t day_start_ms, std::int64_t spent_pico) {
  std::lock_guard lock(mutex_);
  day_start_ms_ = day_start_ms;
  spent_pico_ = std::max<std::int64_t>(0, spent_pico);
}

bool Session::try_hold(std::int64_t estimate_pico, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (now_ms - day_start_ms_ >= kDayMs) {  // a rolling day from the first request, per session
    day_start_ms_ = now_ms;
    spent_pico_ = 0;
  }
  const std::int64_t limit = limits.budget_daily_pico;
  const std::int64_t estimate = std::max<std::int64_t>(0, estimate_pico);
  if (limit > 0) {
    const std::int64_t committed = add_saturating(spent_pico_, held_pico_);
    const bool exhausted = committed >= limit;
    const bool fits = add_saturating(committed, estimate) <= limit;
    if (exhausted || (!fits && held_pico_ > 0)) return false;
  }
  held_pico_ = add_saturating(held_pico_, estimate);
  return true;
}

void Session::settle_hold(std::int64_t held_pico, std::int64_t actual_pico, std::int64_t now_ms) {
  std::lock_guard lock(mutex_);
  held_pico_ = std::max<std::int64_t>(0, held_pico_ - held_pico);
  if (now_ms - day_start_ms_ >= kDayMs) {
    day_start_ms_ = now_ms;
    spent_pico_ = 0;
  }
  spent_pico_ = add_saturating(spent_pico_, std::max<std::int64_t>(0, actual_pico));
}

std::optional<BudgetHold> BudgetHold::take(std::shared_ptr<Session> session, std::int64_t estimate_pico,
                                           std::int64_t now_ms) {
  BudgetHold hold;
  if (!session) return hold;
  estimate_pico = std::max<std::int64_t>(0, estimate_pico);
  if (!session->try_hold(estimate_pico, now_ms)) return std::nullopt;
  hold.session_ = std::move(session);
  hold.held_ = estimate_pico;
  return hold;
}

BudgetHold& BudgetHold::operator=(BudgetHold&& other) noexcept {
  if (this != &other) {
    finish(held_);
    session_ = std::move(other.session_);
    held_ = std::exchange(other.held_, 0);
  }
  return *this;
}

void BudgetHold::finish(std::int64_t actual_pico) noexcept {
  if (!session_) return;
  session_->settle_hold(held_, actual_pico, now_ms());
  session_.reset();
  held_ = 0;
}

struct Registry::Impl {
  mutable std::mutex db_mutex;
  sqlite::Database db;
  SigningKey key;
  Notify notify;

  mutable std::shared_mutex mutex;  // sessions, tokens
  std::map<std::string, std::shared_ptr<Session>> sessions;  // live, by id
  std::unordered_map<std::string, std::shared_ptr<TokenEntry>> tokens;  // by hash

  mutable std::mutex scan_mutex;
  std::shared_ptr<const ScanSet> scan = std::make_shared<const ScanSet>(ScanSet{SecretScanner({}), SecretScanner({}), {}});
  // The vault's keys, by provider: the scanner's needles are built from them each time (the
  // scanner wipes its copies; these stay in locked memory).
  std::vector<std::pair<std::string, SecretString>> vault_needles;

  Impl(sqlite::Database d, SigningKey k, Notify n) : db(std::move(d)), key(std::move(k)), notify(std::move(n)) {}

  Result<void> exec(std::string_view sql, const std::function<void(sqlite::Statement&)>& bind) {
    std::lock_guard lock(db_mutex);
    auto st = db.prepare(sql);
    if (!st) return std::unexpected(st.error());
    bind(*st);
    auto done = st->step();
    if (!done) return std::unexpected(done.error());
    return {};
  }

  // A live session by name or id; one past its expiry is ended here (and is not returned).
  std::shared_ptr<Session> find(const std::string& name_or_id) {
    std::shared_ptr<Session> found;
    {
      std::shared_lock lock(mutex);
      if (auto it = sessions.find(name_or_id); it != sessions.end()) found = it->second;
      for (auto it = sessions.begin(); !found && it != sessions.end(); ++it)
        if (it->second->name == name_or_id) found = it->second;
    }
    if (found && found->expires_ms <= now_ms()) {
      (void)end(found, "expired", now_ms());
      return nullptr;
    }
    return found;
  }

  void rebuild_scanner() {
    std::vector<Needle> needles, env_needles;
    std::vector<std::string> owners;
    {
      std::shared_lock lock(mutex);
      for (const auto& [id, s] : sessions) {
        std::lock_guard session_lock(s->mutex_);
        if (!s->decoys_) continue;
        // Two owners per session: its file decoys, and the values planted only as variables.
        const auto file_owner = static_cast<std::uint32_t>(owners.size());
        owners.push_back(id);
        owners.push_back(id + std::string(kEnvOwnerSuffix));
        for (const auto& v : s->decoys_->values) {
          const bool in_file = std::any_of(s->decoys_->files.begin(), s->decoys_->files.end(),
                                           [&](const DecoyFile& f) { return f.content.find(v) != std::string::npos; });
          const bool in_env = std::any_of(s->decoys_->env.begin(), s->decoys_->env.end(),
                                          [&](const auto& e) { return e.second == v; });
          if (in_env && !in_file)
            env_needles.push_back(Needle{v, NeedleKind::decoy, file_owner + 1});
          else
            needles.push_back(Needle{v, NeedleKind::decoy, file_owner});
        }
      }
    }
    std::lock_guard lock(scan_mutex);
    needles.reserve(needles.size() + vault_needles.size());
    for (const auto& [provider, value] : vault_needles) {
      needles.push_back(Needle{std::string(value.reveal()), NeedleKind::vault_key, static_cast<std::uint32_t>(owners.size())});
      owners.push_back(provider);
    }
    scan = std::make_shared<const ScanSet>(
        ScanSet{SecretScanner(std::move(needles)), SecretScanner(std::move(env_needles)), std::move(owners)});
  }

  Result<Issued> issue_token(const std::shared_ptr<Session>& session, std::int64_t now_ms, std::int64_t ttl_ms) {
    Claims claims;
    claims.client_id = session->client_id;
    claims.session_id = session->id;
    claims.scope = session->state() >= RiskState::orange ? "safe" : "proxy";
    claims.risk = session->state();
    claims.issued_at_ms = now_ms;
    claims.expires_at_ms = std::min(session->expires_ms, now_ms + ttl_ms);
    Issued out{session, key.sign(claims), claims.expires_at_ms};
    const std::string hash = token_hash(out.token);
    auto stored = exec("INSERT INTO immune_tokens(token_hash, session_id, issued_ms, expires_ms) VALUES (?, ?, ?, ?)",
                       [&](sqlite::Statement& st) {
                         st.bind(1, hash).bind(2, session->id).bind(3, now_ms).bind(4, claims.expires_at_ms);
                       });
    if (!stored) return std::unexpected(stored.error());
    auto entry = std::make_shared<TokenEntry>();
    entry->session = session;
    entry->expires_ms = claims.expires_at_ms;
    entry->signature_checked = true;  // signed here
    std::unique_lock lock(mutex);
    tokens[hash] = std::move(entry);
    return out;
  }

  void revoke_tokens_of(const Session& session) {
    std::unique_lock lock(mutex);
    for (auto it = tokens.begin(); it != tokens.end();) {
      if (it->second->session.get() == &session) {
        it->second->revoked = true;
        it = tokens.erase(it);
      } else {
        ++it;
      }
    }
  }

  Result<void> end(const std::shared_ptr<Session>& session, const std::string& reason, std::int64_t now_ms) {
    session->ended_ = true;
    revoke_tokens_of(*session);
    {
      std::unique_lock lock(mutex);
      sessions.erase(session->id);
    }
    rebuild_scanner();
    auto ok = exec("UPDATE immune_sessions SET ended_ms = ?, end_reason = ? WHERE id = ?",
                   [&](sqlite::Statement& st) { st.bind(1, now_ms).bind(2, reason).bind(3, session->id); });
    if (ok) ok = exec("DELETE FROM immune_tokens WHERE session_id = ?", [&](sqlite::Statement& st) { st.bind(1, session->id); });
    return ok;
  }

  Result<void> load(std::int64_t now_ms);
};

Result<void> Registry::Impl::load(std::int64_t now_ms) {
  std::lock_guard db_lock(db_mutex);
  auto st = db.prepare(
      "SELECT id, name, kind, client_id, listener, created_ms, expires_ms, limits, decoys, risk_state FROM immune_sessions "
      "WHERE ended_ms IS NULL");
  if (!st) return std::unexpected(st.error());
  std::vector<std::string> expired;
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    auto s = std::make_shared<Session>();
    s->id = row.column_text(0);
    s->name = row.column_text(1);
    s->kind = row.column_text(2);
    s->client_id = row.column_text(3);
    s->listener = row.column_text(4);
    s->created_ms = row.column_int64(5);
    s->expires_ms = row.column_int64(6);
    auto limits = limits_from_json(json::parse(row.column_text(7), nullptr, false));
    auto state = parse_risk_state(row.column_text(9));
    if (s->expires_ms <= now_ms || !limits || !state) {
      expired.push_back(s->id);  // an unreadable row ends its session: fail closed
      return;
    }
    s->limits = std::move(*limits);
    s->state_ = *state;
    if (!row.column_is_null(8))
      if (auto d = decoys_from_json(json::parse(row.column_text(8), nullptr, false))) s->decoys_ = std::move(*d);
    sessions[s->id] = s;
  });
  if (!done) return std::unexpected(done.error());
  for (const auto& id : expired)
    if (auto u = db.prepare("UPDATE immune_sessions SET ended_ms = ?, end_reason = 'expired' WHERE id = ?")) {
      u->bind(1, now_ms).bind(2, id);
      (void)u->step();
    }
  auto tok = db.prepare("SELECT token_hash, session_id, expires_ms FROM immune_tokens WHERE expires_ms > ?");
  if (!tok) return std::unexpected(tok.error());
  tok->bind(1, now_ms);
  done = tok->for_each_row([&](const sqlite::Statement& row) {
    auto it = sessions.find(row.column_text(1));
    if (it == sessions.end()) return;
    auto entry = std::make_shared<TokenEntry>();
    entry->session = it->second;
    entry->expires_ms = row.column_int64(2);
    tokens[row.column_text(0)] = std::move(entry);  // signature checked again on first use
  });
  if (!done) return std::unexpected(done.error());
  auto tr = db.prepare(
      "SELECT session_id, ts_ms, from_state, to_state, sensor, request_id, detail FROM immune_transitions ORDER BY ts_ms");
  if (!tr) return std::unexpected(tr.error());
  return tr->for_each_row([&](const sqlite::Statement& row) {
    auto it = sessions.find(row.column_text(0));
    if (it == sessions.end()) return;
    Transition t;
    t.ts_ms = row.column_int64(1);
    t.from = parse_risk_state(row.column_text(2)).value_or(RiskState::red);
    t.to = parse_risk_state(row.column_text(3)).value_or(RiskState::red);
    for (auto s : {Sensor::honeytoken, Sensor::decoy_env, Sensor::secret_outbound, Sensor::scope, Sensor::egress_denials,
                   Sensor::reset})
      if (to_string(s) == row.column_text(4)) t.sensor = s;
    t.request_id = row.column_text(5);
    t.detail = row.column_text(6);
    it->second->transitions_.push_back(std::move(t));
  });
}

Registry::Registry(std::unique_ptr<Impl> impl, Settings settings) : impl_(std::move(impl)), settings_(settings) {}
Registry::~Registry() = default;

Result<std::unique_ptr<Registry>> Registry::open(const std::filesystem::path& db_path, SigningKey key, Settings settings,
                                                 Notify notify) {
  auto db = sqlite::Database::open(db_path, sqlite::Create::yes);
  if (!db) return std::unexpected(db.error());
  if (auto ok = db->exec(kSchema); !ok) return std::unexpected(ok.error());
  auto impl = std::make_unique<Impl>(std::move(*db), std::move(key), std::move(notify));
  if (auto ok = impl->load(now_ms()); !ok) return std::unexpected(ok.error());
  impl->rebuild_scanner();
  return std::unique_ptr<Registry>(new Registry(std::move(impl), settings));
}

Result<Issued> Registry::create(SessionRequest request, std::int64_t now_ms) {
  if (request.kind != "manual" && request.kind != "run" && request.kind != "launch")
    return fail("session: kind must be manual, run or launch");
  if (request.client_id.empty()) request.client_id = request.name;
  if (request.client_id.empty() || request.client_id.size() > 128)
    return fail("session: a name (or the agent's label) is required, at most 128 characters");
  std::string name = !request.name.empty()        ? request.name
                     : request.kind == "manual"   ? request.client_id
                                                  : name_from_label(request.client_id);
  if (!valid_session_name(name))
    return fail("session: name '" + name + "' must be letters, digits, '-', '_', '.' or ':' (at most 128)");
  if (request.kind == "manual") {
    if (find(name)) return fail("session: '" + name + "' exists: 'tokfence session revoke " + name + "' or pick another name");
  } else {
    // A second run of the same agent gets the next free name (codex, codex-2, ...).
    const std::string base = name;
    for (int n = 2; find(name); ++n) name = base + "-" + std::to_string(n);
  }
  auto s = std::make_shared<Session>();
  s->id = "ses_" + file::random_hex(16);
  s->name = name;
  s->kind = request.kind;
  s->client_id = request.client_id;
  s->listener = request.listener;
  s->limits = std::move(request.limits);
  s->created_ms = now_ms;
  const std::int64_t ttl =
      request.ttl_ms > 0 ? request.ttl_ms : (request.listener.empty() ? settings_.session_ttl_ms : settings_.bound_session_ttl_ms);
  s->expires_ms = now_ms + ttl;
  if (request.decoys) s->decoys_ = make_decoys();
  const std::string decoys = s->decoys_ ? decoys_json(*s->decoys_).dump() : std::string();
  auto stored = impl_->exec(
      "INSERT INTO immune_sessions(id, name, kind, client_id, listener, created_ms, expires_ms, limits, decoys, risk_state) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'GREEN')",
      [&](sqlite::Statement& st) {
        st.bind(1, s->id).bind(2, s->name).bind(3, s->kind).bind(4, s->client_id).bind(5, s->listener);
        st.bind(6, now_ms).bind(7, s->expires_ms).bind(8, limits_json(s->limits).dump());
        if (decoys.empty()) st.bind_null(9); else st.bind(9, decoys);
      });
  if (!stored) return std::unexpected(stored.error());
  {
    std::unique_lock lock(impl_->mutex);
    impl_->sessions[s->id] = s;
  }
  if (s->decoys_) impl_->rebuild_scanner();
  return impl_->issue_token(s, now_ms, ttl);
}

Result<Issued> Registry::issue(const std::string& name_or_id, std::int64_t now_ms) {
  auto s = find(name_or_id);
  if (!s) return fail("session: no live session '" + name_or_id + "' (tokfence session list)");
  if (!s->listener.empty())
    return fail("session: '" + s->name + "' belongs to a launch or run: its token is its agent's alone");
  if (s->state() == RiskState::red)
    return fail("session: '" + s->name + "' is RED: 'tokfence session reset " + s->name + "' after looking at why (tokfence session show " + s->name + ")");
  const std::int64_t ttl = s->state() >= RiskState::yellow ? settings_.yellow_token_ttl_ms : s->expires_ms - now_ms;
  return impl_->issue_token(s, now_ms, ttl);
}

Result<std::shared_ptr<Session>> Registry::revoke(const std::string& name_or_id, std::string reason, std::int64_t now_ms) {
  auto s = find(name_or_id);
  if (!s) return fail("session: no live session '" + name_or_id + "' (tokfence session list)");
  if (auto ok = impl_->end(s, reason, now_ms); !ok) return std::unexpected(ok.error());
  impl_->notify("session " + s->name + " revoked (" + reason + ")", false);
  return s;
}

void Registry::end_bound(const std::string& listener, std::int64_t now_ms) {
  for (const auto& s : live())
    if (!listener.empty() && s->listener == listener) (void)impl_->end(s, "socket closed", now_ms);
}

Result<Issued> Registry::reset(const std::string& name_or_id, std::int64_t now_ms) {
  auto s = find(name_or_id);
  if (!s) return fail("session: no live session '" + name_or_id + "' (tokfence session list)");
  observe(*s, Sensor::reset, "", "tokfence session reset", now_ms);
  if (!s->listener.empty()) {
    // A bound session's token lives inside the fence, where no new one could be delivered, and
    // works on its own socket only: it stays; the state is what changed.
    return Issued{s, "", 0};
  }
  impl_->revoke_tokens_of(*s);
  (void)impl_->exec("DELETE FROM immune_tokens WHERE session_id = ?", [&](sqlite::Statement& st) { st.bind(1, s->id); });
  return impl_->issue_token(s, now_ms, s->expires_ms - now_ms);
}

std::shared_ptr<Session> Registry::find(const std::string& name_or_id) const { return impl_->find(name_or_id); }


std::vector<std::shared_ptr<Session>> Registry::live() const {
  std::vector<std::shared_ptr<Session>> out, expired;
  const std::int64_t now = now_ms();
  {
    std::shared_lock lock(impl_->mutex);
    for (const auto& [id, s] : impl_->sessions) (s->expires_ms <= now ? expired : out).push_back(s);
  }
  // An expired session is ended here as find() ends it, so `session list`, `status` and the
  // dashboard never show one as live that no request could use any more.
  for (const auto& s : expired) (void)impl_->end(s, "expired", now);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->created_ms < b->created_ms; });
  return out;
}

json Registry::describe(const Session& s, bool with_transitions, std::int64_t now_ms) const {
  json out = {{"session_id", s.id},       {"name", s.name},
              {"kind", s.kind},           {"client_id", s.client_id},
              {"listener", s.listener},   {"created_at", utc_rfc3339(s.created_ms)},
              {"expires_at", utc_rfc3339(s.expires_ms)}, {"risk_state", to_string(s.state())},
              {"limits", limits_json(s.limits)}, {"spent_today_pico", s.spent_today_pico(now_ms)}};
  std::lock_guard lock(s.mutex_);
  out["decoys"] = s.decoys_ ? json(s.decoys_->files.size() + s.decoys_->env.size()) : json(0);
  if (with_transitions) {
    json list = json::array();
    for (const auto& t : s.transitions_)
      list.push_back({{"at", utc_rfc3339(t.ts_ms)}, {"from", to_string(t.from)}, {"to", to_string(t.to)},
                      {"sensor", to_string(t.sensor)}, {"request_id", t.request_id}, {"detail", t.detail}});
    out["transitions"] = std::move(list);
  }
  return out;
}

Result<json> Registry::history(std::size_t limit) const {
  std::lock_guard lock(impl_->db_mutex);
  auto st = impl_->db.prepare(
      "SELECT id, name, kind, client_id, created_ms, expires_ms, risk_state, ended_ms, end_reason FROM immune_sessions "
      "ORDER BY created_ms DESC LIMIT ?");
  if (!st) return std::unexpected(st.error());
  st->bind(1, static_cast<std::int64_t>(limit));
  json out = json::array();
  auto done = st->for_each_row([&](const sqlite::Statement& row) {
    json j = {{"session_id", row.column_text(0)}, {"name", row.column_text(1)}, {"kind", row.column_text(2)},
              {"client_id", row.column_text(3)}, {"created_at", utc_rfc3339(row.column_int64(4))},
              {"expires_at", utc_rfc3339(row.column_int64(5))}, {"risk_state", row.column_text(6)}};
    if (!row.column_is_null(7)) {
      j["ended_at"] = utc_rfc3339(row.column_int64(7));
      j["end_reason"] = row.column_text(8);
    }
    out.push_back(std::move(j));
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

std::optional<Refusal> Registry::recheck(const TokenEntry& entry, std::int64_t now_ms) {
  const Session& s = *entry.session;
  if (entry.revoked.load() || s.ended())
    return Refusal{403, "tokfence_capability",
                   "capability: token refused: session '" + s.name + "' has ended or was revoked (start a new one)"};
  if (entry.expires_ms <= now_ms)
    return Refusal{403, "tokfence_capability",
                   "capability: token refused: expired (eval \"$(tokfence env --session " + s.name + ")\" for a new one)"};
  if (s.state() == RiskState::red)
    return Refusal{403, "tokfence_risk_red",
                   "immunefence: session '" + s.name + "' is RED: every request is refused until 'tokfence session reset " +
                       s.name + "' (see 'tokfence session show " + s.name + "' for why)"};
  return std::nullopt;
}

std::variant<std::shared_ptr<TokenEntry>, Refusal> Registry::authorize(std::string_view token, const std::string& bound,
                                                                      bool token_required, std::int64_t now_ms) {
  if (token.empty()) {
    if (!bound.empty())
      return Refusal{403, "tokfence_capability",
                     "capability: this socket belongs to one agent session: requests must carry its token as the API "
                     "key (the agent's rendered config has it)"};
    if (token_required)
      return Refusal{403, "tokfence_capability",
                     "capability: a session token is required as the API key: eval \"$(tokfence env --session NAME)\" "
                     "after 'tokfence session new --name NAME' (or set [immunefence] require_token = false)"};
    return std::shared_ptr<TokenEntry>();
  }
  const std::string hash = token_hash(token);
  std::shared_ptr<TokenEntry> entry;
  {
    std::shared_lock lock(impl_->mutex);
    if (auto it = impl_->tokens.find(hash); it != impl_->tokens.end()) entry = it->second;
  }
  // An unknown hash is refused before any signature work: a stream of made-up tokens must not
  // cost an Ed25519 verification each.
  if (!entry)
    return Refusal{403, "tokfence_capability",
                   "capability: token refused: unknown, or its session has ended or was revoked (start a new one)"};
  if (!entry->signature_checked.load()) {
    auto claims = impl_->key.verify(token, now_ms);
    if (!claims)
      return Refusal{403, "tokfence_capability",
                     "capability: token refused (" + std::string(to_string(claims.error())) + ")"};
    if (claims->session_id != entry->session->id)
      return Refusal{403, "tokfence_capability", "capability: token refused (session mismatch)"};
    entry->signature_checked = true;
  }
  if (auto refused = recheck(*entry, now_ms)) return std::move(*refused);
  if (!bound.empty() && entry->session->id != bound)
    return Refusal{403, "tokfence_capability",
                   "capability: token refused: this socket belongs to another agent session than the token's"};
  // A launch's or run's token works on its own socket only: leaked from the fence, it opens
  // nothing else (not the main listeners).
  if (!entry->session->listener.empty() && entry->session->id != bound)
    return Refusal{403, "tokfence_capability",
                   "capability: token refused: it belongs to a launch or run and works on that agent's socket only"};
  return entry;
}

namespace {
// An endpoint entry is a path glob ("/v1/*") or a method and a path glob ("POST /v1/responses").
bool endpoint_matches(std::string_view entry, std::string_view method, std::string_view path) {
  if (const auto space = entry.find(' '); space != std::string_view::npos) {
    if (entry.substr(0, space) != method) return false;
    entry.remove_prefix(space + 1);
  }
  return glob_match(entry, path);
}
}  // namespace

std::optional<Refusal> Registry::check_scope(Session& s, std::string_view provider, std::string_view model,
                                             std::string_view method, std::string_view path,
                                             std::string_view request_id, std::int64_t now_ms) {
  const Limits& l = s.limits;
  const bool read_only = method == "GET" || method == "HEAD";
  std::string why;
  if (!l.providers.empty() && std::find(l.providers.begin(), l.providers.end(), provider) == l.providers.end())
    why = "provider '" + std::string(provider) + "' is not in the session's providers";
  else if (!l.models.empty() && model.empty() && !read_only)
    why = "the request names no model the proxy can read, and the session is limited to some models";
  else if (!l.models.empty() && !model.empty() &&
           std::none_of(l.models.begin(), l.models.end(), [&](const std::string& g) { return glob_match(g, model); }))
    why = "model '" + std::string(model.substr(0, 100)) + "' is not in the session's models";
  else if (!l.endpoints.empty() &&
           std::none_of(l.endpoints.begin(), l.endpoints.end(),
                        [&](const std::string& e) { return endpoint_matches(e, method, path); }))
    why = std::string(method.substr(0, 10)) + " '" + std::string(path.substr(0, 100)) + "' is not in the session's endpoints";
  if (why.empty()) return std::nullopt;
  if (settings_.sensor_scope) observe(s, Sensor::scope, request_id, why, now_ms);
  return Refusal{403, "tokfence_scope", "immunefence: session '" + s.name + "': " + why};
}

void Registry::observe(Session& s, Sensor sensor, std::string_view request_id, std::string detail, std::int64_t now_ms) {
  RiskState from, to;
  {
    std::lock_guard lock(s.mutex_);
    from = s.state();
    switch (sensor) {
      case Sensor::honeytoken:
      case Sensor::secret_outbound:
        to = RiskState::red;
        break;
      case Sensor::decoy_env:
        to = RiskState::yellow;
        break;
      case Sensor::scope:
        to = ++s.scope_violations_ >= settings_.scope_violations_to_orange ? RiskState::orange : RiskState::yellow;
        break;
      case Sensor::egress_denials: {
        const std::int64_t minute = now_ms / kMinuteMs;
        if (minute != s.egress_minute_) {
          s.egress_minute_ = minute;
          s.egress_denials_ = 0;
        }
        to = ++s.egress_denials_ >= settings_.egress_denials_per_minute ? RiskState::yellow : RiskState::green;
        break;
      }
      case Sensor::reset:
        to = RiskState::green;
        s.scope_violations_ = 0;
        s.egress_denials_ = 0;
        break;
    }
    if (sensor != Sensor::reset) to = escalate(from, to);
    if (to == from) return;
    s.state_ = to;
    s.transitions_.push_back(Transition{now_ms, from, to, sensor, std::string(request_id), detail});
  }
  if (auto ok = impl_->exec("UPDATE immune_sessions SET risk_state = ? WHERE id = ?",
                            [&](sqlite::Statement& st) { st.bind(1, to_string(to)).bind(2, s.id); });
      !ok)
    impl_->notify("immunefence: warning: session " + s.name + "'s risk state not saved (" + ok.error().message +
                      "): it holds until the daemon restarts",
                  true);
  (void)impl_->exec(
      "INSERT INTO immune_transitions(session_id, ts_ms, from_state, to_state, sensor, request_id, detail) "
      "VALUES (?, ?, ?, ?, ?, ?, ?)",
      [&](sqlite::Statement& st) {
        st.bind(1, s.id).bind(2, now_ms).bind(3, to_string(from)).bind(4, to_string(to)).bind(5, to_string(sensor));
        st.bind(6, request_id).bind(7, detail);
      });
  impl_->notify("immunefence: session " + s.name + " " + std::string(to_string(from)) + " -> " +
                    std::string(to_string(to)) + " (" + std::string(to_string(sensor)) + ": " + detail + ")",
                to > from);
}

std::shared_ptr<const ScanSet> Registry::scanner() const {
  std::lock_guard lock(impl_->scan_mutex);
  return impl_->scan;
}

void Registry::set_vault_keys(const std::map<std::string, SecretString, std::less<>>& keys) {
  {
    std::lock_guard lock(impl_->scan_mutex);
    impl_->vault_needles.clear();
    for (const auto& [provider, key] : keys) impl_->vault_needles.emplace_back(provider, key);
  }
  impl_->rebuild_scanner();
}

std::string Registry::describe_hit(const Hit& hit) const {
  auto scan = scanner();
  const std::string owner = hit.owner < scan->owners.size() ? scan->owners[hit.owner] : std::string("?");
  if (hit.kind == NeedleKind::vault_key) return "the vault key of provider '" + owner + "'";
  const bool env = owner.ends_with(kEnvOwnerSuffix);
  const std::string id = env ? owner.substr(0, owner.size() - kEnvOwnerSuffix.size()) : owner;
  auto s = find(id);
  return std::string(env ? "a decoy environment variable" : "a decoy credential") + " of session '" + (s ? s->name : id) + "'";
}


json Registry::decoys_of(const Session& s) const {
  std::lock_guard lock(s.mutex_);
  return s.decoys_ ? decoys_json(*s.decoys_) : json();
}

}  // namespace tokfence::immune
