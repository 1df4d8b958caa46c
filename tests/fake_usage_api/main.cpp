// fake_usage_api: the providers' organization usage and cost APIs, on loopback, for tests of
// `tokfence watch`. The response shapes follow the providers' API references:
//
//   GET /v1/organization/usage/completions  (OpenAI; start_time, end_time, bucket_width 1m|1h|1d, limit, page)
//   GET /v1/organization/costs              (OpenAI; start_time, end_time, bucket_width 1d, limit, page)
//   GET /v1/organizations/usage_report/messages  (Anthropic; starting_at, ending_at RFC 3339, bucket_width, limit, page)
//   GET /v1/organizations/cost_report            (Anthropic; amounts are decimal strings in cents)
//   GET /simple/usage   flat {"requests","input_tokens","output_tokens","cost_usd"} for [start_time, end_time)
//   GET /simple/paged   {"data":[{...}], "has_more", "next_page"}, one entry per usage event
//
// Every bucket in the asked range is returned (empty buckets have "results": []); pages hold
// min(limit, --page-size) buckets and chain with has_more/next_page (the token contains '/', '+'
// and '=' so clients must escape it).
//
// Control (test side, no auth):
//   POST /__fake/usage  {"api":"openai|anthropic|simple", "ago_s":N | "ts":unix_s, "requests":1,
//                        "input_tokens":N (uncached), "output_tokens":N, "cache_read_tokens":N,
//                        "cache_write_tokens":N, "cost_usd":X}  (an object or an array of them)
//   POST /__fake/set    {"mode":"ok|unauthorized|forbidden|malformed|wrong_shape|redirect|server_error",
//                        "page_size":N, "clear":true}
//   GET  /__fake/requests  {"requests":[{"method","path","query","auth":"ok|missing|wrong|unchecked"}]}
//
// Auth: with --expect-key-env VAR the key must equal $VAR (OpenAI/simple: Authorization: Bearer,
// Anthropic: x-api-key plus anthropic-version); anything else gets 401. The key is never logged.
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;

namespace {

struct Event {
  std::string api;
  std::int64_t ts = 0;  // unix seconds
  std::int64_t requests = 1, input = 0, output = 0, cache_read = 0, cache_write = 0;
  double cost_usd = 0;
};

struct State {
  std::mutex mutex;
  std::vector<Event> events;
  std::string mode = "ok";
  int page_size = 1000000;
  std::optional<std::string> expected_key;
  json log = json::array();
} state;

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view q) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    auto eq = part.find('=');
    if (eq != std::string_view::npos) out[url_decode(part.substr(0, eq))] = url_decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<std::int64_t> parse_rfc3339(const std::string& s) {
  std::tm tm{};
  int y, mo, d, h, mi, sec;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string rfc3339(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string page_token(std::int64_t index) { return "pg/" + std::to_string(index) + "+x=="; }
std::optional<std::int64_t> page_index(const std::string& token) {
  if (!token.starts_with("pg/") || !token.ends_with("+x==")) return std::nullopt;
  try {
    return std::stoll(token.substr(3, token.size() - 7));
  } catch (...) {
    return std::nullopt;
  }
}

using Response = http::response<http::string_body>;

Response reply(int status, const json& body) {
  Response res{static_cast<http::status>(status), 11};
  res.set(http::field::content_type, "application/json");
  res.body() = body.dump();
  res.prepare_payload();
  return res;
}

json openai_error(const std::string& message, const std::string& type) {
  return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}};
}
json anthropic_error(const std::string& message, const std::string& type) {
  return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
}

struct Sums {
  std::int64_t requests = 0, input = 0, output = 0, cache_read = 0, cache_write = 0;
  double cost = 0;
  bool any = false;
};

Sums sum(const std::string& api, std::int64_t from, std::int64_t to) {
  Sums s;
  for (const Event& e : state.events) {
    if (e.api != api || e.ts < from || e.ts >= to) continue;
    s.any = true;
    s.requests += e.requests;
    s.input += e.input;
    s.output += e.output;
    s.cache_read += e.cache_read;
    s.cache_write += e.cache_write;
    s.cost += e.cost_usd;
  }
  return s;
}

std::int64_t width_seconds(const std::string& w) {
  if (w == "1m") return 60;
  if (w == "1h") return 3600;
  if (w == "1d") return 86400;
  return 0;
}

std::int64_t max_limit(const std::string& w, bool cost, bool openai) {
  if (cost) return openai ? 180 : 31;
  return w == "1m" ? 1440 : w == "1h" ? 168 : 31;
}

// The four bucketed endpoints share the walk; `result` builds one bucket's results array.
template <class Result>
Response bucketed(const std::map<std::string, std::string>& q, bool openai, bool cost, Result result) {
  auto bad = [&](const std::string& msg) {
    return reply(400, openai ? openai_error(msg, "invalid_request_error") : anthropic_error(msg, "invalid_request_error"));
  };
  std::string width = q.count("bucket_width") ? q.at("bucket_width") : "1d";
  std::int64_t w = width_seconds(width);
  if (w == 0 || (cost && width != "1d")) return bad("invalid bucket_width: " + width);
  std::int64_t start = 0, end = 0;
  const char* start_key = openai ? "start_time" : "starting_at";
  const char* end_key = openai ? "end_time" : "ending_at";
  if (!q.count(start_key)) return bad(std::string("missing required parameter: ") + start_key);
  try {
    if (openai) {
      start = std::stoll(q.at(start_key));
      end = q.count(end_key) ? std::stoll(q.at(end_key)) : now_s();
    } else {
      auto s = parse_rfc3339(q.at(start_key));
      auto e = q.count(end_key) ? parse_rfc3339(q.at(end_key)) : std::optional<std::int64_t>(now_s());
      if (!s || !e) return bad("invalid timestamp");
      start = *s;
      end = *e;
    }
  } catch (...) {
    return bad("invalid time parameter");
  }
  std::int64_t limit = q.count("limit") ? std::stoll(q.at("limit")) : (width == "1m" ? 60 : width == "1h" ? 24 : 7);
  if (limit < 1 || limit > max_limit(width, cost, openai)) return bad("limit out of range for bucket_width " + width);
  limit = std::min<std::int64_t>(limit, state.page_size);
  std::int64_t first = start - ((start % w) + w) % w;  // buckets snap to the width in UTC
  std::int64_t skip = 0;
  if (q.count("page")) {
    auto idx = page_index(q.at("page"));
    if (!idx) return bad("invalid page token");
    skip = *idx;
  }
  json data = json::array();
  std::int64_t index = 0, emitted = 0;
  bool more = false;
  for (std::int64_t b = first; b < end; b += w, ++index) {
    // Anthropic: buckets that end before ending_at; OpenAI: end_time exclusive.
    if (!openai && b + w > end) break;
    if (index < skip) continue;
    if (emitted == limit) {
      more = true;
      break;
    }
    json bucket;
    if (openai) bucket = {{"object", "bucket"}, {"start_time", b}, {"end_time", b + w}};
    else bucket = {{"starting_at", rfc3339(b)}, {"ending_at", rfc3339(b + w)}};
    bucket["results"] = result(b, b + w);
    data.push_back(bucket);
    ++emitted;
  }
  json body;
  if (openai) body["object"] = "page";
  body["data"] = data;
  body["has_more"] = more;
  body["next_page"] = more ? json(page_token(index)) : json(nullptr);
  return reply(200, body);
}

Response handle_api(const http::request<http::string_body>& req, const std::string& path,
                    const std::map<std::string, std::string>& q) {
  if (path == "/v1/organization/usage/completions")
    return bucketed(q, true, false, [](std::int64_t a, std::int64_t b) {
      json r = json::array();
      Sums s = sum("openai", a, b);
      if (s.any)
        r.push_back({{"object", "organization.usage.completions.result"},
                     {"input_tokens", s.input + s.cache_read + s.cache_write},
                     {"output_tokens", s.output},
                     {"input_cached_tokens", s.cache_read},
                     {"input_audio_tokens", 0},
                     {"output_audio_tokens", 0},
                     {"num_model_requests", s.requests},
                     {"project_id", nullptr},
                     {"user_id", nullptr},
                     {"api_key_id", nullptr},
                     {"model", nullptr},
                     {"batch", nullptr}});
      return r;
    });
  if (path == "/v1/organization/costs")
    return bucketed(q, true, true, [](std::int64_t a, std::int64_t b) {
      json r = json::array();
      Sums s = sum("openai", a, b);
      if (s.any)
        r.push_back({{"object", "organization.costs.result"},
                     {"amount", {{"value", s.cost}, {"currency", "usd"}}},
                     {"line_item", nullptr},
                     {"project_id", nullptr}});
      return r;
    });
  if (path == "/v1/organizations/usage_report/messages")
    return bucketed(q, false, false, [](std::int64_t a, std::int64_t b) {
      json r = json::array();
      Sums s = sum("anthropic", a, b);
      if (s.any)
        r.push_back({{"uncached_input_tokens", s.input},
                     {"cache_creation", {{"ephemeral_1h_input_tokens", 0}, {"ephemeral_5m_input_tokens", s.cache_write}}},
                     {"cache_read_input_tokens", s.cache_read},
                     {"output_tokens", s.output},
                     {"server_tool_use", {{"web_search_requests", 0}}},
                     {"api_key_id", nullptr},
                     {"workspace_id", nullptr},
                     {"model", nullptr},
                     {"service_tier", nullptr},
                     {"context_window", nullptr}});
      return r;
    });
  if (path == "/v1/organizations/cost_report")
    return bucketed(q, false, true, [](std::int64_t a, std::int64_t b) {
      json r = json::array();
      Sums s = sum("anthropic", a, b);
      if (s.any) {
        char cents[64];
        std::snprintf(cents, sizeof cents, "%.5f", s.cost * 100.0);
        r.push_back({{"currency", "USD"},
                     {"amount", cents},
                     {"workspace_id", nullptr},
                     {"description", nullptr},
                     {"cost_type", nullptr},
                     {"context_window", nullptr},
                     {"model", nullptr},
                     {"service_tier", nullptr},
                     {"token_type", nullptr}});
      }
      return r;
    });
  if (path == "/simple/usage" || path == "/simple/paged") {
    std::int64_t start = 0, end = now_s();
    try {
      if (q.count("start_time")) start = std::stoll(q.at("start_time"));
      if (q.count("end_time")) end = std::stoll(q.at("end_time"));
    } catch (...) {
      return reply(400, {{"error", "bad time"}});
    }
    auto entry = [](const Sums& s) {
      return json{{"requests", s.requests},
                  {"input_tokens", s.input + s.cache_read + s.cache_write},
                  {"output_tokens", s.output},
                  {"cost_usd", s.cost}};
    };
    if (path == "/simple/usage") return reply(200, entry(sum("simple", start, end)));
    std::vector<Sums> entries;
    for (const Event& e : state.events) {
      if (e.api != "simple" || e.ts < start || e.ts >= end) continue;
      entries.push_back(Sums{e.requests, e.input, e.output, e.cache_read, e.cache_write, e.cost_usd, true});
    }
    std::int64_t skip = 0;
    if (q.count("page")) {
      auto idx = page_index(q.at("page"));
      if (!idx) return reply(400, {{"error", "bad page"}});
      skip = *idx;
    }
    json data = json::array();
    std::int64_t i = skip;
    for (; i < static_cast<std::int64_t>(entries.size()) && i - skip < state.page_size; ++i) data.push_back(entry(entries[i]));
    bool more = i < static_cast<std::int64_t>(entries.size());
    return reply(200, {{"data", data}, {"has_more", more}, {"next_page", more ? json(page_token(i)) : json(nullptr)}});
  }
  return reply(404, openai_error("unknown path", "not_found"));
}

Response handle(const http::request<http::string_body>& req) {
  std::string target(req.target());
  auto qpos = target.find('?');
  std::string path = target.substr(0, qpos);
  auto q = parse_query(qpos == std::string::npos ? std::string_view{} : std::string_view(target).substr(qpos + 1));
  std::lock_guard lock(state.mutex);

  if (path.starts_with("/__fake/")) {
    try {
      if (path == "/__fake/requests") return reply(200, {{"requests", state.log}});
      json body = req.body().empty() ? json::object() : json::parse(req.body());
      if (path == "/__fake/set") {
        if (body.contains("mode")) state.mode = body["mode"].get<std::string>();
        if (body.contains("page_size")) state.page_size = std::max(1, body["page_size"].get<int>());
        if (body.value("clear", false)) {
          state.events.clear();
          state.log = json::array();
        }
        return reply(200, {{"ok", true}});
      }
      if (path == "/__fake/usage") {
        json list = body.is_array() ? body : json::array({body});
        for (const json& u : list) {
          Event e;
          e.api = u.at("api").get<std::string>();
          e.ts = u.contains("ts") ? u["ts"].get<std::int64_t>() : now_s() - u.value("ago_s", std::int64_t{0});
          e.requests = u.value("requests", std::int64_t{1});
          e.input = u.value("input_tokens", std::int64_t{0});
          e.output = u.value("output_tokens", std::int64_t{0});
          e.cache_read = u.value("cache_read_tokens", std::int64_t{0});
          e.cache_write = u.value("cache_write_tokens", std::int64_t{0});
          e.cost_usd = u.value("cost_usd", 0.0);
          state.events.push_back(e);
        }
        return reply(200, {{"ok", true}, {"events", state.events.size()}});
      }
    } catch (const std::exception& e) {
      return reply(400, {{"error", e.what()}});
    }
    return reply(404, {{"error", "unknown control path"}});
  }

  bool anthropic = path.starts_with("/v1/organizations/");
  std::string auth = "unchecked";
  if (state.expected_key) {
    std::string given;
    if (anthropic) given = std::string(req["x-api-key"]);
    else if (auto a = std::string(req[http::field::authorization]); a.starts_with("Bearer ")) given = a.substr(7);
    auth = given.empty() ? "missing" : given == *state.expected_key ? "ok" : "wrong";
  }
  json entry{{"method", std::string(req.method_string())}, {"path", path},
             {"query", qpos == std::string::npos ? "" : target.substr(qpos + 1)}, {"auth", auth}};
  if (anthropic) entry["anthropic_version"] = std::string(req["anthropic-version"]);
  state.log.push_back(entry);

  auto auth_error = [&](int status, const std::string& msg) {
    return reply(status, anthropic ? anthropic_error(msg, status == 401 ? "authentication_error" : "permission_error")
                                   : openai_error(msg, "invalid_request_error"));
  };
  if (auth == "missing" || auth == "wrong") return auth_error(401, "invalid api key");
  if (anthropic && std::string(req["anthropic-version"]).empty())
    return reply(400, anthropic_error("anthropic-version: header is required", "invalid_request_error"));
  if (state.mode == "unauthorized") return auth_error(401, "invalid authentication credentials");
  if (state.mode == "forbidden")
    return auth_error(403, "you have insufficient permissions for this operation. missing scopes: api.usage.read");
  if (state.mode == "server_error") return reply(500, openai_error("the server had an error", "server_error"));
  if (state.mode == "redirect") {
    Response res{http::status::found, 11};
    res.set(http::field::location, "http://127.0.0.2:9/stolen" + path);
    res.prepare_payload();
    return res;
  }
  if (state.mode == "malformed") {
    Response res{http::status::ok, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = R"({"object": "page", "data": [{"object": "bucket", "start_time": 17)";
    res.prepare_payload();
    return res;
  }
  if (state.mode == "wrong_shape") return reply(200, {{"object", "page"}, {"data", {{{"object", "bucket"}}}}});
  return handle_api(req, path, q);
}

void session(tcp::socket sock) {
  timeval tv{30, 0};
  setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1 << 20);
    beast::error_code ec;
    http::read(sock, buffer, parser, ec);
    if (ec) break;
    auto req = parser.release();
    Response res = handle(req);
    res.keep_alive(req.keep_alive());
    http::write(sock, res, ec);
    if (ec || !res.keep_alive()) break;
  }
  beast::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string port_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "fake_usage_api: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") port = std::stoi(next());
    else if (a == "--port-file") port_file = next();
    else if (a == "--page-size") state.page_size = std::max(1, std::stoi(next()));
    else if (a == "--mode") state.mode = next();
    else if (a == "--expect-key-env") {
      std::string var = next();
      const char* v = std::getenv(var.c_str());
      if (v == nullptr || *v == '\0') {
        std::cerr << "fake_usage_api: --expect-key-env: $" << var << " is empty\n";
        return 2;
      }
      state.expected_key = v;
    } else {
      std::cerr << "fake_usage_api: unknown argument: " << a << "\n";
      return 2;
    }
  }
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  int bound = acceptor.local_endpoint().port();
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << bound << "\n";
    std::rename(tmp.c_str(), port_file.c_str());
  }
  std::cerr << "fake_usage_api: listening on 127.0.0.1:" << bound << "\n";
  for (;;) {
    tcp::socket sock(io);
    beast::error_code ec;
    acceptor.accept(sock, ec);
    if (ec) continue;
    std::thread(session, std::move(sock)).detach();
  }
}
