#include "proxy/http/inspect.hpp"

#include <algorithm>
#include <cctype>

#include "core/hex.hpp"
#include "core/providers.hpp"
#include "proxy/http/routing.hpp"

namespace tokfence::proxy::inspect {

using http1::iequals;

void LiveSecrets::replace(SecretBook book) {
  auto next = std::make_shared<const SecretBook>(std::move(book));
  std::lock_guard lock(mutex_);
  book_ = std::move(next);
}

std::shared_ptr<const SecretBook> LiveSecrets::snapshot() const {
  std::lock_guard lock(mutex_);
  return book_;
}

bool bound_to(const BoundSecret& secret, std::string_view host) {
  return std::any_of(secret.hosts.begin(), secret.hosts.end(),
                     [&](const std::string& pattern) { return egress::host_pattern_matches(pattern, host); });
}

bool bound_to(const BoundSecret& secret, const egress::Destination& to) {
  return to.port == kBoundPort && bound_to(secret, to.host);
}

std::vector<std::string_view> secrets_bound_to(const SecretBook& secrets, const egress::Destination& to) {
  std::vector<std::string_view> out;
  for (const auto& [name, secret] : secrets)
    if (bound_to(secret, to)) out.push_back(secret.value.reveal());
  return out;
}

bool should_inspect(const egress::DomainRules* rules, const SecretBook& secrets, std::string_view host) {
  using Mode = egress::DomainRules::Mode;
  if (rules && rules->mode != Mode::automatic) return rules->mode == Mode::inspect;
  if (rules && rules->has_l7_rules()) return true;  // rules about requests need the requests
  return std::any_of(secrets.begin(), secrets.end(), [&](const auto& entry) { return bound_to(entry.second, host); });
}

namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// One placeholder found in a piece of the head: where it starts, its length, its secret's name.
struct Found {
  std::size_t at = 0;
  std::size_t length = 0;
  std::string_view name;
};

// Every placeholder in `text`; an empty name (the prefix followed by nothing a name is made of)
// or an over-long one is reported with an empty `name` so the caller refuses it.
std::vector<Found> placeholders_in(std::string_view text) {
  std::vector<Found> out;
  for (std::size_t at = text.find(kPlaceholderPrefix); at != std::string_view::npos;
       at = text.find(kPlaceholderPrefix, at + 1)) {
    std::size_t end = at + kPlaceholderPrefix.size();
    while (end < text.size() && is_name_char(text[end])) ++end;
    const std::string_view name = text.substr(at + kPlaceholderPrefix.size(), end - at - kPlaceholderPrefix.size());
    const bool valid = !name.empty() && name.size() <= 32 && name.front() != '-' && name.front() != '_';
    out.push_back(Found{at, end - at, valid ? name : std::string_view()});
  }
  return out;
}

bool has_placeholder(std::string_view text) { return text.find(kPlaceholderPrefix) != std::string_view::npos; }

// The path as a server will see it, for matching path rules: percent-encoded unreserved
// characters decoded (RFC 3986 section 6.2.2.2: "/re%70os" is "/repos"). nullopt when servers may
// disagree about what it names: any other percent-encoding, a backslash, ';' (matrix parameters:
// "/admin;x" and "/repos/..;/admin" are "/admin" to some servers), '#', an empty, "." or ".."
// segment, or one ending in '.'. Such a path is refused under path rules rather than guessed at.
std::optional<std::string> normalised_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\\' || c == ';' || c == '#') return std::nullopt;
    if (c == '%') {
      if (i + 2 >= path.size()) return std::nullopt;
      const int hi = hex_value(path[i + 1]), lo = hex_value(path[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const char decoded = static_cast<char>(hi * 16 + lo);
      if (std::isalnum(static_cast<unsigned char>(decoded)) || decoded == '-' || decoded == '.' || decoded == '_' ||
          decoded == '~') {
        out.push_back(decoded);
        i += 2;
        continue;
      }
      return std::nullopt;  // an encoded reserved or non-ASCII character
    }
    out.push_back(c);
  }
  if (out.empty() || out.front() != '/') return std::nullopt;
  // Segments: none empty (except a trailing slash), none "." or "..".
  std::size_t start = 1;
  while (start <= out.size()) {
    const std::size_t slash = out.find('/', start);
    const std::size_t end = slash == std::string::npos ? out.size() : slash;
    const std::string_view segment(out.data() + start, end - start);
    if (segment == "." || segment == ".." || (!segment.empty() && segment.back() == '.')) return std::nullopt;
    if (segment.empty() && slash != std::string::npos) return std::nullopt;  // "//"
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

// Fields a proxy does not pass on (RFC 9110 section 7.6.1), plus Expect (the 100-continue is
// answered here) and the proxy's own.
bool hop_by_hop(std::string_view name, const http1::Head& head) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
                             "te", "trailer", "upgrade", "expect", "x-tokfence-caller"})
    if (iequals(name, h)) return true;
  return head.has_token("connection", name);
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// Appends `text` with each placeholder replaced by its secret (all checked before).
void append_substituted(WipingString& out, std::string_view text, const SecretBook& secrets) {
  std::size_t from = 0;
  for (const auto& f : placeholders_in(text)) {
    out.append(text.substr(from, f.at - from));
    out.append(secrets.find(f.name)->second.value.reveal());
    from = f.at + f.length;
  }
  out.append(text.substr(from));
}

constexpr std::string_view kBase64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// HTTP Basic credentials ("Basic " + base64 of "user:password", RFC 7617) whose decoded text holds
// a placeholder: git and most HTTP clients send a token as the password this way, so the
// placeholder arrives encoded. nullopt for anything else (not Basic, not canonical base64, no
// placeholder): such a value is left as it is.
std::optional<std::string> basic_credentials_with_placeholder(std::string_view value) {
  if (value.size() < 6 || !iequals(value.substr(0, 6), "basic ")) return std::nullopt;
  std::string_view token = value.substr(6);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == '=') token.remove_suffix(1);
  if (token.empty() || token.size() % 4 == 1) return std::nullopt;
  std::string decoded;
  unsigned bits = 0, acc = 0;
  for (char c : token) {
    const auto at = kBase64Alphabet.find(c);
    if (at == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(at);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      decoded.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (!has_placeholder(decoded)) return std::nullopt;
  return decoded;
}

// Appends standard base64 of `bytes`, padded (wiping: `bytes` holds a secret).
void append_base64(WipingString& out, std::string_view bytes) {
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(kBase64Alphabet[(v >> (6 * k)) & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64Alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

// The request line against [egress.domains."<host>"]: its target's form, the method and path rules.
std::optional<Refusal> refuse_by_rules(const http1::RequestHead& head, const std::string& where,
                                       const egress::DomainRules* rules) {
  const std::string method(head.method);
  if (head.target.empty() || head.target.front() != '/')
    return Refusal{400, "bad-target",
                   "egress: " + where + ": inside a tunnel a request names its path (origin form, \"/...\")"};
  const std::string_view path = head.target.substr(0, head.target.find('?'));
  if (rules && !rules->methods.empty() &&
      std::find(rules->methods.begin(), rules->methods.end(), method) == rules->methods.end())
    return Refusal{403, "methods",
                   "egress: " + method + " to " + where + " is not allowed (methods: " + join(rules->methods) +
                       " in [egress.domains.\"" + rules->host + "\"])"};
  if (rules && (!rules->allow_paths.empty() || !rules->deny_paths.empty())) {
    auto normal = normalised_path(path);
    if (!normal)
      return Refusal{403, "ambiguous-path",
                     "egress: " + where + ": the path has an encoded '/', '\\' or '%', a backslash, an empty, \".\" "
                     "or \"..\" segment; under path rules such paths are refused"};
    std::string why;
    if (!egress::path_allowed(*rules, *normal, why))
      return Refusal{403, why,
                     "egress: " + method + " " + *normal + " on " + where + " is refused by " + why +
                         " in [egress.domains.\"" + rules->host + "\"]"};
  }
  return std::nullopt;
}

// The fields that decide where the request goes and how it is framed, which tokfence and the host
// must read alike: one Host, naming the tunnel's host; no Connection naming a framing or routing
// field; under method or path rules no override header; no upgrade.
std::optional<Refusal> refuse_by_fields(const http1::RequestHead& head, const egress::Destination& to,
                                        const std::string& where, const egress::DomainRules* rules) {
  // The request must be for the host the tunnel goes to.
  if (const http1::Header* host = head.find("host")) {
    auto named = egress::parse_authority(host->value, to.port);
    if (!named || named->host != to.host || named->port != to.port)
      return Refusal{403, "host-mismatch",
                     "egress: the tunnel goes to " + where + " but the request's Host names another host"};
  } else if (head.version_minor == 1) {
    return Refusal{400, "no-host", "egress: " + where + ": an HTTP/1.1 request needs a Host field"};
  }
  int hosts = 0;
  for (const auto& f : head.headers) hosts += iequals(f.name, "host") ? 1 : 0;
  if (hosts > 1) return Refusal{400, "duplicate-host", "egress: " + where + ": a request has one Host field (RFC 9112 section 3.2)"};
  // A Connection field naming a framing or routing field would have it dropped as hop-by-hop,
  // and the host would frame or route the request differently from tokfence.
  if (head.has_token("connection", "content-length") || head.has_token("connection", "transfer-encoding") ||
      head.has_token("connection", "host"))
    return Refusal{400, "bad-connection-field",
                   "egress: " + where + ": Connection may not name Content-Length, Transfer-Encoding or Host"};
  // Under method or path rules, the headers some servers take as the "real" method or path.
  if (rules && rules->has_l7_rules())
    for (const auto& f : head.headers)
      if (is_override_header_name(f.name))
        return Refusal{403, "override-header",
                       "egress: " + where + ": " + std::string(f.name) + " is refused where methods or paths are ruled"};
  if (head.find("upgrade"))
    return Refusal{403, "upgrade",
                   "egress: " + where + ": protocol upgrades (websockets) are not supported on inspected hosts"};
  return std::nullopt;
}

// Every placeholder in `text` must name a secret this fence was given (`granted`) that is bound to
// `to`; each is counted in `placed`, the secrets used are noted in `out` and their sizes added to
// `size` (the rewritten head's). A name not granted gets the same answer as a name that does not
// exist, so an agent cannot find out which secrets the user keeps by guessing.
std::optional<Refusal> refuse_placeholders(std::string_view text, const egress::Destination& to,
                                           const std::string& where, const SecretBook& secrets,
                                           const std::vector<std::string>& granted, Rewritten& out,
                                           std::size_t& size, int& placed) {
  for (const auto& f : placeholders_in(text)) {
    if (f.name.empty())
      return Refusal{403, "bad-placeholder",
                     "egress: a placeholder is \"tokfence-secret:\" followed by a vault name ([a-z0-9][a-z0-9_-]{0,31})"};
    auto it = secrets.find(f.name);
    if (it == secrets.end() || std::find(granted.begin(), granted.end(), f.name) == granted.end())
      return Refusal{403, "secret-unknown",
                     "egress: placeholder tokfence-secret:" + std::string(f.name) +
                         ": no secret of that name was given to this agent (start it with --secret VAR=" +
                         std::string(f.name) + "; the secret must be in the vault, bound to a host)"};
    if (!bound_to(it->second, to))
      return Refusal{403, "secret-not-bound",
                     "egress: secret '" + std::string(f.name) + "' may only be sent to " + join(it->second.hosts) +
                         " (port 443), not to " + where + ": refused"};
    ++placed;
    size += it->second.value.size();
    if (std::find(out.secrets_used.begin(), out.secrets_used.end(), f.name) == out.secrets_used.end())
      out.secrets_used.emplace_back(f.name);
  }
  return std::nullopt;
}

Refusal misplaced(const std::string& where, std::string_view what) {
  return Refusal{403, "placeholder-position",
                 "egress: " + where + ": " + std::string(what) +
                     "; a secret goes only where a host reads its credential: in a credential field (Authorization, "
                     "X-Api-Key, ...), or in the path when its binding says so (vault add --in path), once per request"};
}

// The position is part of the binding: a placeholder in the path names a secret bound for the
// path (`vault add NAME --host H --in path`: a Telegram bot token, /bot<token>/...). A secret bound
// for credential fields only is never written into a path: a host that names files or records
// after the path (GitLab, GitHub contents) would keep it as data on whatever account the request
// authenticates as, and which field a host authenticates with cannot be told from field names
// (review 13a P1: PRIVATE-TOKEN, X-Shopify-Access-Token, a form body's access_token=).
std::optional<Refusal> refuse_path_position(std::string_view path, const std::string& where,
                                            const SecretBook& secrets) {
  const auto found = placeholders_in(path);
  // An encoded '?' or '#' (or '%', which decodes to one on a second pass) is path text here, but a
  // front end that decodes before it splits reads what follows as the query or fragment, where a
  // host keeps message text and logs (review 14a O3): no placeholder in a path that has one.
  if (!found.empty()) {
    for (std::size_t at = path.find('%'); at != std::string_view::npos; at = path.find('%', at + 1)) {
      const std::string_view escape = path.substr(at + 1, 2);
      if (escape == "3F" || escape == "3f" || escape == "23" || escape == "25")
        return misplaced(where, "an encoded '?', '#' or '%' in a path that carries a placeholder (a server that decodes "
                                "the path before splitting it would read the secret as query or fragment)");
    }
  }
  for (const auto& f : found) {
    auto it = secrets.find(f.name);  // known, granted and bound: refuse_placeholders checked
    if (it == secrets.end() || it->second.in_path) continue;
    const std::string name(f.name);
    std::string hosts;  // the rotation that binds it for the path keeps every host
    for (const auto& h : it->second.hosts) hosts += " --host " + h;
    return Refusal{403, "placeholder-position",
                   "egress: " + where + ": secret '" + name +
                       "' is bound for credential fields only, not the URL path: send it in a credential field "
                       "(Authorization, X-Api-Key, ...); if this host reads its token in the path (as Telegram's "
                       "/bot<token>/ does), bind it for the path: tokfence vault rotate " + name + " -" + hosts +
                       " --in path"};
  }
  return std::nullopt;
}

// Inside decoded Basic credentials the placeholder is the whole password, after the first ':'
// ("user:tokfence-secret:NAME", as git sends a token). As the user name beside a password of the
// agent's own ("tokfence-secret:NAME:own", whose first ':' is the placeholder's) the secret would
// be a login name on the agent's account, which hosts keep in audit logs and failed-login mail
// (review 13a O2). The user name, before the first ':', can hold no placeholder (it has no ':').
std::optional<Refusal> refuse_basic_position(std::string_view decoded, const std::string& where) {
  const std::size_t colon = decoded.find(':');
  const std::string_view password = colon == std::string_view::npos ? std::string_view() : decoded.substr(colon + 1);
  const auto found = placeholders_in(password);
  if (found.size() != 1 || found.front().at != 0 || found.front().length != password.size())
    return misplaced(where, "in Basic credentials a placeholder is the whole password (user:tokfence-secret:NAME), "
                            "never the user name or part of a password");
  return std::nullopt;
}

// Where placeholders may stand (docs/EGRESS.md, "Where a secret goes"): in the value of a
// credential field, in the path for a secret bound for it (refuse_path_position), and once per
// request. Anywhere else a host that keeps or passes on
// what it is sent (a webhook URL or message text in the query, an audit-log reason in a header)
// would hand the real secret to whoever reads that later; and a second copy in one request could
// be data while the first is the credential, as it is beside a credential the agent sends of its
// own. Each placeholder is also checked as above.
std::optional<Refusal> refuse_placeholder_positions(const http1::RequestHead& head, const egress::Destination& to,
                                                    const std::string& where, const SecretBook& secrets,
                                                    const std::vector<std::string>& granted, Rewritten& out,
                                                    std::size_t& size) {
  int placed = 0;
  std::string own_credential;  // a credential the agent sends of its own: a field name, "the query"
  const std::size_t q = head.target.find('?');
  if (q != std::string_view::npos) {
    const std::string_view query = head.target.substr(q + 1);
    if (has_placeholder(query)) return misplaced(where, "a placeholder in the query string");
    if (has_query_credential(query)) own_credential = "a credential parameter in the query";
  }
  if (auto refused = refuse_placeholders(head.target.substr(0, q), to, where, secrets, granted, out, size, placed))
    return refused;
  if (auto refused = refuse_path_position(head.target.substr(0, q), where, secrets)) return refused;
  for (const auto& f : head.headers) {
    if (hop_by_hop(f.name, head)) continue;  // dropped: nothing of it goes upstream
    size += f.name.size() + f.value.size() + 4;
    if (!has_placeholder(f.value)) {
      if (!is_credential_header_name(f.name)) continue;
      if (auto basic = basic_credentials_with_placeholder(f.value)) {
        if (auto refused = refuse_basic_position(*basic, where)) return refused;
        const std::size_t before = size;
        if (auto refused = refuse_placeholders(*basic, to, where, secrets, granted, out, size, placed)) return refused;
        size += 2 * (size - before) + basic->size() + 16;  // base64 of the substituted text
        continue;
      }
      if (own_credential.empty() && !f.value.empty()) own_credential = std::string(f.name.substr(0, 64));
      continue;
    }
    if (!is_credential_header_name(f.name))
      return misplaced(where, "a placeholder in " + std::string(f.name.substr(0, 64)) + ", not a credential field");
    if (auto refused = refuse_placeholders(f.value, to, where, secrets, granted, out, size, placed)) return refused;
  }
  if (placed > 1) return misplaced(where, "more than one placeholder in one request");
  // Beside a credential of the agent's own, a placeholder is data, not the credential: a file
  // named after the secret in a repository the agent's own token writes to (review 12a E1).
  if (placed == 1 && !own_credential.empty())
    return misplaced(where, "a placeholder beside a credential of the agent's own (" + own_credential +
                                "): the secret would be sent as data on the agent's account");
  return std::nullopt;
}

// The head as it goes upstream, placeholders replaced (all checked), into out.head sized `size`.
void write_upstream_head(const http1::RequestHead& head, const egress::Destination& to, const std::string& where,
                         const SecretBook& secrets, std::size_t size, Rewritten& out) {
  const bool watched = !out.watch_for.empty();
  // Sized once: growing by reallocation would leave unwiped copies of the secret behind (the
  // allocator wipes what it frees, but only what it is handed back).
  out.head.reserve(size + to.host.size() + 32);
  out.head.append(head.method).append(" ");
  append_substituted(out.head, head.target, secrets);
  out.head.append(" HTTP/1.1\r\n");
  if (!head.find("host")) out.head.append("Host: ").append(to.port == 443 ? to.host : where).append("\r\n");
  for (const auto& f : head.headers) {
    if (hop_by_hop(f.name, head)) continue;
    if (watched && iequals(f.name, "accept-encoding")) continue;
    out.head.append(f.name).append(": ");
    if (auto basic = is_credential_header_name(f.name) ? basic_credentials_with_placeholder(f.value) : std::nullopt) {
      WipingString plain;
      append_substituted(plain, *basic, secrets);
      out.head.append("Basic ");
      append_base64(out.head, plain);
    } else {
      append_substituted(out.head, f.value, secrets);
    }
    out.head.append("\r\n");
  }
  out.head.append("Connection: close\r\n\r\n");
}

}  // namespace

std::variant<Rewritten, Refusal> rewrite_request(const http1::RequestHead& head, const egress::Destination& to,
                                                 const egress::DomainRules* rules, const SecretBook& secrets,
                                                 const std::vector<std::string>& granted) {
  const std::string where = to.text();
  if (auto refused = refuse_by_rules(head, where, rules)) return *refused;
  if (auto refused = refuse_by_fields(head, to, where, rules)) return *refused;
  Rewritten out;
  std::size_t size = head.method.size() + head.target.size() + 64;
  if (auto refused = refuse_placeholder_positions(head, to, where, secrets, granted, out, size)) return *refused;
  out.watch_for = secrets_bound_to(secrets, to);
  write_upstream_head(head, to, where, secrets, size, out);
  return out;
}

std::optional<Refusal> refuse_placeholder_in_plain_http(const http1::RequestHead& head) {
  bool found = has_placeholder(head.target);
  for (const auto& f : head.headers) found = found || has_placeholder(f.value);
  if (!found) return std::nullopt;
  return Refusal{403, "secret-over-plain-http",
                 "egress: this http:// request carries a tokfence-secret placeholder; secrets are only sent over "
                 "https to the hosts they are bound to"};
}

std::string rewrite_response_head(const http1::ResponseHead& head) {
  std::string out;
  out.reserve(head.size + 32);
  out.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ").append(head.reason).append("\r\n");
  for (const auto& f : head.headers) {
    if (iequals(f.name, "connection") || iequals(f.name, "keep-alive") || iequals(f.name, "proxy-connection")) continue;
    // Only tokfence speaks X-Tokfence-*: a host cannot pose as a refusal.
    if (f.name.size() >= 11 && iequals(f.name.substr(0, 11), "x-tokfence-")) continue;
    // Framing fields stay whatever Connection names: tokfence framed the body by them.
    const bool framing = iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding");
    if (!framing && head.has_token("connection", f.name)) continue;
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  }
  out.append("Connection: close\r\n\r\n");
  return out;
}

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Lower-case hex digits: the watch compares lower case.
constexpr char kHexDigits[] = "0123456789abcdef";

void append_lower(WipingString& out, std::string_view text) {
  for (char c : text) out.push_back(lower(c));
}

// "%3a" for ':'; unreserved characters as they are.
WipingString percent_encoded(std::string_view secret) {
  WipingString out;
  out.reserve(secret.size() * 3);
  for (unsigned char c : secret) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(lower(static_cast<char>(c)));
    } else {
      out.push_back('%');
      out.push_back(kHexDigits[c >> 4]);
      out.push_back(kHexDigits[c & 15]);
    }
  }
  return out;
}

// The part of the secret's base64 that does not depend on the bytes around it, for the secret
// starting at each of the three offsets within a 3-byte group; `url` for the URL-safe alphabet.
std::vector<WipingString> base64_cores(std::string_view secret, bool url) {
  const std::string_view alphabet = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                        : kBase64Alphabet;
  std::vector<WipingString> out;
  for (std::size_t offset = 0; offset < 3; ++offset) {
    WipingString bytes(offset, '\0');
    bytes.append(secret);
    const std::size_t groups = bytes.size() / 3;  // whole groups only: the last partial one depends on what follows
    WipingString text;
    text.reserve(groups * 4);
    for (std::size_t g = offset ? 1 : 0; g < groups; ++g) {  // the first group holds bytes before the secret
      const auto* b = reinterpret_cast<const unsigned char*>(bytes.data() + g * 3);
      const unsigned v = (b[0] << 16) | (b[1] << 8) | b[2];
      for (int k = 3; k >= 0; --k) text.push_back(lower(alphabet[(v >> (6 * k)) & 63]));
    }
    if (text.size() >= 16) out.push_back(std::move(text));  // shorter cores would match by chance
  }
  return out;
}

}  // namespace

SecretWatch::SecretWatch(std::vector<std::string_view> secrets) {
  for (auto secret : secrets) {
    if (secret.empty()) continue;
    WipingString raw;
    append_lower(raw, secret);
    patterns_.push_back(std::move(raw));
    if (auto encoded = percent_encoded(secret); encoded != patterns_.back()) patterns_.push_back(std::move(encoded));
    if (secret.find('/') != std::string_view::npos) {  // JSON with '/' written "\/" (PHP's default)
      WipingString json;
      for (char c : secret) {
        if (c == '/') json.push_back('\\');
        json.push_back(lower(c));
      }
      patterns_.push_back(std::move(json));
    }
    {  // hex, two digits a byte
      WipingString text;
      for (unsigned char c : secret) {
        text.push_back(kHexDigits[c >> 4]);
        text.push_back(kHexDigits[c & 15]);
      }
      patterns_.push_back(std::move(text));
    }
    for (bool url : {false, true})
      for (auto& core : base64_cores(secret, url))
        if (std::find(patterns_.begin(), patterns_.end(), core) == patterns_.end()) patterns_.push_back(std::move(core));
  }
  for (const auto& p : patterns_) keep_ = std::max(keep_, p.size() - 1);
  tail_.reserve(2 * keep_ + 1);
}

SecretWatch::~SecretWatch() = default;  // the allocator wipes tail_, piece_ and the patterns

bool SecretWatch::feed(std::string_view piece) {
  if (patterns_.empty()) return false;
  piece_.clear();
  piece_.reserve(piece.size());
  append_lower(piece_, piece);
  // A match across the boundary lies in the kept tail plus the piece's first keep_ bytes.
  tail_.append(std::string_view(piece_).substr(0, std::min(piece_.size(), keep_)));
  for (const auto& p : patterns_)
    if (std::string_view(tail_).find(p) != std::string_view::npos || std::string_view(piece_).find(p) != std::string_view::npos)
      return true;
  // Keep the last keep_ bytes of everything seen.
  if (piece_.size() >= keep_) {
    tail_.assign(std::string_view(piece_).substr(piece_.size() - keep_));
  } else if (tail_.size() > keep_) {
    tail_.erase(0, tail_.size() - keep_);
  }
  return false;
}

std::optional<Refusal> refuse_unwatchable(const http1::ResponseHead& head) {
  for (const auto& f : head.headers) {
    bool bad = false;
    if (iequals(f.name, "content-encoding"))
      http1::for_each_list_element(f.value, [&](std::string_view c) { bad = bad || !iequals(c, "identity"); });
    if (iequals(f.name, "transfer-encoding"))
      http1::for_each_list_element(f.value, [&](std::string_view c) { bad = bad || !iequals(c, "chunked"); });
    if (bad)
      return Refusal{502, "encoded-response",
                     "egress: a host with a bound secret answered with an encoded body (" + std::string(f.name) + ": " +
                         std::string(f.value.substr(0, 64)) + "), which cannot be checked for the secret"};
  }
  return std::nullopt;
}

}  // namespace tokfence::proxy::inspect
