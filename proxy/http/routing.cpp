#include "proxy/http/routing.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include "core/hex.hpp"
#include "core/text_format.hpp"

namespace tokfence::proxy {
namespace {

// ASCII only, as header names are; std::tolower consults the locale on every character.
using http1::iequals;

// Query parameters that carry a credential, as compared by credential_query_name(): lower case,
// '-' for '_'. "key" is Google's, the rest are SDK and gateway conventions.
constexpr std::array<std::string_view, 16> credential_query_names = {
    "key",           "apikey",       "api-key", "x-api-key", "x-goog-api-key", "access-token",
    "token",         "auth",         "auth-token", "authorization", "bearer", "id-token",
    "refresh-token", "client-secret", "secret",  "password"};

// RFC 3986 pchar without '%': unreserved, sub-delims, ':' and '@'.
bool is_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

// The character of a query's name or value at raw[i] as a server reads it (%XX and '+' decoded);
// `i` is moved past what it took.
char decoded_query_char(std::string_view raw, std::size_t& i) {
  char c = raw[i];
  if (c == '%' && i + 2 < raw.size() && hex_value(raw[i + 1]) >= 0 && hex_value(raw[i + 2]) >= 0) {
    c = static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
    i += 2;
  } else if (c == '+') {
    c = ' ';
  }
  ++i;
  return c;
}

// Whether a query parameter name means a credential to some server. Servers differ in what
// they make of a name, so it is compared the way the most lenient would read it: %XX decoded
// ("k%65y"), '+' as a space, control and space characters dropped ("key%00", "%20key"), ASCII
// lower case, '_' as '-', and a PHP-style "[...]" suffix ignored ("key[]"). Allocation-free: a
// name longer than any listed one cannot match.
bool is_credential_query_name(std::string_view raw) {
  char name[24];
  std::size_t n = 0;
  for (std::size_t i = 0; i < raw.size();) {
    const char c = decoded_query_char(raw, i);
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) continue;
    if (c == '[') break;
    if (n == sizeof name) return false;
    name[n++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c == '_' ? '-' : c;
  }
  std::string_view folded(name, n);
  return std::any_of(credential_query_names.begin(), credential_query_names.end(),
                     [&](std::string_view c) { return c == folded; });
}

// Whether one '&'-separated query part names a credential, also in a ';'-separated piece of it
// (some servers split on ';' too: "a=1;key=x").
// Calls fn(piece) for each ';'-separated piece of one query part, in order, until fn returns true;
// returns whether it did (some servers split a query on ';' as well as '&': "a=1;key=x").
template <class Fn>
bool any_query_piece(std::string_view part, Fn&& fn) {
  for (std::size_t start = 0; start <= part.size();) {
    const auto semi = part.find(';', start);
    if (fn(part.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start))) return true;
    if (semi == std::string_view::npos) break;
    start = semi + 1;
  }
  return false;
}

bool is_credential_query_part(std::string_view part) {
  return any_query_piece(part, [](std::string_view piece) { return is_credential_query_name(piece.substr(0, piece.find('='))); });
}

// Calls fn(part) for each non-empty '&'-separated part of a query, in order.
template <class Fn>
void for_each_query_part(std::string_view query, Fn&& fn) {
  for (std::size_t start = 0; start <= query.size();) {
    const auto amp = query.find('&', start);
    const std::string_view part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    if (!part.empty()) fn(part);
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
}

// Appends `query` without its credential parameters ("a=1&b=2" form, no '?').
template <class String>
void append_filtered_query(std::string_view query, String& out) {
  bool first = true;
  for_each_query_part(query, [&](std::string_view part) {
    if (is_credential_query_part(part)) return;
    if (!first) out.append("&");
    out.append(part);
    first = false;
  });
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

std::string percent_decoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

namespace {

// One pass of path_escapes_normalized.
std::optional<std::string> decode_plain_escapes_once(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  const std::size_t path_end = std::min(target.find('?'), target.size());
  auto decodes_plain = [&](std::size_t i) {
    if (target[i] != '%' || i + 2 >= path_end) return false;
    const int hi = hex_value(target[i + 1]), lo = hex_value(target[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == ':';
  };
  std::size_t first = 0;
  while (first < path_end && !decodes_plain(first)) ++first;
  if (first == path_end) return std::nullopt;  // the usual case: nothing to decode, no copy
  std::string out(target.substr(0, first));
  out.reserve(target.size());
  for (std::size_t i = first; i < target.size(); ++i) {
    if (i < path_end && decodes_plain(i)) {
      out.push_back(static_cast<char>(hex_value(target[i + 1]) * 16 + hex_value(target[i + 2])));
      i += 2;
    } else {
      out.push_back(target[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> path_escapes_normalized(std::string_view target) {
  // Until nothing changes: one pass can make a new escape ("%%36%33" gives "%63", review 13d M1),
  // which an upstream decoding once more would read as "c". Each pass shortens the target.
  std::optional<std::string> out;
  while (auto next = decode_plain_escapes_once(out ? std::string_view(*out) : target)) out = std::move(next);
  return out;
}

std::string json_unescaped(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] != '\\' || i + 1 >= json.size()) {
      out.push_back(json[i]);
    } else if (json[i + 1] == '/') {
      out.push_back('/');
      ++i;
    } else if (json[i + 1] == 'u' && i + 5 < json.size() && hex_value(json[i + 2]) == 0 && hex_value(json[i + 3]) == 0 &&
               hex_value(json[i + 4]) >= 0 && hex_value(json[i + 4]) < 8 && hex_value(json[i + 5]) >= 0) {
      out.push_back(static_cast<char>(hex_value(json[i + 4]) * 16 + hex_value(json[i + 5])));  // \u00XX, XX < 0x80
      i += 5;
    } else {
      out.push_back(json[i]);
      out.push_back(json[++i]);  // any other escape (an escaped backslash too) stays one unit
    }
  }
  return out;
}

std::string strip_query_credentials(std::string_view query) {
  std::string out;
  append_filtered_query(query, out);
  return out;
}

bool has_query_credential(std::string_view query) {
  bool found = false;
  for_each_query_part(query, [&](std::string_view part) { found = found || is_credential_query_part(part); });
  return found;
}

namespace {

// A query parameter's name or value as a server reads it: %XX and '+' decoded, ASCII lower case.
std::string folded_query_text(std::string_view raw) {
  std::string out;
  for (std::size_t i = 0; i < raw.size();) {
    const char c = decoded_query_char(raw, i);
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

}  // namespace

std::string google_usage_hiding(const http1::RequestHead& head, std::string_view query) {
  for (const auto& f : head.headers)
    if (header_names_equal(f.name, "x-goog-fieldmask"))
      return "the X-Goog-FieldMask field (a response field mask hides usageMetadata)";
  // An allow-list: Google adds system parameters now and then (fields, alt, callback wrap the
  // answer as JSONP: review 15c G2), so only those known to leave the answer readable pass.
  std::string found;
  for_each_query_part(query, [&](std::string_view part) {
    if (!found.empty()) return;  // the first one found is named
    // Also each ';'-separated piece, as the credential filter reads them.
    any_query_piece(part, [&](std::string_view piece) {
      const auto eq = piece.find('=');
      const std::string name = folded_query_text(piece.substr(0, eq));
      const std::string value = eq == std::string_view::npos ? std::string() : folded_query_text(piece.substr(eq + 1));
      const bool known = name == "prettyprint" || name == "$prettyprint" || name == "$.xgafv" ||
                         is_credential_query_name(piece.substr(0, eq)) ||
                         ((name == "alt" || name == "$alt") && (value == "json" || value == "sse"));
      if (!known && !(name.empty() && value.empty()))
        found = "the query parameter '" + name.substr(0, 40) + "'" +
                (name == "alt" || name == "$alt" ? " other than json or sse" : "") +
                " (only alt=json|sse, prettyPrint and $.xgafv are forwarded: others can change the answer's "
                "form so that its usage cannot be read)";
      return !found.empty();
    });
  });
  return found;
}

bool is_credential_header(std::string_view name) { return is_credential_header_name(name); }

bool is_hop_by_hop_header(std::string_view name) { return (header_roles(name) & header_role::hop_by_hop) != 0; }

bool is_cors_header(std::string_view name) {
  constexpr std::string_view prefix = "access-control-";
  return name.size() >= prefix.size() && iequals(name.substr(0, prefix.size()), prefix);
}

bool method_allowed(std::string_view method, const ProviderSpec& spec) {
  const auto& allowed = spec.methods.empty() ? default_methods() : spec.methods;
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& m) { return m == method; });
}

std::string_view forward_path_problem(std::string_view rest) {
  if (rest.empty()) return {};
  // rest starts with '/': walk its segments.
  std::size_t pos = 1;
  for (;;) {
    auto slash = rest.find('/', pos);
    std::string_view segment = rest.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    bool last = slash == std::string_view::npos;
    if (segment.empty() && !last) return "an empty segment ('//')";
    // The segment as a server would see it once decoded, up to a ';' (Tomcat-style path
    // parameters make "..;" a "..").
    std::size_t dots = 0, others = 0;
    bool in_params = false;
    for (std::size_t i = 0; i < segment.size(); ++i) {
      char c = segment[i];
      const bool encoded = c == '%';
      if (encoded) {
        if (i + 2 >= segment.size()) return "a '%' that is not followed by two hex digits";
        int hi = hex_value(segment[i + 1]), lo = hex_value(segment[i + 2]);
        if (hi < 0 || lo < 0) return "a '%' that is not followed by two hex digits";
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
        if (c == '/' || c == '\\') return "an encoded '/' or '\\' (%2F, %5C)";
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "an encoded control character";
        if (c == '%' && i + 2 < segment.size()) {
          // "%252e": a dot or separator encoded twice, for a server that decodes twice.
          int next_hi = hex_value(segment[i + 1]), next_lo = hex_value(segment[i + 2]);
          char twice = static_cast<char>(next_hi * 16 + next_lo);
          if (next_hi >= 0 && next_lo >= 0 && (twice == '.' || twice == '/' || twice == '\\'))
            return "a '.', '/' or '\\' encoded twice (%252E, %252F, %255C)";
        }
      } else if (!is_path_char(c)) {
        return "a character that must be percent-encoded in a path";
      }
      if (c == ';' && !encoded) in_params = true;
      if (in_params) continue;
      if (c == '.') ++dots;
      else ++others;
    }
    if (others == 0 && (dots == 1 || dots == 2)) return "a '.' or '..' segment (also percent-encoded: %2E)";
    if (last) return {};
    pos = slash + 1;
  }
}

namespace {

// Appends the upstream request target (see upstream_target) to `out`.
template <class String>
void append_upstream_target(const UpstreamUrl& upstream, const RouteTarget& route, String& out) {
  if (upstream.base_path.empty() && route.rest.empty()) out.append("/");
  out.append(upstream.base_path).append(route.rest);
  if (route.query.empty()) return;
  const auto before = out.size();
  out.append("?");
  append_filtered_query(route.query, out);
  if (out.size() == before + 1) out.resize(before);  // every parameter was a credential
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
    if (count_ > kMaxNamed) {
      bool found = false;
      for (const auto& h : head_.headers)
        if (iequals(h.name, "connection"))
          http1::for_each_list_element(h.value, [&](std::string_view token) { found = found || header_names_equal(token, name); });
      return found;
    }
    for (std::size_t i = 0; i < count_; ++i)
      if (header_names_equal(named_[i], name)) return true;
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

// A client's fields the upstream never gets: its credentials (the vault's key replaces them), the
// connection's own, those the proxy writes (Host, Content-Length, Accept-Encoding: identity), and
// the ones an upstream may read as the real method or path.
constexpr std::uint32_t kNotForwarded = header_role::credential | header_role::hop_by_hop | header_role::host |
                                        header_role::content_length | header_role::expect |
                                        header_role::accept_encoding | header_role::tokfence_caller |
                                        header_role::method_override;

void build_upstream_head(const http1::RequestHead& in, const RouteTarget& route,
                         std::optional<std::uint64_t> content_length, const ProviderSpec& spec,
                         const UpstreamUrl& upstream, const SecretString& key, WipingString& out) {
  out.clear();
  // One allocation in the usual case: growth would free (wiped) copies, but costs a copy each.
  std::size_t forced_bytes = 0;
  for (const auto& [name, value] : spec.forced_headers) forced_bytes += name.size() + value.size() + 4;
  out.reserve(in.size + upstream.base_path.size() + key.size() + forced_bytes + 256);
  out.append(in.method).append(" ");
  append_upstream_target(upstream, route, out);
  out.append(" HTTP/1.1\r\n");
  ConnectionNamed named(in);
  // Names compared as header_names_equal does (case, '_' for '-'): an upstream that reads
  // X_Api_Key as x-api-key must not get a client's credential or a second Host that way.
  auto forced = [&spec](std::string_view name) {
    for (const auto& [forced_name, value] : spec.forced_headers)
      if (header_names_equal(name, forced_name)) return true;
    return false;
  };
  for (const auto& f : in.headers) {
    std::string_view name = f.name;
    if ((header_roles(name) & kNotForwarded) != 0 || named.contains(name) ||
        (!spec.forced_headers.empty() && forced(name)))
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
    if (!in.find(name) && !is_credential_header(name) && !forced(name)) append_field(out, name, value);
  for (const auto& [name, value] : spec.forced_headers) append_field(out, name, value);
  if (content_length) append_field(out, "Content-Length", std::to_string(*content_length));
  out.append("\r\n");
}

void append_client_response_headers(const http1::ResponseHead& in, std::string& out) {
  ConnectionNamed named(in);
  for (const auto& f : in.headers) {
    std::string_view name = f.name;
    // Access-Control-*: the upstream's CORS answer would let a web page read the reply (the
    // proxy serves local agents, never browsers; docs/PROXY.md).
    if (is_hop_by_hop_header(name) || named.contains(name) || is_cors_header(name) ||
        (in.body == http1::BodyKind::chunked && iequals(name, "content-length")))
      continue;
    append_field(out, name, f.value);
  }
}

ContentCoding content_coding(const http1::Head& head) {
  ContentCoding coding;
  for (const auto& f : head.headers) {
    if (!(header_roles(f.name) & header_role::content_encoding)) continue;
    ++coding.fields;
    http1::for_each_list_element(f.value, [&](std::string_view c) { coding.encoded = coding.encoded || !iequals(c, "identity"); });
  }
  return coding;
}

bool declares_json_body(const http1::Head& head) {
  bool any = false;
  bool json = false;
  for (const auto& f : head.headers) {
    if (!(header_roles(f.name) & header_role::content_type)) continue;
    any = true;
    std::string_view type = http1::trim_ows(f.value.substr(0, f.value.find(';')));
    const auto slash = type.find('/');
    if (slash == std::string_view::npos || !iequals(type.substr(0, slash), "application")) continue;
    const std::string_view sub = type.substr(slash + 1);
    json = json || iequals(sub, "json") || (sub.size() > 5 && iequals(sub.substr(sub.size() - 5), "+json"));
  }
  return json || !any;
}

std::string json_charset_problem(const http1::Head& head) {
  std::string problem;
  for (const auto& f : head.headers) {
    if (!(header_roles(f.name) & header_role::content_type)) continue;
    std::string_view params = f.value;
    for (auto semi = params.find(';'); semi != std::string_view::npos; semi = params.find(';')) {
      params.remove_prefix(semi + 1);
      const std::string_view param = http1::trim_ows(params.substr(0, params.find(';')));
      const auto eq = param.find('=');
      if (eq == std::string_view::npos || !iequals(http1::trim_ows(param.substr(0, eq)), "charset")) continue;
      std::string_view charset = http1::trim_ows(param.substr(eq + 1));
      if (charset.size() >= 2 && charset.front() == '"' && charset.back() == '"') charset = charset.substr(1, charset.size() - 2);
      if (iequals(charset, "utf-8") || iequals(charset, "us-ascii")) continue;
      if (problem.empty()) problem = "its Content-Type names the charset '" + printable(std::string(charset.substr(0, 40))) + "' (send UTF-8 JSON)";
    }
  }
  return problem;
}

std::string_view json_body_problem(std::string_view body) {
  auto starts = [&](std::string_view mark) { return body.substr(0, mark.size()) == mark; };
  using namespace std::string_view_literals;
  if (starts("\xEF\xBB\xBF"sv) || starts("\xFE\xFF"sv) || starts("\xFF\xFE"sv) || starts("\0\0\xFE\xFF"sv))
    return "it starts with a byte-order mark (send UTF-8 JSON without one)";
  if (body.find('\0') != std::string_view::npos) return "it holds a NUL byte (UTF-16 or UTF-32 text? send UTF-8 JSON)";
  return {};
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
