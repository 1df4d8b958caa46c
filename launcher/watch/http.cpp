// The HTTP side of `tokfence watch`: one libcurl GET per page, and the pagination of each API.
#include <curl/curl.h>
#include <openssl/crypto.h>

#include <cstring>
#include <memory>
#include <set>

#include "core/text_format.hpp"
#include "core/time.hpp"
#include "launcher/watch/watch.hpp"

namespace tokfence::watch {

namespace {

constexpr std::size_t kMaxBody = 8 * 1024 * 1024;
constexpr int kMaxPages = 200;

struct EasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};

// Header lines hold the key: wipe libcurl's copies before freeing them.
struct SlistDeleter {
  void operator()(curl_slist* list) const {
    for (curl_slist* l = list; l != nullptr; l = l->next)
      if (l->data != nullptr) OPENSSL_cleanse(l->data, std::strlen(l->data));
    curl_slist_free_all(list);
  }
};

struct Body {
  std::string data;
  bool too_large = false;
};

size_t on_write(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* body = static_cast<Body*>(userdata);
  size_t n = size * nmemb;
  if (body->data.size() + n > kMaxBody) {
    body->too_large = true;
    return 0;
  }
  body->data.append(ptr, n);
  return n;
}

// The provider's error text, shortened, with the key removed if it was echoed back.
std::string error_text(const std::string& body, const std::vector<std::pair<std::string, SecretString>>& headers) {
  std::string text;
  try {
    json j = json::parse(body);
    if (j.is_object() && j.contains("error")) {
      const json& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) text = e["message"].get<std::string>();
      else if (e.is_string()) text = e.get<std::string>();
    }
  } catch (const json::exception&) {
  }
  for (const auto& [name, value] : headers) {
    std::string_view v = value.reveal();
    // Headers are "Bearer <key>" or the key itself: strip both spellings.
    for (std::string_view needle : {v, v.starts_with("Bearer ") ? v.substr(7) : std::string_view{}}) {
      if (needle.size() < 4) continue;
      for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle))
        text.replace(pos, needle.size(), "<redacted>");
    }
  }
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  return text;
}

std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

std::string with_query(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

// "1m" buckets for windows up to a day, "1h" above (both APIs cap 1m buckets at 1440 per page).
std::string bucket_width(const Window& w) { return w.end_ms - w.start_ms <= 86'400'000 ? "1m" : "1h"; }

using Parser = Result<Page> (*)(const json&, const Window&);

// Follows next_page until has_more is false; sums the pages into `into`.
FetchResult<int> paginate(const std::string& base_query_url, const Window& window, Parser parse,
                          const std::vector<std::pair<std::string, SecretString>>& headers, const HttpGet& get,
                          Amounts& into) {
  std::optional<std::string> page_token;
  std::set<std::string> seen;
  int pages = 0;
  for (;;) {
    if (pages >= kMaxPages)
      return std::unexpected(FetchError{FetchError::Kind::malformed, 0,
                                        "more than " + std::to_string(kMaxPages) + " pages; narrow --period"});
    std::string url = page_token ? with_query(base_query_url, "page=" + escape(*page_token)) : base_query_url;
    auto body = get(url, headers);
    ++pages;
    if (!body) return std::unexpected(body.error());
    auto page = parse(*body, window);
    if (!page)
      return std::unexpected(FetchError{FetchError::Kind::malformed, 200,
                                        "malformed response from " + redact_url(url) + ": " + page.error().message});
    const Amounts& a = page->amounts;
    if (a.requests) into.requests = into.requests.value_or(0) + *a.requests;
    if (a.tokens) into.tokens = into.tokens.value_or(0) + *a.tokens;
    if (a.cost) into.cost = into.cost.value_or(0) + *a.cost;
    if (!page->next_page) return pages;
    if (!seen.insert(*page->next_page).second)
      return std::unexpected(FetchError{FetchError::Kind::malformed, 200,
                                        "malformed response from " + redact_url(url) + ": next_page repeats a page already read"});
    page_token = page->next_page;
  }
}

Result<Page> parse_simple_windowed(const json& body, const Window&) { return parse_simple(body); }

SecretString bearer(const SecretString& key) {
  std::string line;
  line.reserve(7 + key.size());
  line.append("Bearer ").append(key.reveal());
  SecretString out(line);
  wipe(line);
  return out;
}

}  // namespace

HttpGet curl_http_get() {
  return [](const std::string& url, const std::vector<std::pair<std::string, SecretString>>& headers) -> FetchResult<json> {
    std::unique_ptr<CURL, EasyDeleter> curl(curl_easy_init());
    if (!curl) return std::unexpected(FetchError{FetchError::Kind::network, 0, "libcurl could not start"});
    std::unique_ptr<curl_slist, SlistDeleter> list;
    curl_slist* raw = nullptr;
    for (const auto& [name, value] : headers) {
      std::string line;
      line.reserve(name.size() + 2 + value.size() + 1);
      line.append(name).append(": ").append(value.reveal());
      raw = curl_slist_append(raw, line.c_str());
      wipe(line);
    }
    raw = curl_slist_append(raw, "Accept: application/json");
    list.reset(raw);
    Body body;
    char errbuf[CURL_ERROR_SIZE] = {0};
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, raw);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // the key goes to this endpoint and nowhere else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tokfence-watch/" TOKFENCE_VERSION);
    // A proxy from the environment would read a plain-http request, key included; https goes
    // through it as an opaque tunnel.
    if (url.starts_with("http://")) curl_easy_setopt(c, CURLOPT_PROXY, "");
    CURLcode rc = curl_easy_perform(c);
    std::string where = redact_url(url);
    if (rc != CURLE_OK) {
      if (body.too_large)
        return std::unexpected(FetchError{FetchError::Kind::malformed, 0, where + ": response larger than 8 MiB"});
      std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
      return std::unexpected(FetchError{FetchError::Kind::network, 0, where + ": " + detail});
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 401 || status == 403) {
      std::string text = error_text(body.data, headers);
      return std::unexpected(FetchError{FetchError::Kind::auth, static_cast<int>(status),
                                        where + ": http " + std::to_string(status) + (text.empty() ? "" : ": " + text)});
    }
    if (status >= 300 && status < 400)
      return std::unexpected(FetchError{FetchError::Kind::redirect, static_cast<int>(status),
                                        where + ": http " + std::to_string(status) +
                                            " redirect not followed (the key is only sent to the endpoint itself)"});
    if (status != 200) {
      std::string text = error_text(body.data, headers);
      return std::unexpected(FetchError{FetchError::Kind::http, static_cast<int>(status),
                                        where + ": http " + std::to_string(status) + (text.empty() ? "" : ": " + text)});
    }
    try {
      return json::parse(body.data);
    } catch (const json::exception&) {
      return std::unexpected(FetchError{FetchError::Kind::malformed, 200, "malformed response from " + where + ": not json"});
    }
  };
}

FetchResult<RemoteUsage> fetch_remote(const Endpoint& endpoint, const ProviderSpec& spec, const SecretString& key,
                                      const Window& usage_window, const Window& cost_window, Costs costs,
                                      const HttpGet& get) {
  std::vector<std::pair<std::string, SecretString>> headers;
  RemoteUsage out;
  auto secs = [](std::int64_t ms) { return std::to_string(ms / 1000); };
  switch (endpoint.format) {
    case Format::openai: {
      headers.emplace_back("Authorization", bearer(key));
      out.amounts.requests = 0;
      out.amounts.tokens = 0;
      std::string usage = with_query(endpoint.url + "/v1/organization/usage/completions",
                                     "start_time=" + secs(usage_window.start_ms) + "&end_time=" + secs(usage_window.end_ms) +
                                         "&bucket_width=" + bucket_width(usage_window) + "&limit=" +
                                         (bucket_width(usage_window) == "1m" ? "1440" : "168"));
      auto n = paginate(usage, usage_window, parse_openai_usage, headers, get, out.amounts);
      if (!n) return std::unexpected(n.error());
      out.pages += *n;
      if (costs == Costs::yes) {
        out.amounts.cost = 0;
        out.cost_window = cost_window;
        std::string cost = with_query(endpoint.url + "/v1/organization/costs",
                                      "start_time=" + secs(cost_window.start_ms) + "&end_time=" + secs(cost_window.end_ms) +
                                          "&bucket_width=1d&limit=180");
        auto m = paginate(cost, cost_window, parse_openai_costs, headers, get, out.amounts);
        if (!m) return std::unexpected(m.error());
        out.pages += *m;
      }
      return out;
    }
    case Format::anthropic: {
      headers.emplace_back("x-api-key", key);
      headers.emplace_back("anthropic-version", SecretString("2023-06-01"));
      out.amounts.tokens = 0;  // the usage report has no request counts
      std::string usage = with_query(endpoint.url + "/v1/organizations/usage_report/messages",
                                     "starting_at=" + escape(utc_rfc3339(usage_window.start_ms)) +
                                         "&ending_at=" + escape(utc_rfc3339(usage_window.end_ms)) + "&bucket_width=" +
                                         bucket_width(usage_window) + "&limit=" +
                                         (bucket_width(usage_window) == "1m" ? "1440" : "168"));
      auto n = paginate(usage, usage_window, parse_anthropic_usage, headers, get, out.amounts);
      if (!n) return std::unexpected(n.error());
      out.pages += *n;
      if (costs == Costs::yes) {
        out.amounts.cost = 0;
        out.cost_window = cost_window;
        std::string cost = with_query(endpoint.url + "/v1/organizations/cost_report",
                                      "starting_at=" + escape(utc_rfc3339(cost_window.start_ms)) +
                                          "&ending_at=" + escape(utc_rfc3339(cost_window.end_ms)) + "&bucket_width=1d&limit=31");
        auto m = paginate(cost, cost_window, parse_anthropic_costs, headers, get, out.amounts);
        if (!m) return std::unexpected(m.error());
        out.pages += *m;
      }
      return out;
    }
    case Format::simple: {
      switch (spec.auth) {
        case AuthScheme::bearer: headers.emplace_back("Authorization", bearer(key)); break;
        case AuthScheme::x_api_key: headers.emplace_back("x-api-key", key); break;
        case AuthScheme::x_goog_api_key: headers.emplace_back("x-goog-api-key", key); break;
      }
      std::string url = with_query(endpoint.url, "start_time=" + secs(usage_window.start_ms) + "&end_time=" + secs(usage_window.end_ms));
      auto n = paginate(url, usage_window, parse_simple_windowed, headers, get, out.amounts);
      if (!n) return std::unexpected(n.error());
      out.pages += *n;
      out.cost_window = usage_window;
      if (costs == Costs::no) out.amounts.cost.reset();
      return out;
    }
  }
  return out;
}

}  // namespace tokfence::watch
