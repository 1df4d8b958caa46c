// Name and key validation on the `tokfence vault` command paths: refused before any vault is
// opened, with the rule in the message.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "launcher/cli/cli.hpp"

namespace fs = std::filesystem;

namespace {

struct CliRun {
  int rc = 0;
  std::string err;
};

CliRun run_cli(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string name = "tokfence";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream captured;
  auto* old = std::cerr.rdbuf(captured.rdbuf());
  int rc = tokfence::cli::run(static_cast<int>(argv.size()), argv.data());
  std::cerr.rdbuf(old);
  return {rc, captured.str()};
}

struct CliHome {
  fs::path root;
  CliHome() {
    std::string tmpl = (fs::temp_directory_path() / "tokfence-cli-unit-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    root = tmpl;
    ::setenv("TOKFENCE_HOME", root.c_str(), 1);
    ::setenv("TOKFENCE_VAULT_PASSPHRASE", "unit-pass", 1);
  }
  ~CliHome() {
    ::unsetenv("TOKFENCE_HOME");
    ::unsetenv("TOKFENCE_VAULT_PASSPHRASE");
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

}  // namespace

TEST_CASE("cli vault commands refuse an invalid provider name with the rule") {
  CliHome home;
  for (std::vector<std::string> args : {std::vector<std::string>{"vault", "add", "Open AI", "some-key"},
                                        std::vector<std::string>{"vault", "rotate", "../etc", "-"},
                                        std::vector<std::string>{"vault", "remove", "UPPER"},
                                        std::vector<std::string>{"vault", "add", std::string(33, 'a'), "-"}}) {
    auto r = run_cli(args);
    CHECK(r.rc == 1);
    CHECK(r.err.find("tokfence: error: provider name '") == 0);
    CHECK(r.err.find("must match [a-z0-9][a-z0-9_-]{0,31}") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(home.root / "vault.enc"));
}

TEST_CASE("cli vault add refuses a malformed key without echoing it") {
  CliHome home;
  auto r = run_cli({"vault", "add", "openai", "two words-secretish"});
  CHECK(r.rc == 1);
  CHECK(r.err.find("key for 'openai': contains a space") != std::string::npos);
  CHECK(r.err.find("secretish") == std::string::npos);
  CHECK_FALSE(fs::exists(home.root / "vault.enc"));
}
