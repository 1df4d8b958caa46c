// fake_upstream: a faithful fake of the providers' HTTP APIs (OpenAI Chat Completions and
// Responses, Anthropic Messages, Gemini generateContent), JSON and SSE, with faults chosen per
// request by `x-fake-*` headers. Tests use it to see exactly what tokfence forwards; the
// benchmark uses it as the backend, so the hot path avoids needless work. README.md next to this
// file is the contract other tests rely on: keep the two in step.
//
// One coroutine per connection (C++20 coroutines on Asio), each on its own strand; responses are
// written as raw HTTP/1.1 bytes so that chunk boundaries are exactly the events we choose.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

constexpr std::size_t kRecordedBodyCap = 64 * 1024;
constexpr std::size_t kMaxRequestBody = 256 * 1024 * 1024;
constexpr int kMaxChunks = 100000;
constexpr auto kIdleTimeout = 300s;
constexpr auto kMaxHang = 600s;

struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::string port_file;
  std::string require_key;
  int threads = 1;
  std::size_t record = 1000;
  bool cors = false;        // --cors: permissive CORS, as some provider APIs answer browsers
  bool echo_trace = false;  // --echo-trace: TRACE/TRACK echo the request, as a misconfigured server does
};

// ---------------------------------------------------------------------------------------------
// Request log and counters, read by tests through /__fake/*.

struct Recorded {
  std::uint64_t seq = 0;
  std::string method, path, query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::size_t body_bytes = 0;
};

class Recorder {
 public:
  explicit Recorder(std::size_t capacity) : capacity_(capacity) {}
  bool enabled() const { return capacity_ > 0; }
  void add(Recorded r) {
    std::lock_guard lock(mutex_);
    r.seq = ++seq_;
    ring_.push_back(std::move(r));
    while (ring_.size() > capacity_) ring_.pop_front();
  }
  void clear() {
    std::lock_guard lock(mutex_);
    ring_.clear();
  }
  json dump() const {
    std::lock_guard lock(mutex_);
    json out = json::array();
    for (const auto& r : ring_) {
      json headers = json::object();
      for (const auto& [name, value] : r.headers) {
        auto it = headers.find(name);
        if (it == headers.end())
          headers[name] = value;
        else
          *it = it->get<std::string>() + ", " + value;
      }
      out.push_back({{"seq", r.seq},
                     {"method", r.method},
                     {"path", r.path},
                     {"query", r.query},
                     {"headers", std::move(headers)},
                     {"body", r.body},
                     {"body_bytes", r.body_bytes},
                     {"body_truncated", r.body.size() < r.body_bytes}});
    }
    return out;
  }

 private:
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<Recorded> ring_;
  std::uint64_t seq_ = 0;
};

struct Stats {
  std::atomic<std::uint64_t> connections{0}, open_connections{0}, requests{0}, active_requests{0},
      streams_started{0}, streams_completed{0}, client_gone{0}, resets{0}, hangs{0}, unauthorized{0};
  json dump() const {
    return {{"connections", connections.load()},         {"open_connections", open_connections.load()},
            {"requests", requests.load()},               {"active_requests", active_requests.load()},
            {"streams_started", streams_started.load()}, {"streams_completed", streams_completed.load()},
            {"client_gone", client_gone.load()},         {"resets", resets.load()},
            {"hangs", hangs.load()},                     {"unauthorized", unauthorized.load()}};
  }
  void reset() {
    for (auto* c : {&requests, &streams_started, &streams_completed, &client_gone, &resets, &hangs, &unauthorized})
      c->store(0);
    connections.store(0);
  }
};

// ---------------------------------------------------------------------------------------------
// What a request asks for.

enum class Api { chat, responses, messages, count_tokens, gemini, models_openai, models_gemini, none };

struct Faults {
  int chunks = 1;
  int delay_ms = 0;
  int first_wait_ms = 0;
  int usage_wait_ms = 0;  // streams: wait this long before the event that carries the final usage
  int reset_after = -1;
  int status = 0;
  bool hang = false;
  bool no_usage = false;
  std::int64_t cache_read = 0, cache_write = 0, reasoning = 0;
  std::int64_t tool_calls = 0;  // x-fake-server-tool-calls: searches the provider ran (and bills per call)
  std::string text = "pong";
  std::string spelled;  // x-fake-spell-reversed, un-reversed: streamed 3 characters per event
  std::string response_model;
};

constexpr std::size_t kSpellWidth = 3;

std::int64_t header_int(const http::request<http::string_body>& req, std::string_view name, std::int64_t fallback,
                        std::int64_t lo, std::int64_t hi) {
  auto it = req.find(name);
  if (it == req.end()) return fallback;
  std::string_view v = it->value();
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size()) return fallback;
  return std::clamp(n, lo, hi);
}

// Google's system parameters: a response field mask (`fields` / `$fields` in the query, or the
// X-Goog-FieldMask header) keeps only the fields it lists, so an answer whose mask does not name
// usageMetadata has none. Names are read decoded, as Google's front end reads them.
bool google_mask_hides_usage(const http::request<http::string_body>& req) {
  auto decoded = [](std::string_view raw) {
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
        out.push_back(static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(raw[i]);
      }
    }
    return out;
  };
  std::string mask;
  bool masked = false;
  if (auto it = req.find("x-goog-fieldmask"); it != req.end()) {
    masked = true;
    mask = std::string(it->value());
  }
  std::string_view target = req.target();
  if (auto q = target.find('?'); q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    for (std::size_t start = 0; start <= query.size();) {
      auto amp = query.find('&', start);
      std::string_view part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
      auto eq = part.find('=');
      std::string name = decoded(part.substr(0, eq));
      if (name == "fields" || name == "$fields") {
        masked = true;
        mask += "," + (eq == std::string_view::npos ? std::string() : decoded(part.substr(eq + 1)));
      }
      if (amp == std::string_view::npos) break;
      start = amp + 1;
    }
  }
  return masked && mask.find("usageMetadata") == std::string::npos;
}

Faults read_faults(const http::request<http::string_body>& req) {
  Faults f;
  f.chunks = static_cast<int>(header_int(req, "x-fake-chunks", 1, 1, kMaxChunks));
  f.delay_ms = static_cast<int>(header_int(req, "x-fake-delay-ms", 0, 0, 600000));
  f.first_wait_ms = static_cast<int>(header_int(req, "x-fake-first-chunk-then-wait-ms", 0, 0, 600000));
  f.usage_wait_ms = static_cast<int>(header_int(req, "x-fake-usage-wait-ms", 0, 0, 600000));
  f.reset_after = static_cast<int>(header_int(req, "x-fake-reset-after", -1, 0, kMaxChunks * 2));
  f.status = static_cast<int>(header_int(req, "x-fake-status", 0, 100, 599));
  f.hang = header_int(req, "x-fake-hang", 0, 0, 1) == 1;
  f.no_usage = header_int(req, "x-fake-no-usage", 0, 0, 1) == 1 || google_mask_hides_usage(req);
  f.cache_read = header_int(req, "x-fake-cache", 0, 0, 1'000'000'000);
  f.cache_write = header_int(req, "x-fake-cache-write", 0, 0, 1'000'000'000);
  f.reasoning = header_int(req, "x-fake-reasoning", 0, 0, 1'000'000'000);
  f.tool_calls = header_int(req, "x-fake-server-tool-calls", 0, 0, 10'000);
  if (auto it = req.find("x-fake-text"); it != req.end() && !it->value().empty()) f.text = std::string(it->value());
  if (auto it = req.find("x-fake-response-model"); it != req.end()) f.response_model = std::string(it->value());
  // A model asked to reverse a string: the header's value, reversed, is the whole reply, a few
  // characters per delta (as a model's tokens arrive), with nothing between them.
  if (auto it = req.find("x-fake-spell-reversed"); it != req.end() && !it->value().empty()) {
    f.spelled.assign(it->value().rbegin(), it->value().rend());
    f.chunks = static_cast<int>(std::min<std::size_t>((f.spelled.size() + kSpellWidth - 1) / kSpellWidth, static_cast<std::size_t>(kMaxChunks)));
  }
  return f;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Matches by suffix so that a provider whose upstream has a base path (groq's /openai, fireworks'
// /inference) still reaches the same fake endpoint.
Api route(http::verb method, std::string_view path, std::string& gemini_model, bool& gemini_stream) {
  if (method == http::verb::post) {
    if (ends_with(path, "/chat/completions")) return Api::chat;
    if (ends_with(path, "/responses")) return Api::responses;
    if (ends_with(path, "/messages/count_tokens")) return Api::count_tokens;
    if (ends_with(path, "/messages")) return Api::messages;
    auto models = path.find("/models/");
    auto colon = path.rfind(':');
    if (models != std::string_view::npos && colon != std::string_view::npos && colon > models) {
      auto action = path.substr(colon + 1);
      if (action == "generateContent" || action == "streamGenerateContent") {
        gemini_model = std::string(path.substr(models + 8, colon - models - 8));
        gemini_stream = action == "streamGenerateContent";
        return Api::gemini;
      }
    }
  }
  if (method == http::verb::get && ends_with(path, "/models"))
    return path.find("/v1beta") != std::string_view::npos ? Api::models_gemini : Api::models_openai;
  return Api::none;
}

enum class Family { openai, anthropic, gemini };

Family family_of(Api api) {
  switch (api) {
    case Api::messages:
    case Api::count_tokens: return Family::anthropic;
    case Api::gemini:
    case Api::models_gemini: return Family::gemini;
    default: return Family::openai;
  }
}

// ---------------------------------------------------------------------------------------------
// Response shapes.

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return "Status";
  }
}

std::string head(int status, std::string_view content_type, std::optional<std::size_t> content_length, bool keep_alive,
                 std::string_view extra = {}) {
  std::string h;
  h.reserve(256);
  h += "HTTP/1.1 ";
  h += std::to_string(status);
  h += ' ';
  h += reason(status);
  h += "\r\nServer: fake-upstream\r\n";
  if (!content_type.empty()) {
    h += "Content-Type: ";
    h += content_type;
    h += "\r\n";
  }
  if (content_length) {
    h += "Content-Length: ";
    h += std::to_string(*content_length);
    h += "\r\n";
  } else {
    h += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
  }
  h += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  h += extra;
  h += "\r\n";
  return h;
}

json error_body(Family family, int status, std::string_view message_override = {}) {
  switch (family) {
    case Family::anthropic: {
      std::string type = status == 400   ? "invalid_request_error"
                         : status == 401 ? "authentication_error"
                         : status == 403 ? "permission_error"
                         : status == 404 ? "not_found_error"
                         : status == 413 ? "request_too_large"
                         : status == 429 ? "rate_limit_error"
                         : status == 529 ? "overloaded_error"
                                         : "api_error";
      std::string message = !message_override.empty() ? std::string(message_override)
                            : status == 401             ? "invalid x-api-key"
                            : status == 429             ? "Number of request tokens has exceeded your per-minute rate limit"
                            : status == 529             ? "Overloaded"
                                                        : "Internal server error";
      return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}, {"request_id", "req_fake"}};
    }
    case Family::gemini: {
      std::string st = status == 400   ? "INVALID_ARGUMENT"
                       : status == 401 ? "UNAUTHENTICATED"
                       : status == 403 ? "PERMISSION_DENIED"
                       : status == 404 ? "NOT_FOUND"
                       : status == 429 ? "RESOURCE_EXHAUSTED"
                       : status == 503 ? "UNAVAILABLE"
                                       : "INTERNAL";
      std::string message = !message_override.empty() ? std::string(message_override)
                            : status == 401             ? "API key not valid. Please pass a valid API key."
                            : status == 429             ? "Resource has been exhausted (e.g. check quota)."
                                                        : "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";
      return {{"error", {{"code", status}, {"message", message}, {"status", st}}}};
    }
    case Family::openai: {
      std::string type = status == 401 ? "invalid_request_error"
                         : status == 429 ? "requests"
                         : status >= 500 ? "server_error"
                                         : "invalid_request_error";
      json code = status == 401 ? json("invalid_api_key") : status == 429 ? json("rate_limit_exceeded") : json(nullptr);
      std::string message = !message_override.empty() ? std::string(message_override)
                            : status == 401             ? "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
                            : status == 429             ? "Rate limit reached for requests"
                            : status >= 500             ? "The server had an error while processing your request. Sorry about that!"
                                                        : "Invalid request";
      return {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
    }
  }
  return {};
}

struct Ctx {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::int64_t input = 0;  // uncached input tokens
  std::uint64_t id = 0;
  Faults f;
  json instructions = nullptr;  // Responses: echoed in the response object, as the real API does
  std::string word(int i) const {
    if (!f.spelled.empty()) return f.spelled.substr(static_cast<std::size_t>(i) * kSpellWidth, kSpellWidth);
    return i == 0 ? f.text : " " + f.text;
  }
  std::string full_text() const {
    std::string s;
    for (int i = 0; i < f.chunks; ++i) s += word(i);
    return s;
  }
  std::int64_t output() const { return f.chunks + f.reasoning; }
  std::string id_str(std::string_view prefix) const { return std::string(prefix) + "fake" + std::to_string(id); }
};

constexpr std::int64_t kCreated = 1750000000;

std::string sse_event(std::string_view name, const json& j) {
  return "event: " + std::string(name) + "\ndata: " + j.dump() + "\n\n";
}

// --- OpenAI Chat Completions
// Written by hand rather than through nlohmann::json: this is the benchmark's hot path, and
// building a json tree per reply cost more than everything else the fake does.

void append_escaped(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  out += '"';
}

std::string chat_usage_text(const Ctx& c) {
  auto prompt = c.input + c.f.cache_read;
  std::string u;
  u.reserve(300);
  u += "{\"prompt_tokens\":" + std::to_string(prompt);
  u += ",\"completion_tokens\":" + std::to_string(c.output());
  u += ",\"total_tokens\":" + std::to_string(prompt + c.output());
  u += ",\"prompt_tokens_details\":{\"cached_tokens\":" + std::to_string(c.f.cache_read) + ",\"audio_tokens\":0}";
  u += ",\"completion_tokens_details\":{\"reasoning_tokens\":" + std::to_string(c.f.reasoning) +
       ",\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}";
  return u;
}

// `{"id":...,"object":...,"created":...,"model":...` without the closing brace.
std::string chat_prefix(const Ctx& c, std::string_view object) {
  std::string s;
  s.reserve(512);
  s += "{\"id\":";
  append_escaped(s, c.id_str("chatcmpl-"));
  s += ",\"object\":\"";
  s += object;
  s += "\",\"created\":" + std::to_string(kCreated) + ",\"model\":";
  append_escaped(s, c.model);
  return s;
}

std::string chat_json(const Ctx& c) {
  std::string s = chat_prefix(c, "chat.completion");
  s += ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":";
  append_escaped(s, c.full_text());
  s += ",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":\"stop\"}]";
  if (!c.f.no_usage) s += ",\"usage\":" + chat_usage_text(c);
  s += ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fake\"}";
  return s;
}

std::vector<std::string> chat_events(const Ctx& c) {
  std::vector<std::string> ev;
  ev.reserve(static_cast<std::size_t>(c.f.chunks) + 4);
  auto chunk = [&](std::string_view delta_json, std::string_view finish) {
    std::string s = "data: " + chat_prefix(c, "chat.completion.chunk");
    s += ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fake\",\"choices\":[{\"index\":0,\"delta\":";
    s += delta_json;
    s += ",\"logprobs\":null,\"finish_reason\":";
    s += finish;
    s += "}]";
    if (c.include_usage) s += ",\"usage\":null";
    s += "}\n\n";
    return s;
  };
  ev.push_back(chunk(R"({"role":"assistant","content":"","refusal":null})", "null"));
  for (int i = 0; i < c.f.chunks; ++i) {
    std::string delta = "{\"content\":";
    append_escaped(delta, c.word(i));
    delta += '}';
    ev.push_back(chunk(delta, "null"));
  }
  ev.push_back(chunk("{}", "\"stop\""));
  if (c.include_usage && !c.f.no_usage) {
    std::string s = "data: " + chat_prefix(c, "chat.completion.chunk");
    s += ",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":";
    s += chat_usage_text(c);
    s += "}\n\n";
    ev.push_back(std::move(s));
  }
  ev.push_back("data: [DONE]\n\n");
  return ev;
}

// --- OpenAI Responses
json responses_object(const Ctx& c, bool completed) {
  json output = json::array();
  json usage = nullptr;
  if (completed) {
    for (std::int64_t i = 0; i < c.f.tool_calls; ++i)
      output.push_back({{"type", "web_search_call"}, {"id", c.id_str("ws_") + "_" + std::to_string(i)}, {"status", "completed"},
                        {"action", {{"type", "search"}, {"query", "q"}}}});
    output.push_back({{"type", "message"},
                      {"id", c.id_str("msg_")},
                      {"status", "completed"},
                      {"role", "assistant"},
                      {"content", json::array({{{"type", "output_text"}, {"text", c.full_text()}, {"annotations", json::array()}, {"logprobs", json::array()}}})}});
    if (!c.f.no_usage) {
      auto in = c.input + c.f.cache_read;
      usage = {{"input_tokens", in},
               {"input_tokens_details", {{"cached_tokens", c.f.cache_read}}},
               {"output_tokens", c.output()},
               {"output_tokens_details", {{"reasoning_tokens", c.f.reasoning}}},
               {"total_tokens", in + c.output()}};
    }
  }
  return {{"id", c.id_str("resp_")},
          {"object", "response"},
          {"created_at", kCreated},
          {"status", completed ? "completed" : "in_progress"},
          {"background", false},
          {"error", nullptr},
          {"incomplete_details", nullptr},
          {"instructions", c.instructions},
          {"max_output_tokens", nullptr},
          {"model", c.model},
          {"output", std::move(output)},
          {"parallel_tool_calls", true},
          {"previous_response_id", nullptr},
          {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
          {"store", true},
          {"temperature", 1.0},
          {"text", {{"format", {{"type", "text"}}}}},
          {"tool_choice", "auto"},
          {"tools", json::array()},
          {"top_p", 1.0},
          {"truncation", "disabled"},
          {"usage", std::move(usage)},
          {"user", nullptr},
          {"metadata", json::object()}};
}

std::vector<std::string> responses_events(const Ctx& c) {
  std::vector<std::string> ev;
  int seq = 0;
  auto emit = [&](std::string_view type, json j) {
    j["type"] = type;
    j["sequence_number"] = seq++;
    ev.push_back(sse_event(type, j));
  };
  auto item_id = c.id_str("msg_");
  emit("response.created", {{"response", responses_object(c, false)}});
  emit("response.in_progress", {{"response", responses_object(c, false)}});
  // Searches the provider ran (x-fake-server-tool-calls): an item each, added and done, before the
  // message, as the real stream announces them.
  for (std::int64_t i = 0; i < c.f.tool_calls; ++i) {
    json item = {{"type", "web_search_call"}, {"id", c.id_str("ws_") + "_" + std::to_string(i)}, {"status", "completed"},
                 {"action", {{"type", "search"}, {"query", "q"}}}};
    emit("response.output_item.added", {{"output_index", i}, {"item", item}});
    emit("response.output_item.done", {{"output_index", i}, {"item", item}});
  }
  emit("response.output_item.added",
       {{"output_index", 0},
        {"item", {{"id", item_id}, {"type", "message"}, {"status", "in_progress"}, {"role", "assistant"}, {"content", json::array()}}}});
  emit("response.content_part.added",
       {{"item_id", item_id}, {"output_index", 0}, {"content_index", 0},
        {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}, {"logprobs", json::array()}}}});
  for (int i = 0; i < c.f.chunks; ++i)
    emit("response.output_text.delta",
         {{"item_id", item_id}, {"output_index", 0}, {"content_index", 0}, {"delta", c.word(i)}, {"logprobs", json::array()}});
  auto text = c.full_text();
  emit("response.output_text.done",
       {{"item_id", item_id}, {"output_index", 0}, {"content_index", 0}, {"text", text}, {"logprobs", json::array()}});
  emit("response.content_part.done",
       {{"item_id", item_id}, {"output_index", 0}, {"content_index", 0},
        {"part", {{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}}}});
  emit("response.output_item.done",
       {{"output_index", 0},
        {"item", {{"id", item_id}, {"type", "message"}, {"status", "completed"}, {"role", "assistant"},
                  {"content", json::array({{{"type", "output_text"}, {"text", text}, {"annotations", json::array()}, {"logprobs", json::array()}}})}}}});
  emit("response.completed", {{"response", responses_object(c, true)}});
  return ev;
}

// --- Anthropic Messages
json anthropic_usage(const Ctx& c, std::int64_t output) {
  json u = {{"input_tokens", c.input},
            {"cache_creation_input_tokens", c.f.cache_write},
            {"cache_read_input_tokens", c.f.cache_read},
            {"output_tokens", output},
            {"service_tier", "standard"}};
  if (c.f.tool_calls > 0) u["server_tool_use"] = {{"web_search_requests", c.f.tool_calls}};
  return u;
}

std::string messages_json(const Ctx& c) {
  json j = {{"id", c.id_str("msg_")},
            {"type", "message"},
            {"role", "assistant"},
            {"model", c.model},
            {"content", json::array({{{"type", "text"}, {"text", c.full_text()}}})},
            {"stop_reason", "end_turn"},
            {"stop_sequence", nullptr}};
  if (!c.f.no_usage) j["usage"] = anthropic_usage(c, c.output());
  return j.dump();
}

std::vector<std::string> messages_events(const Ctx& c) {
  std::vector<std::string> ev;
  json message = {{"id", c.id_str("msg_")}, {"type", "message"},          {"role", "assistant"},
                  {"model", c.model},       {"content", json::array()}, {"stop_reason", nullptr},
                  {"stop_sequence", nullptr}};
  if (!c.f.no_usage) message["usage"] = anthropic_usage(c, 1);
  ev.push_back(sse_event("message_start", {{"type", "message_start"}, {"message", std::move(message)}}));
  ev.push_back(sse_event("content_block_start",
                         {{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}}));
  ev.push_back(sse_event("ping", {{"type", "ping"}}));
  for (int i = 0; i < c.f.chunks; ++i)
    ev.push_back(sse_event("content_block_delta", {{"type", "content_block_delta"}, {"index", 0},
                                                   {"delta", {{"type", "text_delta"}, {"text", c.word(i)}}}}));
  ev.push_back(sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}));
  json delta = {{"type", "message_delta"}, {"delta", {{"stop_reason", "end_turn"}, {"stop_sequence", nullptr}}}};
  if (!c.f.no_usage) {
    delta["usage"] = {{"output_tokens", c.output()}};
    if (c.f.tool_calls > 0) delta["usage"]["server_tool_use"] = {{"web_search_requests", c.f.tool_calls}};
  }
  ev.push_back(sse_event("message_delta", delta));
  ev.push_back(sse_event("message_stop", {{"type", "message_stop"}}));
  return ev;
}

// --- Gemini
json gemini_usage(const Ctx& c, std::int64_t candidates, bool with_thoughts) {
  auto prompt = c.input + c.f.cache_read;
  json u = {{"promptTokenCount", prompt}, {"candidatesTokenCount", candidates}};
  auto total = prompt + candidates;
  if (c.f.cache_read > 0) u["cachedContentTokenCount"] = c.f.cache_read;
  if (with_thoughts && c.f.reasoning > 0) {
    u["thoughtsTokenCount"] = c.f.reasoning;
    total += c.f.reasoning;
  }
  u["totalTokenCount"] = total;
  u["promptTokensDetails"] = json::array({{{"modality", "TEXT"}, {"tokenCount", prompt}}});
  return u;
}

json gemini_chunk(const Ctx& c, std::string_view text, bool last, std::int64_t candidates) {
  json cand = {{"content", {{"parts", json::array({{{"text", text}}})}, {"role", "model"}}}, {"index", 0}};
  if (last) cand["finishReason"] = "STOP";
  if (last && c.f.tool_calls > 0) {
    json queries = json::array();
    for (std::int64_t i = 0; i < c.f.tool_calls; ++i) queries.push_back("query " + std::to_string(i));
    cand["groundingMetadata"] = {{"webSearchQueries", std::move(queries)}};
  }
  json j = {{"candidates", json::array({std::move(cand)})}};
  if (!c.f.no_usage) j["usageMetadata"] = gemini_usage(c, candidates, true);
  j["modelVersion"] = c.model;
  j["responseId"] = c.id_str("");
  return j;
}

std::string gemini_json(const Ctx& c) { return gemini_chunk(c, c.full_text(), true, c.f.chunks).dump(); }

// Real Gemini separates SSE events with CRLF pairs; keeping that exercises the parsers.
std::vector<std::string> gemini_events(const Ctx& c, bool sse) {
  std::vector<std::string> ev;
  for (int i = 0; i < c.f.chunks; ++i) {
    auto j = gemini_chunk(c, c.word(i), i + 1 == c.f.chunks, i + 1);
    if (sse)
      ev.push_back("data: " + j.dump() + "\r\n\r\n");
    else
      ev.push_back((i == 0 ? "[" : ",\r\n") + j.dump() + (i + 1 == c.f.chunks ? "]" : ""));
  }
  return ev;
}

std::string models_openai() {
  json data = json::array();
  for (auto id : {"gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "fake-model"})
    data.push_back({{"id", id}, {"object", "model"}, {"created", kCreated}, {"owned_by", "system"}});
  return json{{"object", "list"}, {"data", std::move(data)}}.dump();
}

std::string models_gemini() {
  json models = json::array();
  for (auto id : {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"})
    models.push_back({{"name", std::string("models/") + id},
                      {"displayName", id},
                      {"supportedGenerationMethods", json::array({"generateContent", "streamGenerateContent", "countTokens"})}});
  return json{{"models", std::move(models)}}.dump();
}

// ---------------------------------------------------------------------------------------------
// Server.

struct Server {
  Options opt;
  Recorder recorder;
  Stats stats;
  std::atomic<std::uint64_t> ids{0};
  explicit Server(Options o) : opt(std::move(o)), recorder(opt.record) {}
};

bool authorized(const Server& s, Api api, const http::request<http::string_body>& req, std::string_view query) {
  if (s.opt.require_key.empty()) return true;
  const auto& key = s.opt.require_key;
  switch (family_of(api)) {
    case Family::anthropic: {
      auto it = req.find("x-api-key");
      return it != req.end() && it->value() == key;
    }
    case Family::gemini: {
      auto it = req.find("x-goog-api-key");
      if (it != req.end() && it->value() == key) return true;
      // Gemini also takes ?key=; tokfence must have removed the client's, so only the real one counts.
      std::string needle = "key=" + key;
      for (std::size_t pos = 0; (pos = query.find(needle, pos)) != std::string_view::npos; ++pos) {
        bool start_ok = pos == 0 || query[pos - 1] == '&';
        bool end_ok = pos + needle.size() == query.size() || query[pos + needle.size()] == '&';
        if (start_ok && end_ok) return true;
      }
      return false;
    }
    case Family::openai: {
      auto it = req.find(http::field::authorization);
      return it != req.end() && it->value() == "Bearer " + key;
    }
  }
  return false;
}

// What to answer; a pure function of the request (and the server's counters), so all I/O stays
// in Session.
struct Reply {
  enum class Kind { full, stream, hang, reset } kind = Kind::full;
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string extra;  // more header lines, each ending in CRLF
  std::vector<std::string> events;
  Faults faults;
};

Reply full(int status, std::string body, std::string content_type = "application/json") {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

Reply control(Server& server, const http::request<http::string_body>& req, std::string_view path) {
  if (path == "/__fake/requests") {
    if (req.method() == http::verb::get) return full(200, server.recorder.dump().dump());
    if (req.method() == http::verb::delete_) {
      server.recorder.clear();
      return full(200, R"({"cleared":true})");
    }
  }
  if (path == "/__fake/stats") {
    if (req.method() == http::verb::get) return full(200, server.stats.dump().dump());
    if (req.method() == http::verb::delete_) {
      server.stats.reset();
      return full(200, R"({"cleared":true})");
    }
  }
  return full(404, R"({"error":"unknown fake control endpoint"})");
}

void record(Server& server, const http::request<http::string_body>& req, std::string_view path, std::string_view query) {
  if (!server.recorder.enabled()) return;
  Recorded r;
  r.method = std::string(req.method_string());
  r.path = std::string(path);
  r.query = std::string(query);
  for (const auto& field : req) {
    std::string name(field.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  r.body_bytes = req.body().size();
  r.body = req.body().substr(0, kRecordedBodyCap);
  server.recorder.add(std::move(r));
}

Reply respond_api(Server& server, const http::request<http::string_body>& req);

// --cors: what a provider that lets browsers call it sends (any origin, credentials, every header).
constexpr std::string_view kCorsHeaders =
    "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Credentials: true\r\n"
    "Access-Control-Allow-Headers: *\r\nAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
    "Access-Control-Expose-Headers: *\r\n";

Reply respond(Server& server, const http::request<http::string_body>& req) {
  std::string_view path = req.target().substr(0, req.target().find('?'));
  if (!path.starts_with("/__fake/")) {
    std::string_view method = req.method_string();
    if (server.opt.echo_trace && (method == "TRACE" || method == "TRACK")) {
      // The request as received, key headers and all: what makes TRACE an attack (XST).
      record(server, req, path, req.target().substr(path.size()));
      std::string echo = std::string(method) + " " + std::string(req.target()) + " HTTP/1.1\r\n";
      for (const auto& field : req) echo += std::string(field.name_string()) + ": " + std::string(field.value()) + "\r\n";
      return full(200, echo + "\r\n", "message/http");
    }
    if (server.opt.cors && req.method() == http::verb::options) {
      record(server, req, path, req.target().substr(path.size()));
      Reply r = full(204, "", "");
      r.extra = std::string(kCorsHeaders);
      return r;
    }
  }
  Reply r = respond_api(server, req);
  if (server.opt.cors && r.kind == Reply::Kind::full) r.extra += kCorsHeaders;
  return r;
}

Reply respond_api(Server& server, const http::request<http::string_body>& req) {
  std::string_view target = req.target();
  auto qpos = target.find('?');
  std::string_view path = target.substr(0, qpos);
  std::string_view query = qpos == std::string_view::npos ? std::string_view{} : target.substr(qpos + 1);

  if (path.starts_with("/__fake/")) return control(server, req, path);
  record(server, req, path, query);

  // claude sends HEAD <base url> before its first request; any answer will do, 200 is the real one.
  if (req.method() == http::verb::head)
    return full(path == "/" || path == "/v1" || path == "/v1/" ? 200 : 404, "", "text/plain");

  std::string gemini_model;
  bool gemini_stream = false;
  Api api = route(req.method(), path, gemini_model, gemini_stream);
  if (api == Api::none) {
    std::string msg = "Invalid URL (" + std::string(req.method_string()) + " " + std::string(path) + ")";
    return full(404, error_body(Family::openai, 404, msg).dump());
  }
  Family family = family_of(api);
  if (!authorized(server, api, req, query)) {
    server.stats.unauthorized++;
    return full(401, error_body(family, 401).dump());
  }

  Ctx c;
  c.f = read_faults(req);
  c.id = ++server.ids;
  c.input = 10 + static_cast<std::int64_t>(req.body().size() / 100);

  Reply r;
  r.faults = c.f;
  if (c.f.hang) {
    r.kind = Reply::Kind::hang;
    return r;
  }
  if (c.f.status >= 400) {
    r.status = c.f.status;
    r.body = error_body(family, c.f.status).dump();
    if (c.f.status == 429) r.extra = "Retry-After: 1\r\n";
    return r;
  }
  if (api == Api::models_openai) return full(200, models_openai());
  if (api == Api::models_gemini) return full(200, models_gemini());

  json body = json::parse(req.body(), nullptr, false);
  if (body.is_discarded() || !body.is_object()) return full(400, error_body(family, 400, "request body is not a JSON object").dump());
  if (api == Api::count_tokens) return full(200, json{{"input_tokens", c.input}}.dump());

  if (api == Api::gemini) {
    c.model = gemini_model;
    c.stream = gemini_stream;
  } else {
    if (auto it = body.find("model"); it != body.end() && it->is_string()) c.model = it->get<std::string>();
    if (auto it = body.find("stream"); it != body.end() && it->is_boolean()) c.stream = it->get<bool>();
    if (c.model.empty()) return full(400, error_body(family, 400, "model: field required").dump());
  }
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object()) {
    if (auto u = it->find("include_usage"); u != it->end() && u->is_boolean()) c.include_usage = u->get<bool>();
  }
  if (!c.f.response_model.empty()) c.model = c.f.response_model;
  if (auto it = body.find("instructions"); it != body.end() && it->is_string()) c.instructions = *it;

  if (!c.stream) {
    if (c.f.reset_after >= 0) {
      r.kind = Reply::Kind::reset;
      return r;
    }
    r.body = api == Api::chat        ? chat_json(c)
             : api == Api::responses ? responses_object(c, true).dump()
             : api == Api::messages  ? messages_json(c)
                                     : gemini_json(c);
    return r;
  }
  r.kind = Reply::Kind::stream;
  r.content_type = "text/event-stream; charset=utf-8";
  switch (api) {
    case Api::chat: r.events = chat_events(c); break;
    case Api::responses: r.events = responses_events(c); break;
    case Api::messages: r.events = messages_events(c); break;
    default: {
      bool sse = query.find("alt=sse") != std::string_view::npos;
      r.content_type = sse ? "text/event-stream" : "application/json; charset=UTF-8";
      r.events = gemini_events(c, sse);
    }
  }
  return r;
}

class Session {
 public:
  Session(Server& server, tcp::socket socket) : server_(server), stream_(std::move(socket)), timer_(stream_.get_executor()) {}

  awaitable<void> run() {
    server_.stats.connections++;
    server_.stats.open_connections++;
    stream_.socket().set_option(tcp::no_delay(true));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(kMaxRequestBody);
      beast::error_code ec;
      stream_.expires_after(kIdleTimeout);
      co_await http::async_read(stream_, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::eof && ec != asio::error::connection_reset &&
            ec != beast::error::timeout && ec != asio::error::operation_aborted)
          {
          std::string bad = head(400, "text/plain", 12, false);
          bad += "bad request\n";
          co_await write_raw(std::move(bad));
        }
        break;
      }
      auto req = parser.release();
      server_.stats.requests++;
      server_.stats.active_requests++;
      bool keep = co_await handle(req);
      server_.stats.active_requests--;
      if (!keep || !req.keep_alive()) break;
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
    server_.stats.open_connections--;
  }

 private:
  Server& server_;
  beast::tcp_stream stream_;
  asio::steady_timer timer_;

  awaitable<bool> write_raw(std::string data) {
    beast::error_code ec;
    stream_.expires_after(60s);
    co_await asio::async_write(stream_, asio::buffer(data), asio::redirect_error(use_awaitable, ec));
    co_return !ec;
  }

  // Arguments by value: g++ 12 miscompiles coroutine parameters bound to temporaries of array type.
  awaitable<bool> send(int status, std::string content_type, std::string body, bool keep_alive, std::string extra = {}) {
    auto h = head(status, content_type, body.size(), keep_alive, extra);
    std::array<asio::const_buffer, 2> bufs{asio::buffer(h), asio::buffer(body)};
    beast::error_code ec;
    stream_.expires_after(60s);
    co_await asio::async_write(stream_, bufs, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keep_alive;
  }

  // Sleeps `ms`, watching the socket: returns false as soon as the client closes or resets it.
  awaitable<bool> pause(int ms) {
    if (ms <= 0) co_return true;
    auto state = std::make_shared<std::pair<bool, bool>>(true, false);  // {armed, gone}
    auto& sock = stream_.socket();
    timer_.expires_after(std::chrono::milliseconds(ms));
    sock.async_wait(tcp::socket::wait_read, [state, &sock, this](beast::error_code ec) {
      if (!state->first) return;  // the pause is over; sock/timer may be gone
      if (!ec) {
        char c;
        auto n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;  // pipelined bytes: not gone
      } else if (ec == asio::error::operation_aborted) {
        return;
      }
      state->second = true;
      timer_.cancel();
    });
    beast::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    bool gone = state->second;
    state->first = false;
    beast::error_code ignored;
    sock.cancel(ignored);
    co_return !gone;
  }

  void reset_connection() {
    beast::error_code ignored;
    stream_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
    stream_.socket().close(ignored);
    server_.stats.resets++;
  }

  awaitable<void> hang() {
    server_.stats.hangs++;
    auto& sock = stream_.socket();
    auto until = std::chrono::steady_clock::now() + kMaxHang;
    stream_.expires_never();
    while (std::chrono::steady_clock::now() < until) {
      auto state = std::make_shared<bool>(true);
      timer_.expires_at(until);
      timer_.async_wait([state, &sock](beast::error_code ec) {
        if (*state && !ec) {
          beast::error_code ignored;
          sock.cancel(ignored);
        }
      });
      beast::error_code ec;
      co_await sock.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
      *state = false;
      timer_.cancel();
      if (ec) break;
      char buf[4096];
      auto n = ::recv(sock.native_handle(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        server_.stats.client_gone++;
        co_return;
      }
    }
  }

  // Streams `events` as one chunked response. Returns whether the connection may be reused.
  awaitable<bool> stream_events(std::string content_type, std::vector<std::string> events, bool keep_alive, Faults f) {
    server_.stats.streams_started++;
    if (!co_await write_raw(head(200, content_type, std::nullopt, keep_alive))) {
      server_.stats.client_gone++;
      co_return false;
    }
    int sent = 0;
    // The final usage rides on the last event with a usage object (chat's usage chunk, Responses'
    // response.completed, Anthropic's message_delta, Gemini's last chunk).
    std::size_t usage_event = events.size();
    for (std::size_t i = 0; i < events.size(); ++i)
      if (events[i].find("\"usage\":{") != std::string::npos || events[i].find("\"usageMetadata\":{") != std::string::npos)
        usage_event = i;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (f.reset_after >= 0 && sent >= f.reset_after) {
        reset_connection();
        co_return false;
      }
      if (i > 0) {
        int wait = f.delay_ms + (i == 1 ? f.first_wait_ms : 0) + (i == usage_event ? f.usage_wait_ms : 0);
        if (!co_await pause(wait)) {
          server_.stats.client_gone++;
          co_return false;
        }
      }
      auto& e = events[i];
      char size[32];
      int n = std::snprintf(size, sizeof size, "%zx\r\n", e.size());
      std::array<asio::const_buffer, 3> bufs{asio::buffer(size, static_cast<std::size_t>(n)), asio::buffer(e),
                                             asio::buffer("\r\n", 2)};
      beast::error_code ec;
      stream_.expires_after(60s);
      co_await asio::async_write(stream_, bufs, asio::redirect_error(use_awaitable, ec));
      if (ec) {
        server_.stats.client_gone++;
        co_return false;
      }
      ++sent;
    }
    if (f.reset_after >= 0 && sent >= f.reset_after) {
      reset_connection();
      co_return false;
    }
    std::string last_chunk = "0\r\n\r\n";
    if (!co_await write_raw(std::move(last_chunk))) {
      server_.stats.client_gone++;
      co_return false;
    }
    server_.stats.streams_completed++;
    co_return keep_alive;
  }

  awaitable<bool> handle(http::request<http::string_body>& req) {
    Reply r;
    try {
      r = respond(server_, req);
    } catch (const std::exception& e) {  // e.g. json::dump of a header value that is not UTF-8
      r = full(500, json{{"error", {{"message", std::string("fake_upstream: ") + e.what()}, {"type", "server_error"}}}}.dump(
                        -1, ' ', false, json::error_handler_t::replace));
    }
    bool keep = req.keep_alive();
    switch (r.kind) {
      case Reply::Kind::hang: co_await hang(); co_return false;
      case Reply::Kind::reset: reset_connection(); co_return false;
      case Reply::Kind::stream: co_return co_await stream_events(std::move(r.content_type), std::move(r.events), keep, r.faults);
      case Reply::Kind::full:
        if (!co_await pause(r.faults.delay_ms)) {
          server_.stats.client_gone++;
          co_return false;
        }
        co_return co_await send(r.status, std::move(r.content_type), std::move(r.body), keep, std::move(r.extra));
    }
    co_return false;
  }
};

awaitable<void> accept_loop(Server& server, tcp::acceptor& acceptor) {
  for (;;) {
    beast::error_code ec;
    // One I/O thread needs no strand; with more, each connection gets its own.
    asio::any_io_executor strand = acceptor.get_executor();
    if (server.opt.threads > 1) strand = asio::make_strand(acceptor.get_executor());
    tcp::socket socket(strand);
    co_await acceptor.async_accept(socket, asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      asio::steady_timer t(acceptor.get_executor(), 50ms);
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
    auto session = std::make_shared<Session>(server, std::move(socket));
    // The shared_ptr is a parameter, so it lives in the coroutine frame as long as the session.
    asio::co_spawn(strand, [](std::shared_ptr<Session> s) -> awaitable<void> { co_await s->run(); }(std::move(session)),
                   asio::detached);
  }
}

[[noreturn]] void usage_exit(const std::string& problem) {
  if (!problem.empty()) std::cerr << "fake_upstream: error: " << problem << "\n";
  std::cerr << "usage: fake_upstream --port N --port-file FILE [--host 127.0.0.1] [--require-key KEY]\n"
               "                     [--threads N] [--record N] [--cors] [--echo-trace]\n"
               "A fake of the OpenAI, Anthropic and Gemini APIs for tests; see tests/fake_upstream/README.md.\n";
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  if (const char* k = std::getenv("FAKE_REQUIRE_KEY"); k && *k) o.require_key = k;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_exit(a + ": missing value");
      return argv[++i];
    };
    auto number = [&](long lo, long hi) {
      auto v = value();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || n < lo || n > hi) usage_exit(a + ": not a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]: " + v);
      return n;
    };
    if (a == "--port") o.port = static_cast<unsigned short>(number(0, 65535));
    else if (a == "--port-file") o.port_file = value();
    else if (a == "--host") o.host = value();
    else if (a == "--require-key") o.require_key = value();
    else if (a == "--threads") o.threads = static_cast<int>(number(1, 64));
    else if (a == "--record") o.record = static_cast<std::size_t>(number(0, 1000000));
    else if (a == "--cors") o.cors = true;
    else if (a == "--echo-trace") o.echo_trace = true;
    else if (a == "--help" || a == "-h") usage_exit("");
    else usage_exit("unknown argument: " + a);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse_args(argc, argv);
  beast::error_code ec;
  auto address = asio::ip::make_address(opt.host == "localhost" ? "127.0.0.1" : opt.host, ec);
  if (ec || !address.is_loopback()) usage_exit("--host: only loopback addresses are allowed: " + opt.host);

  Server server(opt);
  asio::io_context io(opt.threads);
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint(address, opt.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "fake_upstream: error: cannot listen on " << opt.host << ":" << opt.port << ": " << ec.message() << "\n";
    return 1;
  }
  ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);
  auto port = acceptor.local_endpoint().port();
  if (!opt.port_file.empty()) {
    // Written whole under another name, then renamed: a reader never sees a partial number.
    auto tmp = opt.port_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << port << "\n";
      if (!f) {
        std::cerr << "fake_upstream: error: cannot write port file: " << tmp << "\n";
        return 1;
      }
    }
    if (std::rename(tmp.c_str(), opt.port_file.c_str()) != 0) {
      std::cerr << "fake_upstream: error: cannot write port file: " << opt.port_file << "\n";
      return 1;
    }
  }
  std::cerr << "fake_upstream: listening on " << opt.host << ":" << port << (opt.require_key.empty() ? "" : " (key required)")
            << "\n";

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { io.stop(); });
  ::signal(SIGPIPE, SIG_IGN);
  asio::co_spawn(io, accept_loop(server, acceptor), asio::detached);

  std::vector<std::thread> pool;
  for (int i = 1; i < opt.threads; ++i) pool.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}
