#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "sandbox/harness/harness.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
namespace fs = std::filesystem;

namespace {
using test::TempDir;

harness::RenderInput input_for(const std::string& program, const fs::path& home) {
  harness::RenderInput in;
  in.program = harness::find_program(program);
  REQUIRE(in.program);
  in.provider = in.program->default_provider;
  in.proxy_url = "http://127.0.0.1:9471";
  in.harness_home = home / program;
  in.templates_dir = harness::templates_dir();
  in.tmpdir = "/tmp";
  return in;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

TEST_CASE("harness::render writes a codex config.toml that selects the tokfence provider") {
  TempDir tmp;
  auto out = harness::render(input_for("codex", tmp.path));
  REQUIRE(out);
  fs::path config = tmp.path / "codex" / "codex-home" / "config.toml";
  CHECK(out->env.at("CODEX_HOME") == (tmp.path / "codex" / "codex-home").string());
  auto doc = toml::parse_file(config.string());
  CHECK(doc["model_provider"].value_or(std::string()) == "tokfence");
  auto provider = doc["model_providers"]["tokfence"];
  CHECK(provider["base_url"].value_or(std::string()) == "http://127.0.0.1:9471/openai/v1");
  CHECK(provider["wire_api"].value_or(std::string()) == "responses");
  std::string key_var = provider["env_key"].value_or(std::string());
  CHECK(out->env.at(key_var) == "tokfence-managed");
  CHECK(out->key_vars == std::vector<std::string>{key_var});
  CHECK(doc["analytics"]["enabled"].value_or(true) == false);
  CHECK(doc["features"]["plugins"].value_or(true) == false);
  CHECK(doc["check_for_update_on_startup"].value_or(true) == false);
  CHECK_FALSE(doc.contains("model"));
  CHECK(out->env.at("TMPDIR") == "/tmp");
  CHECK(out->env.at("XDG_CACHE_HOME").rfind((tmp.path / "codex").string(), 0) == 0);
}

TEST_CASE("harness::render puts a chosen model into the codex config") {
  TempDir tmp;
  auto in = input_for("codex", tmp.path);
  in.model = "gpt-5.1-codex";
  REQUIRE(harness::render(in));
  auto doc = toml::parse_file((tmp.path / "codex" / "codex-home" / "config.toml").string());
  CHECK(doc["model"].value_or(std::string()) == "gpt-5.1-codex");
}

TEST_CASE("harness::render sets claude's base URL, dummy key and no non-essential traffic") {
  TempDir tmp;
  auto in = input_for("claude", tmp.path);
  in.running_as_root = true;
  auto out = harness::render(in);
  REQUIRE(out);
  CHECK(out->env.at("ANTHROPIC_BASE_URL") == "http://127.0.0.1:9471/anthropic");
  CHECK(out->env.at("ANTHROPIC_API_KEY") == "tokfence-managed");
  CHECK(out->env.at("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC") == "1");
  CHECK(out->env.at("IS_SANDBOX") == "1");
  fs::path dir = out->env.at("CLAUDE_CONFIG_DIR");
  auto settings = nlohmann::json::parse(slurp(dir / "settings.json"));
  CHECK(settings["env"]["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9471/anthropic");
  CHECK(settings["env"]["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1");
  auto state = nlohmann::json::parse(slurp(dir / ".claude.json"));
  CHECK(state["customApiKeyResponses"]["approved"][0] == "tokfence-managed");

  in.running_as_root = false;
  auto not_root = harness::render(in);
  REQUIRE(not_root);
  CHECK(not_root->env.count("IS_SANDBOX") == 0);
}

TEST_CASE("harness::render writes an opencode config with one tokfence provider and no models fetch") {
  TempDir tmp;
  auto out = harness::render(input_for("opencode", tmp.path));
  REQUIRE(out);
  CHECK(out->env.at("OPENCODE_DISABLE_MODELS_FETCH") == "1");
  fs::path config = out->env.at("OPENCODE_CONFIG");
  auto doc = nlohmann::json::parse(slurp(config));
  REQUIRE(doc["provider"].size() == 1);
  auto provider = doc["provider"]["tokfence"];
  CHECK(provider["options"]["baseURL"] == "http://127.0.0.1:9471/openai/v1");
  CHECK(provider["options"]["apiKey"] == "tokfence-managed");
  std::string model = doc["model"];
  CHECK(model.rfind("tokfence/", 0) == 0);
  CHECK(provider["models"].contains(model.substr(9)));
  // No npm install on start: a node_modules is already there.
  CHECK(fs::is_directory(config.parent_path() / "node_modules"));
  CHECK(fs::is_directory(fs::path(out->env.at("XDG_CONFIG_HOME")) / "opencode" / "node_modules"));

  auto in = input_for("opencode", tmp.path);
  in.provider = "anthropic";
  auto anthropic = harness::render(in);
  REQUIRE(anthropic);
  auto doc2 = nlohmann::json::parse(slurp(anthropic->env.at("OPENCODE_CONFIG")));
  CHECK(doc2["provider"]["tokfence"]["options"]["baseURL"] == "http://127.0.0.1:9471/anthropic/v1");
  CHECK(doc2["provider"]["tokfence"]["npm"] == "@ai-sdk/anthropic");
}

TEST_CASE("harness::render rejects a bad model name and an unsupported provider") {
  TempDir tmp;
  auto in = input_for("opencode", tmp.path);
  in.model = "x\", \"apiKey\": \"y";
  auto bad = harness::render(in);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.rfind("opencode: bad model name: ", 0) == 0);

  auto codex = input_for("codex", tmp.path);
  codex.provider = "anthropic";
  auto unsupported = harness::render(codex);
  REQUIRE_FALSE(unsupported);
  CHECK(unsupported.error().message == "codex: provider not supported: anthropic (use openai)");
}

TEST_CASE("harness::fill_template names an unknown placeholder") {
  auto ok = harness::fill_template("a {{x}} b {{x}}", {{"x", "1"}}, "t");
  REQUIRE(ok);
  CHECK(*ok == "a 1 b 1");
  auto unknown = harness::fill_template("a {{y}}", {{"x", "1"}}, "t");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message == "template t: unknown placeholder: {{y}}");
  CHECK_FALSE(harness::fill_template("a {{x", {{"x", "1"}}, "t"));
}

TEST_CASE("harness::sensitive_paths covers the tokfence home, runtime dirs, sockets and credential stores") {
  TempDir tmp;
  fs::path home = tmp.path / "home";
  for (auto d : {".ssh", ".docker", ".local/share/keyrings", "agent"}) fs::create_directories(home / d);
  std::ofstream(home / ".netrc") << "x";
  std::ofstream(home / "agent" / "ssh.sock") << "";
  std::ofstream(home / "gpg.sock") << "";
  fs::path tf_home = tmp.path / "tf";
  fs::create_directories(tf_home);
  auto paths = harness::sensitive_paths({{"HOME", home.string()},
                                         {"SSH_AUTH_SOCK", (home / "agent" / "ssh.sock").string()},
                                         {"GPG_AGENT_INFO", (home / "gpg.sock").string() + ":0:1"}},
                                        tf_home, 12345);
  auto has = [&](const fs::path& p) { return std::find(paths.begin(), paths.end(), p) != paths.end(); };
  CHECK(has(tf_home));
  CHECK(has("/run"));
  CHECK(has(home / ".ssh"));
  CHECK(has(home / ".docker"));
  CHECK(has(home / ".local/share/keyrings"));
  CHECK(has(home / ".netrc"));
  CHECK(has(home / "agent"));       // the agent socket's own directory
  CHECK(has(home / "gpg.sock"));    // directly in $HOME: only the socket, not the whole home
  CHECK_FALSE(has(home));
  CHECK_FALSE(has(home / ".aws"));  // absent paths are left out
}

TEST_CASE("harness::sensitive_paths covers more credential stores, and root's own secrets only for uid 0") {
  TempDir tmp;
  fs::path home = tmp.path / "home";
  for (auto d : {".config/git", ".cargo", ".local/share/fish", ".mozilla", ".config/rclone"}) fs::create_directories(home / d);
  for (auto f : {".config/git/credentials", ".pgpass", ".cargo/credentials.toml", ".vault-token", ".bash_history",
                 ".local/share/fish/fish_history"})
    std::ofstream(home / f) << "x";
  fs::path tf_home = tmp.path / "tf";
  fs::create_directories(tf_home);
  auto user = harness::sensitive_paths({{"HOME", home.string()}}, tf_home, 12345);
  auto has = [](const std::vector<fs::path>& paths, const fs::path& p) {
    return std::find(paths.begin(), paths.end(), p) != paths.end();
  };
  for (auto rel : {".config/git/credentials", ".pgpass", ".cargo/credentials.toml", ".vault-token", ".bash_history",
                   ".local/share/fish/fish_history", ".mozilla", ".config/rclone"})
    CHECK(has(user, home / rel));
  CHECK_FALSE(has(user, home / ".cargo"));  // the toolchain stays, its token file does not
  CHECK_FALSE(has(user, "/root"));
  CHECK_FALSE(has(user, "/etc/shadow"));
  auto root = harness::sensitive_paths({{"HOME", home.string()}}, tf_home, 0);
  CHECK(has(root, "/root") == fs::exists("/root"));
  CHECK(has(root, "/etc/shadow") == fs::exists("/etc/shadow"));
  CHECK(has(root, "/etc/ssh/ssh_config") == false);  // host keys only, not the client config
}

TEST_CASE("harness::render uses the session token as every program's key, claude's tail included") {
  TempDir tmp;
  const std::string token = "tfc1.eyJzIjoxfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYW5kLW1vcmU";
  for (const char* program : {"codex", "claude", "opencode"}) {
    auto in = input_for(program, tmp.path);
    in.api_key = token;
    auto out = harness::render(in);
    REQUIRE(out);
    for (const auto& var : out->key_vars) CHECK(out->env.at(var) == token);
    if (std::string(program) == "claude") {
      auto state = nlohmann::json::parse(slurp(tmp.path / "claude" / "claude-config" / ".claude.json"));
      CHECK(state["customApiKeyResponses"]["approved"][0] == token.substr(token.size() - harness::kClaudeKeyTail));
    }
    if (std::string(program) == "opencode") {
      auto doc = nlohmann::json::parse(slurp(out->env.at("OPENCODE_CONFIG")));
      CHECK(doc["provider"]["tokfence"]["options"]["apiKey"] == token);
    }
  }
  auto bad = input_for("codex", tmp.path);
  bad.api_key = "tfc1.\"quote";
  auto refused = harness::render(bad);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("quote") == std::string::npos);
}

TEST_CASE("harness::scrub_secret rewrites files holding the token, never through a link") {
  TempDir tmp;
  const std::string token = "tfc1.eyJzIjoxfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYW5kLW1vcmU";
  auto in = input_for("claude", tmp.path);
  in.api_key = token;
  REQUIRE(harness::render(in));
  const fs::path home = tmp.path / "claude";
  fs::create_directories(home / "xdg" / "data" / "deep");
  { std::ofstream(home / "xdg" / "data" / "deep" / "copy.txt") << "key " << token << " end\n"; }
  { std::ofstream(tmp.path / "victim.txt") << "victim " << token << "\n"; }
  // A killed run's token (not the one being scrubbed), and a word that only starts like one.
  { std::ofstream(home / "xdg" / "data" / "old.txt") << "k=tfc1.OLDOLDOLDOLDOLDOLD.sig rest tfc1.short\n"; }
  fs::create_symlink(tmp.path / "victim.txt", home / "xdg" / "data" / "link.txt");
  ::chmod((home / "xdg" / "data" / "deep" / "copy.txt").c_str(), 0640);

  auto r = harness::scrub_secret(home, token);
  REQUIRE(r);
  CHECK(r->rewritten == 3);  // .claude.json (the tail), copy.txt and old.txt
  CHECK(slurp(home / "xdg" / "data" / "old.txt") == "k=tokfence-managed rest tfc1.short\n");
  CHECK(slurp(home / "xdg" / "data" / "deep" / "copy.txt") == "key tokfence-managed end\n");
  CHECK((fs::status(home / "xdg" / "data" / "deep" / "copy.txt").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  auto state = nlohmann::json::parse(slurp(home / "claude-config" / ".claude.json"));
  CHECK(state["customApiKeyResponses"]["approved"][0] == "tokfence-managed");
  CHECK(slurp(tmp.path / "victim.txt").find(token) != std::string::npos);  // not followed
  CHECK(fs::is_symlink(home / "xdg" / "data" / "link.txt"));
  auto again = harness::scrub_secret(home, token);
  REQUIRE(again);
  CHECK(again->rewritten == 0);
}
