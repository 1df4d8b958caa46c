#pragma once
// Provider specs: where a provider's API lives and how it wants its key. Built-ins below; the
// config file's [providers.<name>] overrides or adds (see config.hpp).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tokfence {

enum class AuthScheme {
  bearer,         // Authorization: Bearer <key>
  x_api_key,      // x-api-key: <key> (Anthropic)
  x_goog_api_key  // x-goog-api-key: <key> (Gemini)
};

// Which wire format the provider speaks; decides usage parsing and how clients are configured.
enum class ApiStyle { openai, anthropic, gemini };

struct ProviderSpec {
  std::string name;
  std::string upstream;  // scheme://host[:port][/base-path], no trailing slash
  AuthScheme auth = AuthScheme::bearer;
  ApiStyle style = ApiStyle::openai;
  // Sent when the client did not send the header itself (e.g. anthropic-version).
  std::map<std::string, std::string> default_headers;
  // The path a client appends after /<provider> to reach the API root ("/v1" for OpenAI-style
  // providers, "" for Anthropic whose SDKs add /v1 themselves, "/v1beta" for Gemini).
  std::string client_base_suffix;
  bool builtin = true;
  // Methods forwarded upstream; empty = default_methods(). Only names from default_methods()
  // may be listed (config.cpp refuses the rest): TRACE, CONNECT and friends never leave.
  std::vector<std::string> methods;
  // Always sent, replacing whatever the client sent under that name (e.g. OpenAI-Organization,
  // so an agent cannot bill another organization or project).
  std::map<std::string, std::string> forced_headers;
  // A plain http:// upstream that is not loopback is refused unless set: the key would cross the
  // network in clear text.
  bool allow_insecure = false;
};

// GET, HEAD, POST, PUT, PATCH, DELETE: what the provider APIs use.
const std::vector<std::string>& default_methods();

// The requests a coding or chat agent makes to a provider of this spec, as method-qualified
// endpoint globs on the path after /<provider> (ImmuneFence session limits: "POST /v1/responses"):
// generating (Responses, Chat Completions, Completions, Messages, generateContent and its
// streaming twin), counting tokens, embeddings, moderations, and reading the model list. Left out,
// so a fenced agent's token cannot reach them with the user's key: the account's data and
// management (files, uploads, batches, fine-tuning, stored completions and responses, vector
// stores, assistants, admin), which no agent tokfence fences needs.
std::vector<std::string> agent_endpoints(const ProviderSpec& spec);

// Header names compared the way some servers do: ASCII case-insensitive and '_' equal to '-'
// (CGI/WSGI turn both X-Api-Key and X_Api_Key into HTTP_X_API_KEY).
bool header_names_equal(std::string_view a, std::string_view b);

// What a header field name is to the proxy, as bits, each by header_names_equal: one lookup per
// field instead of one comparison per known name.
namespace header_role {
inline constexpr std::uint32_t credential = 1u << 0;        // is_credential_header_name
inline constexpr std::uint32_t method_override = 1u << 1;   // is_override_header_name
inline constexpr std::uint32_t hop_by_hop = 1u << 2;        // RFC 9110 7.6.1 + Proxy-Connection
inline constexpr std::uint32_t proxy_owned = 1u << 3;       // written by the proxy: never forced
inline constexpr std::uint32_t host = 1u << 4;
inline constexpr std::uint32_t content_length = 1u << 5;
inline constexpr std::uint32_t content_encoding = 1u << 6;
inline constexpr std::uint32_t content_type = 1u << 7;
inline constexpr std::uint32_t expect = 1u << 8;
inline constexpr std::uint32_t accept_encoding = 1u << 9;
inline constexpr std::uint32_t tokfence_caller = 1u << 10;
}  // namespace header_role
std::uint32_t header_roles(std::string_view name);

// Whether a header of this name carries a credential in some SDK or gateway convention
// (Authorization, x-api-key, Cookie, ...), by header_names_equal.
bool is_credential_header_name(std::string_view name);

// X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, X-Original-Method, X-Original-URL,
// X-Rewrite-URL, by header_names_equal: fields an upstream may take as the request's "real"
// method or path (Google's APIs honour the method override on a POST; IIS/Symfony-style gateways
// the URL ones). The model proxy drops them (a provider's `methods` and a session's endpoint
// rules judge the request line); the inspected egress path refuses them under method or path rules.
bool is_override_header_name(std::string_view name);

// Whether a forced header may have this name: an HTTP token that is not a credential, a
// hop-by-hop field, or one the proxy sets itself (Host, Content-Length, ...). "" when it may,
// else why not.
std::string_view forced_header_problem(std::string_view name, std::string_view value);

// The host of an http(s) URL (brackets removed from IPv6 literals), "" when there is none.
std::string url_host(std::string_view url);

// localhost, 127.0.0.0/8, ::1 (also IPv4-mapped): traffic to it never leaves the machine.
bool is_loopback_host(std::string_view host);

// Why `spec`'s upstream may not carry its key ("" when it may): plain http:// to a host that is
// not loopback, without allow_insecure.
std::string insecure_upstream_problem(const ProviderSpec& spec);

std::string_view to_string(AuthScheme scheme);
std::string_view to_string(ApiStyle style);
std::optional<AuthScheme> parse_auth_scheme(std::string_view text);  // bearer|x-api-key|x-goog-api-key
std::optional<ApiStyle> parse_api_style(std::string_view text);      // openai|anthropic|gemini

// The built-in table, sorted by name.
const std::vector<ProviderSpec>& builtin_providers();

// Environment variables SDKs read for each provider's key. Used to strip real keys from child
// environments and to print dummy keys in `tokfence env`.
std::vector<std::string> key_env_vars(std::string_view provider);

}  // namespace tokfence
