// The read side of the proxy: `tokfence log`, `stats`, `env`, `provider list|set`, `pricing list`.
// log and stats read the SQLite request log directly (WAL lets them read while the daemon writes),
// so they work whether or not the daemon runs; env asks a running daemon where it listens and
// falls back to the configured address.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "core/file.hpp"
#include "core/names.hpp"
#include "core/providers.hpp"
#include "launcher/cli/cli.hpp"
#include "core/text_format.hpp"
#include "core/time.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/request_json.hpp"
#include "proxy/metering/request_log.hpp"
#include "vault/vault.hpp"

namespace tokfence::cli {

namespace {

using nlohmann::json;
using proxy::LoggedRequest;
using proxy::RequestRecord;

constexpr const char* kDummyKey = "tokfence-managed";

// ---- time ----

std::string local_time(std::int64_t ms) { return format_local(ms, "%Y-%m-%d %H:%M:%S"); }

// JSON for stdout. Logged text comes from clients (a path byte, a model name) and need not be
// UTF-8: bad bytes are replaced rather than making the dump throw. C0 controls are escaped by the
// dump itself, C1 controls by escape_c1_in_json (the dump leaves them raw).
std::string json_text(const json& j, int indent = 2) {
  return escape_c1_in_json(j.dump(indent, ' ', false, json::error_handler_t::replace));
}

std::string iso_utc(std::int64_t ms) { return format_utc(ms, "%Y-%m-%dT%H:%M:%S.%fZ"); }

// "30m", "1h", "7d", "2w", "90s" -> now minus that; "2026-11-01" -> local midnight;
// "2026-11-01T14:30" / "2026-11-01 14:30:00" -> that local time. `flag` names the option in errors.
std::int64_t parse_since(const std::string& text, const std::string& flag) {
  auto bad = [&] {
    return UserError(flag + " '" + text + "': expected a duration like 30m, 1h, 7d or 2w, or a date like 2026-11-01 " +
                     "(or 2026-11-01T14:30)");
  };
  static const std::regex duration(R"(^([0-9]{1,9})([smhdw])$)");
  static const std::regex date(R"(^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?$)");
  std::smatch m;
  if (std::regex_match(text, m, duration)) {
    std::int64_t n = std::stoll(m[1].str());
    std::int64_t unit = 1000;
    switch (m[2].str()[0]) {
      case 'm': unit = 60'000; break;
      case 'h': unit = 3'600'000; break;
      case 'd': unit = 86'400'000; break;
      case 'w': unit = 7 * 86'400'000LL; break;
    }
    if (n > 100LL * 366 * 86'400'000 / unit) throw bad();  // more than a century back is a typo
    return now_ms() - n * unit;
  }
  if (std::regex_match(text, m, date)) {
    std::tm tm{};
    tm.tm_year = std::stoi(m[1].str()) - 1900;
    tm.tm_mon = std::stoi(m[2].str()) - 1;
    tm.tm_mday = std::stoi(m[3].str());
    if (m[4].matched) tm.tm_hour = std::stoi(m[4].str()), tm.tm_min = std::stoi(m[5].str());
    if (m[6].matched) tm.tm_sec = std::stoi(m[6].str());
    tm.tm_isdst = -1;
    std::tm check = tm;
    std::time_t t = std::mktime(&tm);
    // mktime normalizes 2026-02-31 into March: a changed day or month means the date does not exist.
    if (t == static_cast<std::time_t>(-1) || tm.tm_mday != check.tm_mday || tm.tm_mon != check.tm_mon ||
        check.tm_hour > 23 || check.tm_min > 59 || check.tm_sec > 59)
      throw bad();
    return static_cast<std::int64_t>(t) * 1000;
  }
  throw bad();
}

// ---- formatting ----

std::string cost_text(const std::optional<Picodollars>& cost) {
  return cost ? format_usd(*cost) : "unknown";
}

std::string latency_text(double ms) {
  char buf[32];
  if (ms < 1000)
    std::snprintf(buf, sizeof buf, "%.0f ms", ms);
  else
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000);
  return buf;
}

std::string caller_text(const RequestRecord& r) {
  if (r.caller_name.empty() && r.caller_pid == 0) return "-";
  std::string s = r.caller_name.empty() ? "?" : r.caller_name;
  if (r.caller_pid != 0) s += "[" + std::to_string(r.caller_pid) + "]";
  return s;
}

// ---- tokfence log ----

Table log_table() {
  return Table({{"TIME", 19}, {"ID", 20}, {"PROVIDER", 9}, {"MODEL", 16}, {"STATUS", 6}, {"IN", 6}, {"OUT", 6},
                {"CACHE R/W", 9}, {"COST", 10}, {"LATENCY", 7}, {"CALLER", 12}, {"ERROR", 0}});
}

void add_log_row(Table& table, const RequestRecord& r) {
  const auto& u = r.usage;
  table.add({local_time(r.ts_ms), r.id, r.provider, r.model.empty() ? "-" : r.model,
             r.status == 0 ? "-" : std::to_string(r.status), std::to_string(u.input_tokens),
             std::to_string(u.output_tokens),
             u.cache_read_tokens || u.cache_write_tokens
                 ? std::to_string(u.cache_read_tokens) + "/" + std::to_string(u.cache_write_tokens)
                 : "-",
             cost_text(r.cost), latency_text(r.latency_ms), caller_text(r), r.error});
}

void print_detail(const RequestRecord& r) {
  const auto& u = r.usage;
  auto field = [](const char* name, const std::string& value) {
    std::printf("%-14s %s\n", name, printable(value).c_str());
  };
  field("id:", r.id);
  field("time:", local_time(r.ts_ms) + " (" + iso_utc(r.ts_ms) + ")");
  field("provider:", r.provider);
  field("model:", r.model.empty() ? "-" : r.model);
  field("request:", r.method + " " + r.path);
  field("status:", r.status == 0 ? "- (the client went away first)" : std::to_string(r.status));
  field("streaming:", r.streaming ? "yes" : "no");
  field("tokens:", "input " + std::to_string(u.input_tokens) + ", output " + std::to_string(u.output_tokens) +
                       ", cache read " + std::to_string(u.cache_read_tokens) + ", cache write " +
                       std::to_string(u.cache_write_tokens));
  field("cost:", r.cost ? format_usd(*r.cost) + (r.cost_source == "estimate" ? " (estimate: the request ended without usage)" : "")
                       : "unknown (no price for this model: see 'tokfence pricing list')");
  char timing[80];
  std::snprintf(timing, sizeof timing, "%.1f ms total, first byte after %.1f ms", r.latency_ms, r.ttfb_ms);
  field("latency:", timing);
  field("caller:", caller_text(r));
  if (!r.error.empty()) field("error:", r.error);
}

std::atomic<bool> g_stop{false};
// Not extern "C": that would give it a global name, shared with other files' handlers.
void on_follow_signal(int) { g_stop = true; }

void follow_log(const std::filesystem::path& db, proxy::RequestQuery query, bool as_json) {
  // Where to continue from is taken before the first rows are shown, so a row committed in
  // between is shown (once: ids already printed are skipped).
  std::int64_t cursor = value_or_throw(proxy::last_rowid(db));
  auto initial = value_or_throw(proxy::query_requests(db, query));
  std::set<std::string> shown;
  Table table = log_table();
  auto emit = [&](const std::vector<LoggedRequest>& rows, bool header) {
    for (const auto& row : rows) {
      if (as_json)
        std::cout << json_text(proxy::request_json(row.record), -1) << "\n";
      else
        add_log_row(table, row.record);
    }
    if (!as_json && (header || !rows.empty())) table.print(std::cout, header);
    std::cout.flush();
  };
  for (const auto& row : initial) shown.insert(row.record.id);
  emit(initial, true);

  struct sigaction sa {};
  sa.sa_handler = on_follow_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  query.limit = 1000;
  while (!g_stop) {
    query.after_rowid = cursor;
    auto rows = proxy::query_requests(db, query);
    if (!rows) {
      // A busy or briefly unreadable database is retried on the next poll; the message says why.
      std::cerr << "tokfence: warning: " << rows.error().message << "\n";
    } else if (!rows->empty()) {
      cursor = rows->back().rowid;
      std::vector<LoggedRequest> fresh;
      for (auto& row : *rows)
        if (!shown.count(row.record.id)) fresh.push_back(std::move(row));
      shown.clear();  // only the first poll can overlap the initial rows
      emit(fresh, false);
      if (rows->size() == static_cast<std::size_t>(query.limit)) continue;  // more waiting: no pause
    }
    if (!std::cout) return;  // the reader went away (e.g. a closed pipe)
    timespec pause{0, 200'000'000};
    nanosleep(&pause, nullptr);  // a signal cuts it short
  }
}

void check_provider_filter(Context& ctx, const std::string& provider) {
  if (provider.empty()) return;
  value_or_throw(check_provider_name(provider));
}

// ---- tokfence log --egress: the forward proxy's connections (docs/EGRESS.md) ----

json egress_json(const proxy::LoggedEgress& row) {
  const auto& e = row.record;
  return json{{"id", row.id},
              {"ts_ms", e.ts_ms},
              {"time", iso_utc(e.ts_ms)},
              {"caller", e.caller},
              {"caller_pid", e.caller_pid},
              {"kind", e.kind},
              {"host", e.host},
              {"port", e.port},
              {"address", e.address},
              {"decision", e.decision},
              {"rule", e.rule},
              {"bytes_up", e.bytes_up},
              {"bytes_down", e.bytes_down},
              {"duration_ms", e.duration_ms},
              {"error", e.error}};
}

void print_egress(const std::filesystem::path& db, const proxy::EgressQuery& query, bool as_json) {
  auto rows = value_or_throw(proxy::query_egress(db, query));
  if (as_json) {
    json out = json::array();
    for (const auto& row : rows) out.push_back(egress_json(row));
    std::cout << json_text(out) << "\n";
    return;
  }
  if (rows.empty()) {
    std::cerr << "tokfence: no egress connections logged" << (query.since_ms == 0 && query.caller.empty() ? "" : " that match")
              << " yet (" << db.string() << ")\n";
    return;
  }
  Table table({{"TIME", 8}, {"CALLER", 8}, {"DESTINATION", 12}, {"DECISION", 0}, {"RULE", 8}, {"UP", 0}, {"DOWN", 0},
               {"MS", 0}, {"ERROR", 0}});
  for (const auto& row : rows) {
    const auto& e = row.record;
    const bool v6 = e.host.find(':') != std::string::npos;
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.0f", e.duration_ms);
    table.add({local_time(e.ts_ms), printable(e.caller),
               printable((v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port)), e.decision,
               printable(e.rule), std::to_string(e.bytes_up), std::to_string(e.bytes_down), ms, printable(e.error)});
  }
  table.print(std::cout, true);
}

void register_log(CLI::App& app, Context& ctx) {
  struct Options {
    std::string id, provider, since, caller;
    std::string lines = "20";
    bool json = false, follow = false, egress = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "log",
      "Show recent proxied requests from the request log (newest last), or one request in full.\n"
      "Works whether or not the daemon runs.\n"
      "Examples:\n"
      "  tokfence log                          # the last 20 requests\n"
      "  tokfence log -n 50 --provider openai --since 1h\n"
      "  tokfence log req_0123456789abcdef     # one request, every field\n"
      "  tokfence log -f                       # follow new requests live (Ctrl-C stops)\n"
      "  tokfence log --json | jq '.[].cost_usd'\n"
      "  tokfence log --egress                 # connections through the forward proxy, allowed or refused");
  cmd->add_option("request-id", opt->id, "Show only this request (its X-Tokfence-Request-Id)");
  cmd->add_option("-n,--lines", opt->lines, "How many rows to show (default 20)");
  cmd->add_option("--provider", opt->provider, "Only this provider's requests");
  cmd->add_option("--since", opt->since, "Only requests since: 30m, 1h, 7d, 2w, or a date like 2026-11-01");
  cmd->add_flag("--json", opt->json, "JSON: an array of rows (one object for a request id; one object per line with -f)");
  cmd->add_flag("-f,--follow", opt->follow, "Keep printing new requests as the daemon logs them (rows arrive in batches)");
  cmd->add_flag("--egress", opt->egress,
                "Instead: connections through the forward proxy of 'run'/'launch' (host, port, decision, rule, bytes)");
  cmd->add_option("--caller", opt->caller, "With --egress: only this caller's connections (e.g. openclaw:NAME, codex)");
  cmd->callback([opt, &ctx] {
    check_provider_filter(ctx, opt->provider);
    flush_running_daemon(ctx);
    proxy::RequestQuery query;
    query.provider = opt->provider;
    query.limit = 0;
    auto [end, ec] = std::from_chars(opt->lines.data(), opt->lines.data() + opt->lines.size(), query.limit);
    if (ec != std::errc() || end != opt->lines.data() + opt->lines.size() || query.limit < 1 || query.limit > 1'000'000)
      throw UserError("-n '" + opt->lines + "': expected a whole number of rows from 1 to 1000000");
    if (!opt->since.empty()) query.since_ms = parse_since(opt->since, "--since");
    const auto db = ctx.config().logging.db_path;
    if (opt->egress) {
      if (!opt->id.empty() || opt->follow || !opt->provider.empty())
        throw UserError("log: --egress cannot be combined with a request id, --follow or --provider: drop them");
      return print_egress(db, proxy::EgressQuery{query.since_ms, opt->caller, query.limit}, opt->json);
    }
    if (!opt->caller.empty()) throw UserError("log: --caller goes with --egress");
    if (!opt->id.empty()) {
      if (opt->follow) throw UserError("log: --follow cannot be combined with a request id: drop one of them");
      static const std::regex id_shape(R"(^[A-Za-z0-9_-]{1,64}$)");
      if (!std::regex_match(opt->id, id_shape))
        throw UserError("request id '" + opt->id + "': not a request id: they look like req_0123456789abcdef");
      query.id = opt->id;
      query.limit = 1;
      auto rows = value_or_throw(proxy::query_requests(db, query));
      if (rows.empty())
        throw UserError("request '" + opt->id + "': not in the request log " + db.string() +
                        " (rows older than [logging] retention_days are pruned): run 'tokfence log' to see recent ids");
      if (opt->json)
        std::cout << json_text(proxy::request_json(rows[0].record)) << "\n";
      else
        print_detail(rows[0].record);
      return;
    }
    if (opt->follow) return follow_log(db, query, opt->json);
    auto rows = value_or_throw(proxy::query_requests(db, query));
    if (opt->json) {
      json out = json::array();
      for (const auto& row : rows) out.push_back(proxy::request_json(row.record));
      std::cout << json_text(out) << "\n";
      return;
    }
    if (rows.empty()) {
      std::cerr << "tokfence: no requests logged" << (query.provider.empty() && query.since_ms == 0 ? "" : " that match")
                << " yet (" << db.string() << ")\n";
      return;
    }
    Table table = log_table();
    for (const auto& row : rows) add_log_row(table, row.record);
    table.print(std::cout, true);
  });
}

// ---- tokfence stats ----

std::string totals_cost_text(const proxy::Totals& t) {
  if (t.requests > 0 && t.unknown_cost_requests == t.requests) return "unknown";
  std::string s = format_usd(t.cost);
  if (t.unknown_cost_requests > 0) s += " + " + std::to_string(t.unknown_cost_requests) + " unknown";
  return s;
}

json totals_json(const proxy::Totals& t) {
  return json{{"requests", t.requests},
              {"input_tokens", t.input_tokens},
              {"output_tokens", t.output_tokens},
              {"cache_read_tokens", t.cache_read_tokens},
              {"cache_write_tokens", t.cache_write_tokens},
              {"cost_pico", t.cost},
              {"cost_usd", format_usd(t.cost)},
              {"unknown_cost_requests", t.unknown_cost_requests}};
}

void register_stats(CLI::App& app, Context& ctx) {
  struct Options {
    std::string period = "7d", by = "model", provider;
    bool json = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "stats",
      "Sum requests, tokens and cost from the request log over a period, grouped by model, provider or caller.\n"
      "Cost counts only requests with a known price; the others are counted as 'unknown', never as $0.\n"
      "Examples:\n"
      "  tokfence stats                         # the last 7 days, by model\n"
      "  tokfence stats --period 24h --by caller\n"
      "  tokfence stats --period 2026-11-01 --by provider --json");
  cmd->add_option("--period", opt->period, "How far back: 30m, 24h, 7d, 2w, a date like 2026-11-01, or 'all' (default 7d)");
  cmd->add_option("--by", opt->by,
                  "Group by model, provider or caller (default model); 'host': the forward proxy's connections by destination")
      ->check(CLI::IsMember({"model", "provider", "caller", "session", "host"}));
  cmd->add_option("--provider", opt->provider, "Only this provider's requests");
  cmd->add_flag("--json", opt->json, "JSON: {since, by, groups: [...], total}");
  cmd->callback([opt, &ctx] {
    check_provider_filter(ctx, opt->provider);
    flush_running_daemon(ctx);
    std::int64_t since = opt->period == "all" ? 0 : parse_since(opt->period, "--period");
    if (opt->by == "host") {
      if (!opt->provider.empty()) throw UserError("stats: --by host counts egress connections: drop --provider");
      auto hosts = value_or_throw(proxy::egress_totals_by_host(ctx.config().logging.db_path, since));
      if (opt->json) {
        json out{{"since_ms", since}, {"since", since ? json(iso_utc(since)) : json(nullptr)}, {"by", "host"}};
        out["groups"] = json::array();
        for (const auto& h : hosts)
          out["groups"].push_back(json{{"host", h.host}, {"allowed", h.allowed}, {"denied", h.denied},
                                       {"bytes_up", h.bytes_up}, {"bytes_down", h.bytes_down}});
        std::cout << json_text(out) << "\n";
        return;
      }
      std::cout << "Egress connections since " << (since ? local_time(since) : std::string("the first one")) << " ("
                << opt->period << "), by host:\n";
      Table table({{"HOST", 12}, {"ALLOWED", 0}, {"DENIED", 0}, {"BYTES UP", 0}, {"BYTES DOWN", 0}});
      for (const auto& h : hosts)
        table.add({printable(h.host), std::to_string(h.allowed), std::to_string(h.denied), std::to_string(h.bytes_up),
                   std::to_string(h.bytes_down)});
      table.print(std::cout, true);
      return;
    }
    auto by = opt->by == "provider" ? proxy::GroupBy::provider
              : opt->by == "caller"  ? proxy::GroupBy::caller
              : opt->by == "session" ? proxy::GroupBy::session
                                     : proxy::GroupBy::model;
    const auto db = ctx.config().logging.db_path;
    auto groups = value_or_throw(proxy::totals_by(db, since, by, opt->provider));
    auto total = value_or_throw(proxy::totals_since(db, since, opt->provider));
    if (opt->json) {
      json out{{"since_ms", since}, {"since", since ? json(iso_utc(since)) : json(nullptr)}, {"by", opt->by},
               {"provider", opt->provider.empty() ? json(nullptr) : json(opt->provider)}};
      out["groups"] = json::array();
      for (const auto& g : groups) {
        json j = totals_json(g.totals);
        j[opt->by] = g.key;
        out["groups"].push_back(std::move(j));
      }
      out["total"] = totals_json(total);
      std::cout << json_text(out) << "\n";
      return;
    }
    std::cout << "Requests since " << (since ? local_time(since) : std::string("the first one")) << " ("
              << opt->period << ")" << (opt->provider.empty() ? "" : ", provider " + opt->provider) << ", by "
              << opt->by << ":\n";
    std::string key_header = opt->by == "model" ? "MODEL" : opt->by == "provider" ? "PROVIDER" : "CALLER";
    Table table({{key_header, 12}, {"REQUESTS", 0}, {"INPUT", 0}, {"OUTPUT", 0}, {"CACHE READ", 0},
                 {"CACHE WRITE", 0}, {"COST", 0}});
    auto add = [&](const std::string& key, const proxy::Totals& t) {
      table.add({key, std::to_string(t.requests), std::to_string(t.input_tokens), std::to_string(t.output_tokens),
                 std::to_string(t.cache_read_tokens), std::to_string(t.cache_write_tokens), totals_cost_text(t)});
    };
    for (const auto& g : groups) add(g.key, g.totals);
    add("TOTAL", total);
    table.print(std::cout, true);
    if (total.unknown_cost_requests > 0)
      std::cout << "(" << total.unknown_cost_requests
                << (total.unknown_cost_requests == 1 ? " request used a model" : " requests used models")
                << " without a known price: add it with [pricing.\"<model>\"] in config.toml)\n";
  });
}

// ---- tokfence env ----

enum class Shell { bash, zsh, fish };

std::string shell_quote(Shell shell, const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (shell == Shell::fish) {
      // fish single quotes: only \' and \\ are escapes.
      if (c == '\\' || c == '\'') out += '\\';
      out += c;
    } else if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

bool is_env_name(const std::string& name) {
  static const std::regex shape("^[A-Za-z_][A-Za-z0-9_]*$");
  return std::regex_match(name, shape);
}

std::string base_url_for(Context& ctx) {
  if (auto daemon = proxy::running_daemon(ctx.home)) return daemon->base_url();
  const auto& d = ctx.config().daemon;
  if (d.port == 0)
    throw UserError("env: the daemon is not running and [daemon] port is 0 (chosen at start): run 'tokfence start -d' first");
  std::string host = d.host;
  // A wildcard listen address is reached through loopback.
  if (host == "0.0.0.0" || host.empty()) host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(d.port);
}

// The value env puts in the key variables: a session token (--session, or the session "env" when
// the proxy requires tokens), else the dummy key the proxy replaces. The token goes to stdout only,
// for the user's own shell, like any API key an SDK is given.
std::string env_key(Context& ctx, const std::string& session) {
  const bool required = ctx.config().immunefence.require_token;
  if (session.empty() && !required) return kDummyKey;
  if (!proxy::running_daemon(ctx.home)) {
    if (!session.empty())
      throw UserError("env: --session needs the running daemon (it signs tokens): run 'tokfence start -d' first");
    std::cerr << "tokfence: env: the proxy requires a session token and the daemon is not running: start it "
                 "('tokfence start -d') and run env again; the key variables hold a placeholder meanwhile\n";
    return kDummyKey;
  }
  const std::string name = session.empty() ? std::string("env") : session;
  auto reply = proxy::control_call(ctx.home, {{"op", "session_token"}, {"name", name}});
  if (!reply && session.empty()) {
    reply = proxy::control_call(ctx.home, {{"op", "session_new"}, {"name", name}, {"kind", "manual"}});
  }
  if (!reply) throw UserError("env: " + reply.error().message);
  return reply->value("token", std::string(kDummyKey));
}

void register_env(CLI::App& app, Context& ctx) {
  struct Options {
    std::string shell, provider, session;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "env",
      "Print shell exports that point AI SDKs at the tokfence proxy: OPENAI_BASE_URL, ANTHROPIC_BASE_URL,\n"
      "GOOGLE_GEMINI_BASE_URL, and every provider's key variables set to the dummy value 'tokfence-managed'\n"
      "(the proxy drops it and injects the real key). The proxy address is the running daemon's, else the\n"
      "configured [daemon] host and port.\n"
      "Examples:\n"
      "  eval \"$(tokfence env)\"                      # bash or zsh\n"
      "  tokfence env --shell fish | source\n"
      "  eval \"$(tokfence env --provider anthropic)\"\n"
      "  eval \"$(tokfence env --session ci)\"         # a token of session 'ci' (tokfence session new --name ci)\n"
      "With [immunefence] require_token = true (the default) the key variables hold a session token: the\n"
      "one of --session, else of the session 'env' (created when missing); the daemon must be running.");
  cmd->add_option("--session", opt->session, "Use a fresh token of this session (tokfence session new)");
  cmd->add_option("--shell", opt->shell, "bash, zsh or fish (default: from $SHELL, else bash)");
  cmd->add_option("--provider", opt->provider, "Only this provider's variables");
  cmd->callback([opt, &ctx] {
    std::string shell_name = opt->shell;
    if (shell_name.empty()) {
      const char* env_shell = std::getenv("SHELL");
      std::string base = env_shell ? std::filesystem::path(env_shell).filename().string() : "";
      shell_name = (base == "zsh" || base == "fish") ? base : "bash";
    }
    Shell shell;
    if (shell_name == "bash") shell = Shell::bash;
    else if (shell_name == "zsh") shell = Shell::zsh;
    else if (shell_name == "fish") shell = Shell::fish;
    else throw UserError("--shell '" + shell_name + "': unsupported shell: use bash, zsh or fish");

    const Config& config = ctx.config();
    std::vector<ProviderSpec> providers = config.providers();
    if (!opt->provider.empty()) {
      value_or_throw(check_provider_name(opt->provider));
      auto spec = config.provider(opt->provider);
      if (!spec) {
        std::string known;
        for (const auto& p : providers) known += (known.empty() ? "" : ", ") + p.name;
        throw UserError("provider '" + opt->provider + "': unknown: known providers are " + known +
                        " (add one with 'tokfence provider set')");
      }
      providers = {*spec};
    }
    const std::string base = base_url_for(ctx);
    const std::string key = env_key(ctx, opt->session);

    std::ostringstream out;
    std::set<std::string> done;
    auto set = [&](const std::string& name, const std::string& value) {
      if (!done.insert(name).second) return;
      if (shell == Shell::fish)
        out << "set -gx " << name << " " << shell_quote(shell, value) << ";\n";
      else
        out << "export " << name << "=" << shell_quote(shell, value) << ";\n";
    };
    // Comments carry the address too: a newline in it (from a hostile config) must not end the
    // comment and start a command, so it goes through printable().
    out << "# tokfence env: SDKs talk to the tokfence proxy at " << printable(base) << "; real keys stay in the vault.\n";
    if (opt->provider.empty()) set("TOKFENCE_PROXY_URL", base);
    for (const auto& p : providers) {
      const std::string endpoint = base + "/" + p.name + p.client_base_suffix;
      out << "# " << p.name << ": " << to_string(p.style) << " API at " << printable(endpoint) << "\n";
      // Only the base-URL variables that SDKs commonly read, and whose expected shape matches.
      if (p.name == "openai") set("OPENAI_BASE_URL", endpoint);
      if (p.name == "anthropic") set("ANTHROPIC_BASE_URL", endpoint);
      if (p.name == "google") set("GOOGLE_GEMINI_BASE_URL", base + "/google");  // the SDK adds /v1beta
      for (const auto& var : key_env_vars(p.name)) {
        if (is_env_name(var))
          set(var, key);
        else
          out << "# (" << var << " is not a valid variable name: set the key in your client yourself)\n";
      }
    }
    std::cout << out.str();
  });
}

// ---- tokfence provider list|set ----


// An upstream must be an absolute http(s) URL with a host and nothing that would change where
// requests go or leak (no credentials, query or fragment). Returns it without trailing slashes.
std::string checked_upstream(std::string url) {
  auto bad = [&](const std::string& why) {
    return UserError("upstream '" + url + "': " + why + ": use e.g. https://api.example.com/v1 or http://127.0.0.1:8080");
  };
  std::string rest;
  if (url.rfind("https://", 0) == 0) rest = url.substr(8);
  else if (url.rfind("http://", 0) == 0) rest = url.substr(7);
  else throw bad("must start with http:// or https://");
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '`' || c == '{' || c == '}')
      throw bad("contains a space, a quote or another character that does not belong in a URL");
  if (url.find('?') != std::string::npos || url.find('#') != std::string::npos) throw bad("must not have a query or fragment");
  std::string authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos) throw bad("must not contain credentials (keys belong in the vault)");
  if (authority.empty() || authority[0] == ':') throw bad("has no host");
  static const std::regex host_port(R"(^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$)");
  std::smatch m;
  if (!std::regex_match(authority, m, host_port)) throw bad("has a malformed host or port");
  if (m[3].matched && (std::stoi(m[3].str()) < 1 || std::stoi(m[3].str()) > 65535)) throw bad("has a port outside 1-65535");
  while (url.size() > 1 && url.back() == '/') url.pop_back();
  return url;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

using ProviderKeys = std::vector<std::pair<std::string, std::string>>;

// Whether `text` is TOML in which [providers.<name>] holds every one of `keys`.
bool has_provider_keys(const std::string& text, const std::string& name, const ProviderKeys& keys) {
  try {
    toml::table root = toml::parse(text);
    for (const auto& [k, v] : keys)
      if (root["providers"][name][k].value<std::string>() != v) return false;
    return true;
  } catch (const toml::parse_error&) {
    return false;
  }
}

struct EditedConfig {
  std::string text;
  bool rewritten = false;  // produced by toml++'s serializer: comments and layout are gone
};

// Sets keys of [providers.<name>] in config text, keeping the file as the user wrote it where
// possible. Candidates, first one that yields the wanted keys wins:
//  1. edit lines in place when the table has its own `[providers.<name>]` header and each key sits
//     on one line of its own (new keys go right below the header);
//  2. append a `[providers.<name>]` section (a new provider, or one so far only implied by a
//     sub-table such as [providers.<name>.headers]);
//  3. rewrite the document with toml++ (every setting kept, comments dropped) for the rest
//     (inline tables, dotted keys, multi-line values).
EditedConfig set_provider_keys(const std::string& text, const std::string& name, const ProviderKeys& keys,
                               const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description()
        << ": fix the file first; nothing was changed";
    throw UserError(msg.str());
  }
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  toml::table* table = root["providers"][name].as_table();

  // 1. In place.
  if (table && !table->is_inline()) {
    std::size_t header = table->source().begin.line;  // 1-based; 0 = unknown
    // The header must be exactly [providers.<name>] (spacing and quotes aside), not a sub-table
    // such as [providers.<name>.headers] that made this table implicitly.
    std::string header_text;
    if (header > 0 && header <= lines.size()) {
      const std::string& line = lines[header - 1];
      for (char c : line.substr(0, line.find('#')))
        if (c != ' ' && c != '\t' && c != '"' && c != '\'') header_text += c;
    }
    if (header_text == "[providers." + name + "]") {
      std::vector<std::string> edited = lines, inserts;
      bool in_place = true;
      for (const auto& [k, v] : keys) {
        toml::node* node = table->get(k);
        std::string line = k + " = " + toml_string(v);
        if (!node) {
          inserts.push_back(line);
          continue;
        }
        std::size_t at = node->source().begin.line;
        if (at == 0 || at > edited.size() || node->source().end.line != at || trim(edited[at - 1]).rfind(k, 0) != 0) {
          in_place = false;
          break;
        }
        // A comment after the old value stays after the new one.
        std::size_t end = node->source().end.column;
        if (end > 0 && end - 1 <= edited[at - 1].size()) {
          std::string rest = trim(std::string_view(edited[at - 1]).substr(end - 1));
          if (!rest.empty() && rest[0] == '#') line += "  " + rest;
        }
        edited[at - 1] = line;
      }
      if (in_place) {
        edited.insert(edited.begin() + static_cast<std::ptrdiff_t>(header), inserts.begin(), inserts.end());
        std::string out;
        for (const auto& l : edited) out += l + "\n";
        if (has_provider_keys(out, name, keys)) return {out, false};
      }
    }
  }
  // 2. A section of its own at the end.
  {
    std::string out = text;
    if (!out.empty() && out.back() != '\n') out += "\n";
    if (!out.empty()) out += "\n";
    out += "[providers." + name + "]\n";
    // Keys the table already has (e.g. set through dotted keys) would be duplicates: this
    // candidate then fails to parse and the rewrite below takes over.
    for (const auto& [k, v] : keys) out += k + " = " + toml_string(v) + "\n";
    if (has_provider_keys(out, name, keys)) return {out, false};
  }
  // 3. A structural rewrite.
  toml::table* providers = root.get_as<toml::table>("providers");
  if (!providers) {
    root.insert_or_assign("providers", toml::table{});
    providers = root.get_as<toml::table>("providers");
  }
  if (!providers->get_as<toml::table>(name)) providers->insert_or_assign(name, toml::table{});
  toml::table* t = providers->get_as<toml::table>(name);
  for (const auto& [k, v] : keys) t->insert_or_assign(k, v);
  std::ostringstream out;
  out << root << "\n";
  return {out.str(), true};
}

// Replaces the file atomically (random O_EXCL temporary file + rename, core/file), mode 0600: a link
// planted at the name or at a guessable temporary name is replaced, never written through.
void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  auto ok = file::write_atomic(path, text, {.mode = 0600, .owner = std::nullopt});
  if (!ok) throw UserError("config " + path.string() + ": cannot write: " + ok.error().message);
}

void register_provider(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand(
      "provider",
      "Show or change where each provider's requests go.\n"
      "Examples:\n"
      "  tokfence provider list\n"
      "  tokfence provider set ollama http://127.0.0.1:11434 --api openai");
  group->require_subcommand(1);

  auto list_json = std::make_shared<bool>(false);
  auto* list = group->add_subcommand(
      "list",
      "List providers: name, upstream, auth scheme, API style, whether the vault has a key, and where the\n"
      "definition comes from (built-in or config). Key presence is '?' when finding out would need a prompt\n"
      "(file vault without TOKFENCE_VAULT_PASSPHRASE).\n"
      "Example:\n  tokfence provider list --json | jq -r '.[] | select(.key == false) | .name'");
  list->add_flag("--json", *list_json, "JSON array; key is true, false or null (unknown)");
  list->callback([list_json, &ctx] {
    const Config& config = ctx.config();
    auto keys = providers_with_keys(ctx);
    if (*list_json) {
      json out = json::array();
      for (const auto& p : config.providers()) {
        out.push_back(json{{"name", p.name},
                           {"upstream", p.upstream},
                           {"auth", std::string(to_string(p.auth))},
                           {"api", std::string(to_string(p.style))},
                           {"key", keys ? json(keys->count(p.name) > 0) : json(nullptr)},
                           {"source", p.builtin ? "builtin" : "config"},
                           {"proxy_path", "/" + p.name + p.client_base_suffix}});
      }
      std::cout << json_text(out) << "\n";
      return;
    }
    Table table({{"NAME", 0}, {"UPSTREAM", 0}, {"AUTH", 0}, {"API", 0}, {"KEY", 0}, {"SOURCE", 0}});
    for (const auto& p : config.providers())
      table.add({p.name, p.upstream, std::string(to_string(p.auth)), std::string(to_string(p.style)),
                 keys ? (keys->count(p.name) ? "yes" : "no") : "?", p.builtin ? "builtin" : "config"});
    table.print(std::cout, true);
    if (!keys) std::cout << "(KEY '?': set TOKFENCE_VAULT_PASSPHRASE, or run 'tokfence vault list')\n";
  });

  struct SetOptions {
    std::string name, upstream, auth, api;
  };
  auto opt = std::make_shared<SetOptions>();
  auto* set = group->add_subcommand(
      "set",
      "Point a provider at an upstream URL (writes [providers.<name>] in config.toml; other settings are kept).\n"
      "A new name adds a provider (OpenAI-style with Bearer auth unless --api/--auth say otherwise). A running\n"
      "daemon is asked to reload its config.\n"
      "Examples:\n"
      "  tokfence provider set openai https://api.openai.com\n"
      "  tokfence provider set ollama http://127.0.0.1:11434 --api openai --auth bearer");
  set->add_option("provider", opt->name, "Provider name ([a-z0-9][a-z0-9_-]{0,31})")->required();
  set->add_option("upstream-url", opt->upstream, "Where its API lives: scheme://host[:port][/base-path]")->required();
  set->add_option("--auth", opt->auth, "How the key is sent: bearer, x-api-key or x-goog-api-key");
  set->add_option("--api", opt->api, "Wire format: openai, anthropic or gemini");
  set->callback([opt, &ctx] {
    value_or_throw(check_provider_name(opt->name));
    std::string upstream = checked_upstream(opt->upstream);
    if (!opt->auth.empty() && !parse_auth_scheme(opt->auth))
      throw UserError("--auth '" + opt->auth + "': unknown auth scheme: use bearer, x-api-key or x-goog-api-key");
    if (!opt->api.empty() && !parse_api_style(opt->api))
      throw UserError("--api '" + opt->api + "': unknown API style: use openai, anthropic or gemini");
    (void)ctx.config();  // the current file must load before it is changed
    value_or_throw(ctx.home.ensure());
    const auto path = ctx.home.config_file();
    std::string text;
    if (std::ifstream in{path}) {
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    ProviderKeys keys{{"upstream", upstream}};
    if (!opt->auth.empty()) keys.emplace_back("auth", opt->auth);
    if (!opt->api.empty()) keys.emplace_back("api", opt->api);
    EditedConfig edit = set_provider_keys(text, opt->name, keys, path.string());
    const std::string& updated = edit.text;
    // Never write a file tokfence itself would refuse: re-read the result and compare.
    auto check = parse_config(updated, path.string(), ctx.home);
    auto spec = check ? check->config.provider(opt->name) : std::nullopt;
    if (!spec || spec->upstream != upstream || (!opt->auth.empty() && to_string(spec->auth) != opt->auth) ||
        (!opt->api.empty() && to_string(spec->style) != opt->api))
      throw UserError("config " + path.string() + ": could not update [providers." + opt->name + "]" +
                      (check ? std::string() : ": " + check.error().message) + ": nothing was changed");
    if (edit.rewritten && !text.empty()) {
      auto backup = path;
      backup += ".bak";
      write_file_atomically(backup, text);
      std::cerr << "tokfence: note: " << path.string() << " was rewritten (its layout did not allow an edit in "
                << "place): every setting is kept, comments are not; the previous file is " << backup.string() << "\n";
    }
    write_file_atomically(path, updated);
    std::cout << "provider " << opt->name << ": upstream " << spec->upstream << ", auth " << to_string(spec->auth)
              << ", api " << to_string(spec->style) << " (saved in " << path.string() << ")\n";
    if (!proxy::running_daemon(ctx.home)) return;
    auto reply = proxy::control_call(ctx.home, {{"op", "reload_config"}});
    if (reply) {
      std::cerr << "tokfence: the running daemon reloaded its config\n";
    } else if (reply.error().message.find("unknown op") != std::string::npos) {
      std::cerr << "tokfence: note: the running daemon cannot reload its config: restart it with 'tokfence stop' and "
                   "'tokfence start -d'\n";
    } else {
      std::cerr << "tokfence: warning: the running daemon did not reload its config: " << reply.error().message
                << ": restart it with 'tokfence stop' and 'tokfence start -d'\n";
    }
  });
}

// ---- tokfence pricing list ----

void register_pricing(CLI::App& app, Context& ctx) {
  auto* group = app.add_subcommand("pricing",
                                   "Show the prices tokfence uses to compute cost.\n"
                                   "Example:\n  tokfence pricing list --provider anthropic");
  group->require_subcommand(1);
  struct Options {
    std::string provider;
    bool json = false;
    bool unknown = false;
  };
  auto opt = std::make_shared<Options>();
  auto* list = group->add_subcommand(
      "list",
      "List model prices in USD per million tokens (input, output, cache read, cache write): the built-in\n"
      "table plus [pricing.\"<model>\"] from config.toml. Dated names (gpt-4o-2024-08-06) use their base model.\n"
      "Examples:\n  tokfence pricing list\n  tokfence pricing list --provider openai --json");
  list->add_option("--provider", opt->provider, "Only this provider's models");
  list->add_flag("--json", opt->json, "JSON array; prices as numbers in USD per million tokens");
  list->add_flag("--unknown", opt->unknown, "Instead: the models in the request log that have no price");
  list->callback([opt, &ctx] {
    const Config& config = ctx.config();
    if (!opt->provider.empty()) {
      value_or_throw(check_provider_name(opt->provider));
      if (!config.provider(opt->provider))
        throw UserError("provider '" + opt->provider + "': unknown: run 'tokfence provider list' to see the known ones");
    }
    if (opt->unknown) {
      print_unknown_models(ctx, opt->provider, opt->json);
      return;
    }
    proxy::PricingTable table(config);
    std::vector<proxy::PricedModel> models = opt->provider.empty() ? table.models() : table.models_of(opt->provider);
    if (opt->json) {
      json out = json::array();
      auto usd = [](std::int64_t micro) { return static_cast<double>(micro) / 1e6; };
      for (const auto& m : models)
        out.push_back(json{{"provider", m.provider.empty() ? json(nullptr) : json(m.provider)},
                           {"model", m.model},
                           {"input", usd(m.price.input)},
                           {"output", usd(m.price.output)},
                           {"cache_read", usd(m.price.cache_read)},
                           {"cache_write", usd(m.price.cache_write)}});
      std::cout << json_text(out) << "\n";
      return;
    }
    Table t({{"PROVIDER", 0}, {"MODEL", 0}, {"INPUT", 0}, {"OUTPUT", 0}, {"CACHE READ", 0}, {"CACHE WRITE", 0}});
    for (const auto& m : models)
      t.add({m.provider.empty() ? "*" : m.provider, m.model, usd_per_million(m.price.input),
             usd_per_million(m.price.output), usd_per_million(m.price.cache_read), usd_per_million(m.price.cache_write)});
    std::cout << "USD per million tokens:\n";
    t.print(std::cout, true);
  });
  register_pricing_update(*group, ctx);
}

}  // namespace

std::optional<std::set<std::string>> providers_with_keys(Context& ctx) {
  vault::PassphraseSource no_prompt = [](const std::string&, bool) -> Result<SecretString> {
    const char* env = std::getenv("TOKFENCE_VAULT_PASSPHRASE");
    if (!env || !*env) return fail("vault: no passphrase without a prompt");
    return SecretString(env);
  };
  auto v = vault::open_vault(ctx.config(), ctx.home, no_prompt);
  if (!v) return std::nullopt;
  auto keys = (*v)->list();
  if (!keys) return std::nullopt;
  std::set<std::string> names;
  for (const auto& k : *keys)
    if (k.hosts.empty()) names.insert(k.provider);  // a secret bound to hosts is no provider key
  return names;
}

void register_log_commands(CLI::App& app, Context& ctx) {
  register_log(app, ctx);
  register_stats(app, ctx);
  register_env(app, ctx);
  register_provider(app, ctx);
  register_pricing(app, ctx);
}

}  // namespace tokfence::cli
