#include "proxy/routing.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace tokfence::proxy {
namespace {

// ASCII only, as header names are; std::tolower consults the locale on every character.
using http1::iequals;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Headers that carry a credential in some SDK or gateway convention.
constexpr std::array<std::string_view, 12> credential_header_names = {
    "authorization", "proxy-authorization", "x-api-key",    "api-key",     "x-goog-api-key",
    "x-auth-token",  "x-access-token",      "x-goog-user-project-key", "cookie", "openai-api-key",
    "anthropic-api-key", "x-key"};

constexpr std::array<std::string_view, 8> hop_by_hop_names = {"connection", "keep-alive", "proxy-connection", "te",
                                         "trailer",    "transfer-encoding", "upgrade", "proxy-authenticate"};

constexpr std::array credential_query_names = {"key",          "api_key",   "apikey",        "api-key",
                                               "access_token", "x-api-key", "x-goog-api-key"};

// Decodes %XX in a query parameter name, so "k%65y=" is caught too.
std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<RouteTarget> split_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  RouteTarget out;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos) {
    out.has_query = true;
    out.query = target.substr(q + 1);
  }
  path.remove_prefix(1);
  auto slash = path.find('/');
  out.provider = path.substr(0, slash);
  if (slash != std::string_view::npos) out.rest = path.substr(slash);
  if (out.provider.empty()) return std::nullopt;
  return out;
}

std::string UpstreamUrl::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if ((tls && port != "443") || (!tls && port != "80")) h += ":" + port;
  return h;
}

std::string UpstreamUrl::origin() const {
  return std::string(tls ? "https://" : "http://") + (host.find(':') != std::string::npos ? "[" + host + "]" : host) +
         ":" + port;
}

Result<UpstreamUrl> parse_upstream_url(std::string_view url) {
  UpstreamUrl out;
  std::string_view rest;
  if (url.starts_with("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return fail("upstream: not an http(s) URL: " + std::string(url));
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos)
    return fail("upstream: credentials in the URL are not allowed (put the key in the vault): ...@" +
                std::string(authority.substr(authority.rfind('@') + 1)));
  std::string_view port;
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("upstream: malformed IPv6 host: " + std::string(url));
    out.host = std::string(authority.substr(1, close - 1));
    auto after = authority.substr(close + 1);
    if (after.starts_with(":")) port = after.substr(1);
    else if (!after.empty()) return fail("upstream: malformed host: " + std::string(url));
  } else {
    auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return fail("upstream: no host: " + std::string(url));
  if (!port.empty()) {
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535)
      return fail("upstream: bad port: " + std::string(url));
    out.port = std::string(port);
  } else {
    out.port = out.tls ? "443" : "80";
  }
  if (path.find('?') != std::string_view::npos || path.find('#') != std::string_view::npos)
    return fail("upstream: a query or fragment is not allowed in the upstream URL: " + std::string(url));
  while (path.ends_with("/")) path.remove_suffix(1);
  out.base_path = std::string(path);
  return out;
}

std::string strip_query_credentials(std::string_view query) {
  std::string out;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto amp = query.find('&', start);
    std::string_view part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    std::string name = lower(percent_decode(part.substr(0, part.find('='))));
    bool drop = std::any_of(credential_query_names.begin(), credential_query_names.end(),
                            [&](const char* n) { return name == n; });
    if (!drop && !part.empty()) {
      if (!out.empty()) out += '&';
      out += part;
    }
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return out;
}

bool is_credential_header(std::string_view name) {
  return std::any_of(credential_header_names.begin(), credential_header_names.end(),
                     [&](std::string_view n) { return iequals(name, n); });
}

bool is_hop_by_hop_header(std::string_view name) {
  return std::any_of(hop_by_hop_names.begin(), hop_by_hop_names.end(), [&](std::string_view n) { return iequals(name, n); });
}

namespace {

// Appends the upstream request target (see upstream_target) to `out`.
template <class String>
void append_upstream_target(const UpstreamUrl& upstream, const RouteTarget& route, String& out) {
  if (upstream.base_path.empty() && route.rest.empty()) out.append("/");
  out.append(upstream.base_path).append(route.rest);
  if (route.query.empty()) return;
  std::string query = strip_query_credentials(route.query);
  if (!query.empty()) out.append("?").append(query);
}

}  // namespace

std::string upstream_target(const UpstreamUrl& upstream, const RouteTarget& route) {
  std::string target;
  append_upstream_target(upstream, route, target);
  return target;
}

namespace {

// The tokens of the Connection fields: the names of more hop-by-hop fields. Views into the head,
// in a fixed array (no allocation per request; a response usually says "keep-alive"); past
// kMaxNamed tokens every field is checked against the head itself.
class ConnectionNamed {
 public:
  explicit ConnectionNamed(const http1::Head& in) : head_(in) {
    for (const auto& h : in.headers) {
      if (!iequals(h.name, "connection")) continue;
      http1::for_each_list_element(h.value, [this](std::string_view token) {
        if (count_ < kMaxNamed) named_[count_] = token;
        ++count_;
      });
    }
  }
  bool contains(std::string_view name) const {
    if (count_ > kMaxNamed) return head_.has_token("connection", name);
    for (std::size_t i = 0; i < count_; ++i)
      if (iequals(named_[i], name)) return true;
    return false;
  }

 private:
  static constexpr std::size_t kMaxNamed = 8;
  const http1::Head& head_;
  std::array<std::string_view, kMaxNamed> named_;
  std::size_t count_ = 0;
};

template <class String>
void append_field(String& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

void build_upstream_head(const http1::RequestHead& in, const RouteTarget& route,
                         std::optional<std::uint64_t> content_length, const ProviderSpec& spec,
                         const UpstreamUrl& upstream, const SecretString& key, WipingString& out) {
  out.clear();
  // One allocation in the usual case: growth would free (wiped) copies, but costs a copy each.
  out.reserve(in.size + upstream.base_path.size() + key.size() + 256);
  out.append(in.method).append(" ");
  append_upstream_target(upstream, route, out);
  out.append(" HTTP/1.1\r\n");
  ConnectionNamed named(in);
  for (const auto& f : in.headers) {
    std::string_view name = f.name;
    if (is_credential_header(name) || is_hop_by_hop_header(name) || iequals(name, "host") ||
        iequals(name, "content-length") || iequals(name, "expect") || iequals(name, "accept-encoding") ||
        iequals(name, "x-tokfence-caller") || named.contains(name))
      continue;
    append_field(out, name, f.value);
  }
  append_field(out, "Host", upstream.host_header());
  switch (spec.auth) {
    case AuthScheme::bearer:
      out.append("Authorization: Bearer ").append(key.reveal()).append("\r\n");
      break;
    case AuthScheme::x_api_key:
      append_field(out, "x-api-key", key.reveal());
      break;
    case AuthScheme::x_goog_api_key:
      append_field(out, "x-goog-api-key", key.reveal());
      break;
  }
  append_field(out, "Accept-Encoding", "identity");
  for (const auto& [name, value] : spec.default_headers)
    if (!in.find(name) && !is_credential_header(name)) append_field(out, name, value);
  if (content_length) append_field(out, "Content-Length", std::to_string(*content_length));
  out.append("\r\n");
}

void append_client_response_headers(const http1::ResponseHead& in, std::string& out) {
  ConnectionNamed named(in);
  for (const auto& f : in.headers) {
    std::string_view name = f.name;
    if (is_hop_by_hop_header(name) || named.contains(name) ||
        (in.body == http1::BodyKind::chunked && iequals(name, "content-length")))
      continue;
    append_field(out, name, f.value);
  }
}

std::string error_body(std::string_view type, std::string_view message, const nlohmann::json& extra) {
  nlohmann::json error = {{"type", type}, {"message", message}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it)
      if (it.key() != "type" && it.key() != "message") error[it.key()] = it.value();
  // Messages can quote client bytes (a provider name from the path): never throw on bad UTF-8.
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string provider_names(const std::vector<ProviderSpec>& providers) {
  std::string out;
  for (const auto& p : providers) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

}  // namespace tokfence::proxy
