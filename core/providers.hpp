#pragma once
// Provider specs: where a provider's API lives and how it wants its key. Built-ins below; the
// config file's [providers.<name>] overrides or adds (see config.hpp).
#include <map>
#include <optional>
#include <string>
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
};

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
