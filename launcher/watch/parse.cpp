// Durations, endpoints and the usage/cost response parsers of `tokfence watch`.
#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <memory>

#include "core/names.hpp"
#include "launcher/watch/watch.hpp"

namespace tokfence::watch {

namespace {


std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlStrDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlStr = std::unique_ptr<char, CurlStrDeleter>;

std::optional<std::string> url_part(CURLU* u, CURLUPart part) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, 0) != CURLUE_OK || out == nullptr) return std::nullopt;
  CurlStr holder(out);
  return std::string(out);
}

bool is_loopback_host(std::string_view host) {
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" ||
         host.starts_with("127.");
}

// Sums optional counters: absent on either side stays absent only when never seen.
void add(std::optional<std::int64_t>& total, std::int64_t value) { total = total.value_or(0) + value; }

Result<std::int64_t> int_field(const json& obj, const char* name, bool required) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) {
    if (required) return fail(std::string("missing field '") + name + "'");
    return 0;
  }
  if (it->is_number_integer() || it->is_number_unsigned()) return it->get<std::int64_t>();
  if (it->is_number_float()) {
    double d = it->get<double>();
    if (d < 0 || d > 9e15) return fail(std::string("field '") + name + "' out of range");
    return static_cast<std::int64_t>(std::llround(d));
  }
  return fail(std::string("field '") + name + "' is not a number");
}

std::optional<std::int64_t> parse_rfc3339_ms(std::string_view text) {
  // 2025-08-01T00:00:00Z, optionally with fractional seconds; only UTC (Z or +00:00) is produced by
  // the APIs, anything else is refused rather than guessed.
  if (text.size() < 20) return std::nullopt;
  std::tm tm{};
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    auto r = std::from_chars(text.data() + pos, text.data() + pos + len, out);
    return r.ec == std::errc() && r.ptr == text.data() + pos + len;
  };
  int y, mo, d, h, mi, s;
  if (!num(0, 4, y) || text[4] != '-' || !num(5, 2, mo) || text[7] != '-' || !num(8, 2, d) ||
      (text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !num(11, 2, h) || text[13] != ':' ||
      !num(14, 2, mi) || text[16] != ':' || !num(17, 2, s))
    return std::nullopt;
  std::string_view rest = text.substr(19);
  if (!rest.empty() && rest[0] == '.') {
    std::size_t i = 1;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
    rest = rest.substr(i);
  }
  if (rest != "Z" && rest != "z" && rest != "+00:00") return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000;
}

// Walks the common envelope {data:[{<start>,<end>,results:[...]}], has_more, next_page} and hands
// every result of an in-window bucket to `each`.
template <class Each>
Result<Page> walk_buckets(const json& body, const Window& window, bool rfc3339, Each each) {
  if (!body.is_object()) return fail("response is not a json object");
  auto data = body.find("data");
  if (data == body.end() || !data->is_array()) return fail("response has no 'data' array");
  Page page;
  for (const json& bucket : *data) {
    if (!bucket.is_object()) return fail("a bucket in 'data' is not an object");
    std::int64_t start_ms = 0, end_ms = 0;
    if (rfc3339) {
      auto s = bucket.find("starting_at"), e = bucket.find("ending_at");
      if (s == bucket.end() || e == bucket.end() || !s->is_string() || !e->is_string())
        return fail("a bucket has no 'starting_at'/'ending_at' strings");
      auto sm = parse_rfc3339_ms(s->get<std::string>()), em = parse_rfc3339_ms(e->get<std::string>());
      if (!sm || !em) return fail("a bucket has an unreadable timestamp");
      start_ms = *sm;
      end_ms = *em;
    } else {
      auto s = int_field(bucket, "start_time", true), e = int_field(bucket, "end_time", true);
      if (!s) return fail("a bucket: " + s.error().message);
      if (!e) return fail("a bucket: " + e.error().message);
      start_ms = *s * 1000;
      end_ms = *e * 1000;
    }
    auto results = bucket.find("results");
    if (results == bucket.end()) results = bucket.find("result");  // older OpenAI spec spelling
    if (results == bucket.end() || !results->is_array()) return fail("a bucket has no 'results' array");
    ++page.buckets;
    if (start_ms < window.start_ms || end_ms > window.end_ms) continue;
    for (const json& r : *results) {
      if (!r.is_object()) return fail("a result is not an object");
      auto ok = each(r, page.amounts);
      if (!ok) return std::unexpected(ok.error());
    }
  }
  auto more = body.find("has_more");
  bool has_more = more != body.end() && more->is_boolean() && more->get<bool>();
  if (has_more) {
    auto next = body.find("next_page");
    if (next == body.end() || !next->is_string() || next->get<std::string>().empty())
      return fail("has_more is true but next_page is missing");
    page.next_page = next->get<std::string>();
  }
  return page;
}

}  // namespace

Result<std::int64_t> parse_duration_seconds(std::string_view text) {
  auto bad = [&] {
    return fail("duration '" + std::string(text) + "': expected a number with s, m, h or d (e.g. 30s, 15m, 24h, 7d)");
  };
  if (text.empty()) return bad();
  std::int64_t unit = 1;
  std::string_view digits = text;
  switch (text.back()) {
    case 's': unit = 1; digits.remove_suffix(1); break;
    case 'm': unit = 60; digits.remove_suffix(1); break;
    case 'h': unit = 3600; digits.remove_suffix(1); break;
    case 'd': unit = 86400; digits.remove_suffix(1); break;
    default: break;
  }
  std::int64_t n = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size() || n < 0 || n > 3650L * 86400)
    return bad();
  return n * unit;
}

std::string format_duration(std::int64_t seconds) {
  if (seconds > 0 && seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds > 0 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

std::string_view to_string(Format format) {
  switch (format) {
    case Format::openai: return "openai";
    case Format::anthropic: return "anthropic";
    case Format::simple: return "simple";
  }
  return "simple";
}

std::optional<Endpoint> builtin_endpoint(std::string_view provider) {
  if (provider == "openai") return Endpoint{Format::openai, "https://api.openai.com"};
  if (provider == "anthropic") return Endpoint{Format::anthropic, "https://api.anthropic.com"};
  return std::nullopt;
}

std::string redact_url(std::string_view url) {
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  std::string copy(url);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) return "<unparsable url>";
  auto scheme = url_part(u.get(), CURLUPART_SCHEME), host = url_part(u.get(), CURLUPART_HOST);
  auto port = url_part(u.get(), CURLUPART_PORT), path = url_part(u.get(), CURLUPART_PATH);
  std::string out = scheme.value_or("?") + "://" + host.value_or("?");
  if (port) out += ":" + *port;
  out += path.value_or("/");
  return out;
}

Result<std::pair<std::string, Endpoint>> parse_endpoint_override(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return fail("usage endpoint '" + redact_url(text) + "': expected PROVIDER=URL, e.g. mistral=https://usage.example/v1/usage");
  std::string provider(text.substr(0, eq));
  if (auto ok = check_provider_name(provider); !ok) return std::unexpected(ok.error());
  std::string_view url = text.substr(eq + 1);
  Endpoint endpoint;
  if (auto b = builtin_endpoint(provider)) endpoint.format = b->format;
  for (auto [prefix, format] : {std::pair{"openai:", Format::openai}, std::pair{"anthropic:", Format::anthropic},
                                std::pair{"simple:", Format::simple}}) {
    if (url.starts_with(prefix)) {
      endpoint.format = format;
      url.remove_prefix(std::string_view(prefix).size());
      break;
    }
  }
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  std::string copy(url);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK)
    return fail("usage endpoint for '" + provider + "': not a url: " + redact_url(url));
  auto scheme = lower(url_part(u.get(), CURLUPART_SCHEME).value_or(""));
  auto host = lower(url_part(u.get(), CURLUPART_HOST).value_or(""));
  if (scheme != "http" && scheme != "https")
    return fail("usage endpoint for '" + provider + "': only http and https urls are accepted: " + redact_url(url));
  if (url_part(u.get(), CURLUPART_USER) || url_part(u.get(), CURLUPART_PASSWORD))
    return fail("usage endpoint for '" + provider + "': credentials in the url are refused (the key comes from the vault): " +
                redact_url(url));
  if (scheme == "http" && !is_loopback_host(host))
    return fail("usage endpoint for '" + provider + "': plain http is allowed only to a loopback host (the key would travel in clear); use https: " +
                redact_url(url));
  if (url_part(u.get(), CURLUPART_FRAGMENT))
    return fail("usage endpoint for '" + provider + "': a url fragment is not allowed: " + redact_url(url));
  endpoint.url = copy;
  while (endpoint.format != Format::simple && endpoint.url.ends_with('/')) endpoint.url.pop_back();
  return std::pair{provider, endpoint};
}

Result<Page> parse_openai_usage(const json& body, const Window& window) {
  return walk_buckets(body, window, false, [](const json& r, Amounts& a) -> Result<void> {
    auto in = int_field(r, "input_tokens", true), out = int_field(r, "output_tokens", true);
    auto reqs = int_field(r, "num_model_requests", true);
    if (!in) return fail("a usage result: " + in.error().message);
    if (!out) return fail("a usage result: " + out.error().message);
    if (!reqs) return fail("a usage result: " + reqs.error().message);
    // input_tokens already includes cached input; audio tokens are reported beside it in older
    // versions and inside it in newer ones, so they are left out rather than risk counting twice.
    add(a.tokens, *in + *out);
    add(a.requests, *reqs);
    return {};
  });
}

Result<Page> parse_openai_costs(const json& body, const Window& window) {
  return walk_buckets(body, window, false, [](const json& r, Amounts& a) -> Result<void> {
    auto amount = r.find("amount");
    if (amount == r.end() || !amount->is_object()) return fail("a cost result has no 'amount' object");
    auto value = amount->find("value");
    auto currency = amount->find("currency");
    if (currency != amount->end() && currency->is_string() && lower(currency->get<std::string>()) != "usd")
      return fail("a cost result is not in usd: " + currency->get<std::string>());
    Picodollars pico = 0;
    if (value == amount->end() || value->is_null()) {
      pico = 0;
    } else if (value->is_number()) {
      double usd = value->get<double>();
      if (!std::isfinite(usd) || std::fabs(usd) > 1e7) return fail("a cost result has an implausible amount");
      pico = static_cast<Picodollars>(std::llround(usd * 1e12));
    } else if (value->is_string()) {
      auto p = parse_decimal_scaled(value->get<std::string>(), 12);
      if (!p) return fail("a cost result has an unreadable amount");
      pico = *p;
    } else {
      return fail("a cost result's amount.value is not a number");
    }
    a.cost = a.cost.value_or(0) + pico;
    return {};
  });
}

Result<Page> parse_anthropic_usage(const json& body, const Window& window) {
  return walk_buckets(body, window, true, [](const json& r, Amounts& a) -> Result<void> {
    auto uncached = int_field(r, "uncached_input_tokens", true), out = int_field(r, "output_tokens", true);
    auto read = int_field(r, "cache_read_input_tokens", false);
    if (!uncached) return fail("a usage result: " + uncached.error().message);
    if (!out) return fail("a usage result: " + out.error().message);
    if (!read) return fail("a usage result: " + read.error().message);
    std::int64_t creation = 0;
    if (auto cc = r.find("cache_creation"); cc != r.end() && cc->is_object()) {
      for (auto& [k, v] : cc->items())
        if (v.is_number_integer() || v.is_number_unsigned()) creation += v.get<std::int64_t>();
    } else {
      // Flat spelling seen in some versions of the schema.
      for (const char* k : {"cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens"}) {
        auto v = int_field(r, k, false);
        if (!v) return fail("a usage result: " + v.error().message);
        creation += *v;
      }
    }
    add(a.tokens, *uncached + *read + creation + *out);
    return {};
  });
}

Result<Page> parse_anthropic_costs(const json& body, const Window& window) {
  return walk_buckets(body, window, true, [](const json& r, Amounts& a) -> Result<void> {
    auto amount = r.find("amount");
    if (amount == r.end()) return fail("a cost result has no 'amount'");
    auto currency = r.find("currency");
    if (currency != r.end() && currency->is_string() && lower(currency->get<std::string>()) != "usd")
      return fail("a cost result is not in usd: " + currency->get<std::string>());
    // "Cost amount in lowest currency units (e.g. cents) as a decimal string": 1 cent = 10^10 pico.
    std::optional<Picodollars> pico;
    if (amount->is_string()) pico = parse_decimal_scaled(amount->get<std::string>(), 10);
    else if (amount->is_number()) pico = static_cast<Picodollars>(std::llround(amount->get<double>() * 1e10));
    if (!pico) return fail("a cost result has an unreadable amount");
    a.cost = a.cost.value_or(0) + *pico;
    return {};
  });
}

Result<Page> parse_simple(const json& body) {
  if (!body.is_object()) return fail("response is not a json object");
  auto one = [](const json& o, Amounts& a) -> Result<void> {
    if (!o.is_object()) return fail("an entry is not an object");
    bool any = false;
    for (const char* k : {"requests", "input_tokens", "output_tokens", "total_tokens"}) {
      if (!o.contains(k)) continue;
      auto v = int_field(o, k, false);
      if (!v) return std::unexpected(v.error());
      if (*v < 0) return fail(std::string("field '") + k + "' is negative");
      any = true;
      if (std::string_view(k) == "requests") add(a.requests, *v);
      else if (std::string_view(k) != "total_tokens" || (!o.contains("input_tokens") && !o.contains("output_tokens")))
        add(a.tokens, *v);
    }
    if (auto c = o.find("cost_usd"); c != o.end() && !c->is_null()) {
      std::optional<Picodollars> pico;
      if (c->is_number()) {
        double usd = c->get<double>();
        if (std::isfinite(usd) && usd >= 0 && usd < 1e7) pico = static_cast<Picodollars>(std::llround(usd * 1e12));
      } else if (c->is_string()) {
        pico = parse_decimal_scaled(c->get<std::string>(), 12);
      }
      if (!pico || *pico < 0) return fail("field 'cost_usd' is not a non-negative number");
      a.cost = a.cost.value_or(0) + *pico;
      any = true;
    }
    if (!any) return fail("no usage field (requests, input_tokens, output_tokens, total_tokens, cost_usd)");
    return {};
  };
  Page page;
  auto data = body.find("data");
  if (data == body.end()) {
    if (auto ok = one(body, page.amounts); !ok) return std::unexpected(ok.error());
    page.buckets = 1;
    return page;
  }
  if (!data->is_array()) return fail("'data' is not an array");
  for (const json& e : *data) {
    if (auto ok = one(e, page.amounts); !ok) return std::unexpected(ok.error());
    ++page.buckets;
  }
  auto more = body.find("has_more");
  if (more != body.end() && more->is_boolean() && more->get<bool>()) {
    auto next = body.find("next_page");
    if (next == body.end() || !next->is_string() || next->get<std::string>().empty())
      return fail("has_more is true but next_page is missing");
    page.next_page = next->get<std::string>();
  }
  return page;
}

}  // namespace tokfence::watch
