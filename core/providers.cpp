#include "core/providers.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

namespace tokfence {

std::string_view to_string(AuthScheme scheme) {
  switch (scheme) {
    case AuthScheme::bearer: return "bearer";
    case AuthScheme::x_api_key: return "x-api-key";
    case AuthScheme::x_goog_api_key: return "x-goog-api-key";
  }
  return "bearer";
}

std::string_view to_string(ApiStyle style) {
  switch (style) {
    case ApiStyle::openai: return "openai";
    case ApiStyle::anthropic: return "anthropic";
    case ApiStyle::gemini: return "gemini";
  }
  return "openai";
}

std::optional<AuthScheme> parse_auth_scheme(std::string_view text) {
  if (text == "bearer") return AuthScheme::bearer;
  if (text == "x-api-key") return AuthScheme::x_api_key;
  if (text == "x-goog-api-key") return AuthScheme::x_goog_api_key;
  return std::nullopt;
}

std::optional<ApiStyle> parse_api_style(std::string_view text) {
  if (text == "openai") return ApiStyle::openai;
  if (text == "anthropic") return ApiStyle::anthropic;
  if (text == "gemini") return ApiStyle::gemini;
  return std::nullopt;
}

namespace {
ProviderSpec openai_style(std::string name, std::string upstream) {
  return ProviderSpec{std::move(name), std::move(upstream), AuthScheme::bearer, ApiStyle::openai, {}, "/v1", true, {}, {}, false};
}
}  // namespace

const std::vector<ProviderSpec>& builtin_providers() {
  // Upstreams are chosen so that every OpenAI-compatible provider is reached by the client at
  // http://127.0.0.1:9471/<name>/v1, whatever its real base path.
  static const std::vector<ProviderSpec> table = [] {
    std::vector<ProviderSpec> t{
        ProviderSpec{"anthropic", "https://api.anthropic.com", AuthScheme::x_api_key, ApiStyle::anthropic,
                     {{"anthropic-version", "2023-06-01"}}, "", true, {}, {}, false},
        openai_style("cerebras", "https://api.cerebras.ai"),
        openai_style("deepseek", "https://api.deepseek.com"),
        openai_style("fireworks", "https://api.fireworks.ai/inference"),
        ProviderSpec{"google", "https://generativelanguage.googleapis.com", AuthScheme::x_goog_api_key,
                     ApiStyle::gemini, {}, "/v1beta", true, {}, {}, false},
        openai_style("groq", "https://api.groq.com/openai"),
        openai_style("mistral", "https://api.mistral.ai"),
        openai_style("openai", "https://api.openai.com"),
        openai_style("openrouter", "https://openrouter.ai/api"),
        openai_style("together", "https://api.together.xyz"),
        openai_style("xai", "https://api.x.ai"),
    };
    std::sort(t.begin(), t.end(), [](auto& a, auto& b) { return a.name < b.name; });
    return t;
  }();
  return table;
}

const std::vector<std::string>& default_methods() {
  static const std::vector<std::string> methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
  return methods;
}

namespace {

char fold_header_char(char c) {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  return c == '_' ? '-' : c;
}

// Headers that carry a credential in some SDK or gateway convention.
// X-Tokfence-Capability is tokfence's own (an ImmuneFence token): never forwarded either.
constexpr std::array<std::string_view, 13> credential_header_names = {
    "authorization", "proxy-authorization", "x-api-key",    "api-key",     "x-goog-api-key",
    "x-auth-token",  "x-access-token",      "x-goog-user-project-key", "cookie", "openai-api-key",
    "anthropic-api-key", "x-key", "x-tokfence-capability"};

// Fields the proxy writes itself or that only describe one connection: a forced value for them
// would break the framing or fight the proxy.
constexpr std::array<std::string_view, 14> proxy_owned_header_names = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection", "te",
    "trailer", "upgrade", "expect", "accept-encoding", "x-tokfence-caller", "proxy-authenticate", "content-encoding"};

bool is_tchar(unsigned char c) {
  return std::isalnum(c) || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

}  // namespace

bool header_names_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (fold_header_char(a[i]) != fold_header_char(b[i])) return false;
  return true;
}

namespace {

// Every name header_roles knows, folded (lower case, '-' for '_'), bucketed by length: a field's
// name is folded once and compared with the few names of its length, instead of header_names_equal
// against each list in turn (thirty-odd calls per field on the request path before).
class HeaderRoleTable {
 public:
  static constexpr std::size_t kLongest = 32;
  HeaderRoleTable() {
    for (auto n : credential_header_names) add(n, header_role::credential);
    for (auto n : {"x-http-method-override", "x-http-method", "x-method-override", "x-original-method",
                   "x-original-url", "x-rewrite-url"})
      add(n, header_role::method_override);
    // RFC 9110 section 7.6.1, plus Proxy-Connection (still sent by old clients).
    for (auto n : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
                   "proxy-authenticate"})
      add(n, header_role::hop_by_hop);
    for (auto n : proxy_owned_header_names) add(n, header_role::proxy_owned);
    add("host", header_role::host);
    add("content-length", header_role::content_length);
    add("content-encoding", header_role::content_encoding);
    add("content-type", header_role::content_type);
    add("expect", header_role::expect);
    add("accept-encoding", header_role::accept_encoding);
    add("x-tokfence-caller", header_role::tokfence_caller);
  }
  std::uint32_t roles(std::string_view name) const {
    if (name.empty() || name.size() > kLongest) return 0;
    char folded[kLongest];
    for (std::size_t i = 0; i < name.size(); ++i) folded[i] = fold_header_char(name[i]);
    const std::string_view f(folded, name.size());
    for (const auto& [known, roles] : by_size_[name.size()])
      if (known == f) return roles;
    return 0;
  }

 private:
  void add(std::string_view name, std::uint32_t role) {
    auto& bucket = by_size_.at(name.size());
    for (auto& [known, roles] : bucket)
      if (known == name) {
        roles |= role;
        return;
      }
    bucket.push_back({name, role});
  }
  std::array<std::vector<std::pair<std::string_view, std::uint32_t>>, kLongest + 1> by_size_;
};

}  // namespace

std::uint32_t header_roles(std::string_view name) {
  static const HeaderRoleTable table;
  return table.roles(name);
}

bool is_credential_header_name(std::string_view name) { return (header_roles(name) & header_role::credential) != 0; }

bool is_override_header_name(std::string_view name) { return (header_roles(name) & header_role::method_override) != 0; }

std::string_view forced_header_problem(std::string_view name, std::string_view value) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); }))
    return "is not a valid header name";
  const std::uint32_t roles = header_roles(name);
  if (roles & header_role::credential) return "carries a credential: keys come from the vault";
  if (roles & header_role::proxy_owned) return "is set by the proxy itself";
  for (unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return "has a control character (CR, LF, ...) in its value";
  return "";
}

std::string url_host(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  std::string_view authority = url.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.starts_with("[")) {
    auto close = authority.find(']');
    return close == std::string_view::npos ? "" : std::string(authority.substr(1, close - 1));
  }
  return std::string(authority.substr(0, authority.find(':')));
}

bool is_loopback_host(std::string_view host) {
  std::string h(host);
  for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (h == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

std::string insecure_upstream_problem(const ProviderSpec& spec) {
  if (spec.allow_insecure || !spec.upstream.starts_with("http://")) return "";
  std::string host = url_host(spec.upstream);
  if (is_loopback_host(host)) return "";
  return "upstream " + spec.upstream + " is plain http:// to '" + host +
         "', not loopback: the key would travel in clear text; use https://, or set allow_insecure = true "
         "in [providers." + spec.name + "] if the network to it is trusted";
}

std::vector<std::string> key_env_vars(std::string_view provider) {
  if (provider == "openai") return {"OPENAI_API_KEY", "CODEX_API_KEY"};
  if (provider == "anthropic") return {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_API_KEY"};
  if (provider == "google") return {"GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY"};
  if (provider == "xai") return {"XAI_API_KEY", "GROK_API_KEY"};
  if (provider == "together") return {"TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"};
  std::string upper;
  for (char c : provider) upper += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return {upper + "_API_KEY"};
}

std::vector<std::string> agent_endpoints(const ProviderSpec& spec) {
  // Gemini's clients pick their API version (v1beta, v1, v1alpha) whatever the configured base.
  const std::string base = spec.style == ApiStyle::gemini ? "/v1*" : spec.client_base_suffix;
  // HEAD of anything: no body, no cost (claude sends HEAD <base> before its first request).
  std::vector<std::string> out = {"HEAD *"};
  auto add = [&](std::string_view method, std::string_view path) { out.push_back(std::string(method) + " " + base + std::string(path)); };
  switch (spec.style) {
    case ApiStyle::openai:
      for (auto path : {"/responses", "/responses/input_tokens", "/chat/completions", "/completions", "/embeddings",
                        "/moderations"})
        add("POST", path);
      add("GET", "/models");
      add("GET", "/models/*");
      break;
    case ApiStyle::anthropic:
      for (auto path : {"/v1/messages", "/v1/messages/count_tokens", "/v1/complete"}) add("POST", path);
      add("GET", "/v1/models");
      add("GET", "/v1/models/*");
      break;
    case ApiStyle::gemini:
      for (auto action : {":generateContent", ":streamGenerateContent", ":countTokens", ":embedContent",
                          ":batchEmbedContents"})
        add("POST", std::string("/models/*") + action);
      add("GET", "/models");
      add("GET", "/models/*");
      break;
  }
  return out;
}

}  // namespace tokfence
