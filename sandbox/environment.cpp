#include "sandbox/environment.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "core/providers.hpp"

extern char** environ;

namespace tokfence::sandbox {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

constexpr std::array kAllowed = {
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION",
    "LANG", "LANGUAGE", "TZ", "EDITOR", "VISUAL", "PAGER", "LESS", "NO_COLOR", "FORCE_COLOR", "CLICOLOR",
    "CLICOLOR_FORCE", "COLUMNS", "LINES",
};

// Exact names that carry credentials or a way out of the sandbox.
constexpr std::array kForbiddenNames = {
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "GNUPGHOME", "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "CONTAINER_HOST",
    "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY", "KRB5CCNAME", "GITHUB_TOKEN", "GH_TOKEN", "GITLAB_TOKEN",
    "NPM_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS", "KUBECONFIG",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NODE_OPTIONS",
    "LD_PRELOAD", "LD_LIBRARY_PATH", "ANTHROPIC_AUTH_TOKEN",
};

// Prefixes of whole families: tokfence's own settings and secrets, cloud SDK credentials.
constexpr std::array kForbiddenPrefixes = {
    "TOKFENCE_", "AWS_", "AZURE_", "GOOGLE_", "GCLOUD_", "CLOUDSDK_", "ARM_", "OCI_", "DIGITALOCEAN_",
    "VAULT_", "OP_", "BW_",
};

}  // namespace

bool allowed_from_parent(const std::string& name) {
  if (forbidden(name)) return false;
  if (starts_with(name, "LC_")) return true;
  return std::find(kAllowed.begin(), kAllowed.end(), std::string_view(name)) != kAllowed.end();
}

bool forbidden(const std::string& name) {
  for (auto n : kForbiddenNames)
    if (name == n) return true;
  for (auto p : kForbiddenPrefixes)
    if (starts_with(name, p)) return true;
  // Every provider's key variables, and anything shaped like a key or token variable.
  for (const auto& spec : builtin_providers())
    for (const auto& var : key_env_vars(spec.name))
      if (name == var) return true;
  for (auto suffix : {"_API_KEY", "_APIKEY", "_TOKEN", "_SECRET", "_SECRET_KEY", "_PASSWORD", "_PASSPHRASE",
                      "_ACCESS_KEY", "_CREDENTIALS"})
    if (ends_with(name, suffix)) return true;
  return false;
}

EnvMap build_child_env(const EnvMap& parent, const EnvMap& own, const std::vector<std::string>& vouched_vars) {
  EnvMap env;
  for (const auto& [name, value] : parent)
    if (allowed_from_parent(name)) env[name] = value;
  for (const auto& [name, value] : own) {
    bool vouched = std::find(vouched_vars.begin(), vouched_vars.end(), name) != vouched_vars.end();
    if (forbidden(name) && !vouched) continue;
    env[name] = value;
  }
  return env;
}

EnvMap current_environment() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::vector<std::string> to_envp(const EnvMap& env) {
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) out.push_back(name + "=" + value);
  return out;
}

}  // namespace tokfence::sandbox
