#include <catch2/catch.hpp>

#include "sandbox/environment.hpp"

using namespace tokfence::sandbox;

TEST_CASE("sandbox::build_child_env keeps only allow-listed parent variables") {
  EnvMap parent = {{"PATH", "/usr/bin"},        {"HOME", "/home/u"},          {"TERM", "xterm"},
                   {"LANG", "C.UTF-8"},         {"LC_ALL", "C"},              {"TZ", "UTC"},
                   {"EDITOR", "vi"},            {"SOME_RANDOM_VAR", "x"},     {"MY_APP_CONFIG", "/etc/x"},
                   {"PYTHONPATH", "/opt/evil"}, {"LD_PRELOAD", "/tmp/x.so"}, {"NODE_OPTIONS", "--require /x"}};
  auto env = build_child_env(parent, {});
  CHECK(env.at("PATH") == "/usr/bin");
  CHECK(env.at("HOME") == "/home/u");
  CHECK(env.at("LC_ALL") == "C");
  CHECK(env.count("TZ") == 1);
  CHECK(env.count("EDITOR") == 1);
  // Not on the list: dropped, whatever they are.
  CHECK(env.count("SOME_RANDOM_VAR") == 0);
  CHECK(env.count("MY_APP_CONFIG") == 0);
  CHECK(env.count("PYTHONPATH") == 0);
  CHECK(env.count("LD_PRELOAD") == 0);
  CHECK(env.count("NODE_OPTIONS") == 0);
}

TEST_CASE("sandbox::build_child_env never passes secrets, credentials or socket variables") {
  EnvMap parent = {{"TOKFENCE_VAULT_PASSPHRASE", "p"}, {"TOKFENCE_HOME", "/h"},       {"OPENAI_API_KEY", "k"},
                   {"ANTHROPIC_API_KEY", "k"},         {"CODEX_API_KEY", "k"},        {"GEMINI_API_KEY", "k"},
                   {"AWS_SECRET_ACCESS_KEY", "k"},     {"AWS_PROFILE", "p"},          {"SSH_AUTH_SOCK", "/s"},
                   {"GPG_AGENT_INFO", "/g"},           {"DBUS_SESSION_BUS_ADDRESS", "unix:path=/b"},
                   {"DOCKER_HOST", "unix:///d"},       {"XDG_RUNTIME_DIR", "/run/user/0"},
                   {"GITHUB_TOKEN", "t"},              {"HTTPS_PROXY", "http://x"}};
  auto env = build_child_env(parent, {});
  CHECK(env.empty());
  for (const auto& [name, value] : parent) CHECK(forbidden(name));
}

TEST_CASE("sandbox::build_child_env adds the harness's variables, but not forbidden ones") {
  EnvMap own = {{"CODEX_HOME", "/h/codex"},
                {"OPENAI_API_KEY", "tokfence-managed"},
                {"TOKFENCE_HOME", "/h"},
                {"ANTHROPIC_API_KEY", "smuggled"}};
  auto env = build_child_env({{"PATH", "/bin"}, {"OPENAI_API_KEY", "real"}}, own, {"OPENAI_API_KEY"});
  CHECK(env.at("CODEX_HOME") == "/h/codex");
  // The dummy replaces whatever the parent had.
  CHECK(env.at("OPENAI_API_KEY") == "tokfence-managed");
  CHECK(env.count("TOKFENCE_HOME") == 0);
  CHECK(env.count("ANTHROPIC_API_KEY") == 0);
  CHECK(env.at("PATH") == "/bin");
}

TEST_CASE("sandbox::to_envp renders NAME=value pairs") {
  auto envp = to_envp({{"A", "1"}, {"B", "x=y"}});
  REQUIRE(envp.size() == 2);
  CHECK(envp[0] == "A=1");
  CHECK(envp[1] == "B=x=y");
}
