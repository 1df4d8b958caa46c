#include <catch2/catch.hpp>

#include "core/egress_env.hpp"
#include "sandbox/environment.hpp"

using namespace tokfence;

TEST_CASE("core::egress_proxy_env points every proxy variable at the fence's listener, loopback direct") {
  auto env = egress_proxy_env("http://127.0.0.1:4100");
  for (const char* name : {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"})
    CHECK(env.at(name) == "http://127.0.0.1:4100");
  CHECK(env.at("NO_PROXY") == "127.0.0.1,localhost,::1");
  CHECK(env.at("no_proxy") == "127.0.0.1,localhost,::1");
  CHECK(env.size() == 8);
}

TEST_CASE("core::egress_proxy_env: the user's own proxy settings never reach a fenced child") {
  // The sandbox's allow-list drops what the shell had; run.cpp then sets tokfence's own values.
  sandbox::EnvMap parent = {{"HTTPS_PROXY", "http://corp-proxy:3128"}, {"https_proxy", "http://corp-proxy:3128"},
                            {"NO_PROXY", "*"}, {"PATH", "/usr/bin"}};
  auto child = sandbox::build_child_env(parent, {});
  CHECK_FALSE(child.count("HTTPS_PROXY"));
  CHECK_FALSE(child.count("https_proxy"));
  CHECK_FALSE(child.count("NO_PROXY"));
  for (const auto& [name, value] : egress_proxy_env("http://127.0.0.1:4100")) child[name] = value;
  CHECK(child.at("HTTPS_PROXY") == "http://127.0.0.1:4100");
  CHECK(child.at("NO_PROXY") == "127.0.0.1,localhost,::1");
}
