#include "core/providers.hpp"

#include <algorithm>
#include <cctype>

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
  return ProviderSpec{std::move(name), std::move(upstream), AuthScheme::bearer, ApiStyle::openai, {}, "/v1", true};
}
}  // namespace

const std::vector<ProviderSpec>& builtin_providers() {
  // Upstreams are chosen so that every OpenAI-compatible provider is reached by the client at
  // http://127.0.0.1:9471/<name>/v1, whatever its real base path.
  static const std::vector<ProviderSpec> table = [] {
    std::vector<ProviderSpec> t{
        ProviderSpec{"anthropic", "https://api.anthropic.com", AuthScheme::x_api_key, ApiStyle::anthropic,
                     {{"anthropic-version", "2023-06-01"}}, "", true},
        openai_style("cerebras", "https://api.cerebras.ai"),
        openai_style("deepseek", "https://api.deepseek.com"),
        openai_style("fireworks", "https://api.fireworks.ai/inference"),
        ProviderSpec{"google", "https://generativelanguage.googleapis.com", AuthScheme::x_goog_api_key,
                     ApiStyle::gemini, {}, "/v1beta", true},
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

}  // namespace tokfence
