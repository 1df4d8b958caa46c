#include "core/egress_env.hpp"

namespace tokfence {

std::map<std::string, std::string> egress_proxy_env(std::string_view proxy_url) {
  std::map<std::string, std::string> env;
  for (const char* name : {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"})
    env[name] = std::string(proxy_url);
  env["NO_PROXY"] = env["no_proxy"] = std::string(kEgressNoProxy);
  return env;
}

}  // namespace tokfence
