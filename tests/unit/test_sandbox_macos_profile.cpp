#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "sandbox/harness/harness.hpp"
#include "sandbox/macos_profile.hpp"

using namespace tokfence::sandbox;

namespace {
std::string real_template() {
  std::ifstream in(tokfence::harness::templates_dir() / "macos" / "tokfence.sb");
  REQUIRE(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
MacProfileInput sample() {
  MacProfileInput in;
  in.program = "codex";
  in.proxy_port = 9471;
  in.proxy_socket = "/Users/u/.tokfence/sockets/run-1/proxy.sock";
  in.writable = {"/Users/u/src/app", "/Users/u/.tokfence/harness/codex", "/Users/u/.tokfence/harness/codex/tmp"};
  in.hidden = {"/Users/u/.tokfence"};
  for (auto& k : macos_keychain_paths("/Users/u")) in.hidden.push_back(k);
  return in;
}
}  // namespace

TEST_CASE("sandbox::render_macos_profile denies by default and lets the network reach only the proxy") {
  auto profile = render_macos_profile(real_template(), sample());
  REQUIRE(profile);
  const std::string& p = *profile;
  CHECK(p.find("(deny default)") != std::string::npos);
  CHECK(p.find("(deny network*)") != std::string::npos);
  CHECK(p.find("(allow network-outbound (remote tcp \"localhost:9471\"))") != std::string::npos);
  CHECK(p.find("(allow network-outbound (remote unix-socket (path-literal "
               "\"/Users/u/.tokfence/sockets/run-1/proxy.sock\")))") != std::string::npos);
  // The only network allowances are those two.
  std::size_t count = 0;
  for (auto pos = p.find("(allow network"); pos != std::string::npos; pos = p.find("(allow network", pos + 1)) ++count;
  CHECK(count == 2);
  // And they come after the blanket deny, so they are the exceptions (later rules win).
  CHECK(p.find("(deny network*)") < p.find("(allow network-outbound"));
  CHECK(p.find("{{") == std::string::npos);
}

TEST_CASE("sandbox::render_macos_profile hides tokfence's home and the keychains, writes only to allowed paths") {
  auto profile = render_macos_profile(real_template(), sample());
  REQUIRE(profile);
  const std::string& p = *profile;
  auto deny = p.find("(deny file-read* file-write*");
  auto allow_write = p.find("(allow file-read* file-write*");
  REQUIRE(deny != std::string::npos);
  REQUIRE(allow_write != std::string::npos);
  CHECK(p.find("(allow file-read*)") < deny);
  CHECK(deny < allow_write);
  std::string deny_block = p.substr(deny, allow_write - deny);
  CHECK(deny_block.find("(subpath \"/Users/u/.tokfence\")") != std::string::npos);
  CHECK(deny_block.find("(subpath \"/Users/u/Library/Keychains\")") != std::string::npos);
  CHECK(deny_block.find("(subpath \"/Library/Keychains\")") != std::string::npos);
  std::string allow_block = p.substr(allow_write, p.find(')', p.find("harness/codex/tmp")) - allow_write);
  CHECK(allow_block.find("(subpath \"/Users/u/src/app\")") != std::string::npos);
  CHECK(allow_block.find("(subpath \"/Users/u/.tokfence/harness/codex\")") != std::string::npos);
  CHECK(allow_block.find("/Users/u/.tokfence\")") == std::string::npos);
  // The only other file-write allowance is for devices.
  std::size_t writes = 0;
  for (auto pos = p.find("file-write*"); pos != std::string::npos; pos = p.find("file-write*", pos + 1)) ++writes;
  CHECK(writes == 3);
  CHECK(p.find("(deny mach-lookup") != std::string::npos);
  CHECK(p.find("com.apple.SecurityServer") != std::string::npos);
}

TEST_CASE("sandbox::render_macos_profile quotes paths and rejects bad input") {
  auto in = sample();
  in.writable.push_back("/Users/u/we\"ird\\dir");
  auto profile = render_macos_profile(real_template(), in);
  REQUIRE(profile);
  CHECK(profile->find("(subpath \"/Users/u/we\\\"ird\\\\dir\")") != std::string::npos);

  in = sample();
  in.writable.push_back("relative/dir");
  auto relative = render_macos_profile(real_template(), in);
  REQUIRE_FALSE(relative);
  CHECK(relative.error().message == "macos profile: path must be absolute: relative/dir");

  in = sample();
  in.writable.push_back("/x\n(allow default)");
  auto injected = render_macos_profile(real_template(), in);
  REQUIRE_FALSE(injected);
  CHECK(injected.error().message.find("control character") != std::string::npos);

  in = sample();
  in.proxy_port = 0;
  auto port = render_macos_profile(real_template(), in);
  REQUIRE_FALSE(port);
  CHECK(port.error().message == "macos profile: bad proxy port: 0");

  in = sample();
  in.hidden.clear();
  CHECK_FALSE(render_macos_profile(real_template(), in));

  auto unknown = render_macos_profile("(version 1) {{nope}}", sample());
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message == "macos profile: unknown placeholder in template: {{nope}}");
}

TEST_CASE("sandbox::macos_sandbox_argv runs the program under sandbox-exec with the profile") {
  auto argv = macos_sandbox_argv("/Users/u/.tokfence/harness/codex/sandbox.sb", {"/opt/bin/codex", "exec", "hi"});
  std::vector<std::string> expected = {"/usr/bin/sandbox-exec", "-f", "/Users/u/.tokfence/harness/codex/sandbox.sb",
                                       "/opt/bin/codex", "exec", "hi"};
  CHECK(argv == expected);
}
