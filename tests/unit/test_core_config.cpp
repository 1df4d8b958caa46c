#include <catch2/catch.hpp>
#include <cstring>

#include "core/config.hpp"
#include "core/locked_buffer.hpp"
#include "core/names.hpp"
#include "core/secret.hpp"

using namespace tokfence;

namespace {
Home test_home() { return Home("/tmp/tokfence-unit-home"); }
}  // namespace

TEST_CASE("core::config defaults apply when the file is empty") {
  auto load = parse_config("", "config.toml", test_home());
  REQUIRE(load);
  CHECK(load->config.daemon.host == "127.0.0.1");
  CHECK(load->config.daemon.port == 9471);
  CHECK(load->config.logging.retention_days == 90);
  CHECK(load->config.notifications.budget_warning_percent == 80);
  CHECK(load->config.logging.db_path == "/tmp/tokfence-unit-home/tokfence.db");
  CHECK(load->config.vault.backend == VaultBackendChoice::automatic);
  CHECK(load->warnings.empty());
}

TEST_CASE("core::config reports a syntax error with file, line and column") {
  auto load = parse_config("[daemon]\nport = = 3\n", "/x/config.toml", test_home());
  REQUIRE_FALSE(load);
  CHECK(load.error().message.rfind("/x/config.toml:2:", 0) == 0);
}

TEST_CASE("core::config reports a wrong type with its position") {
  auto load = parse_config("[daemon]\nhost = \"127.0.0.1\"\nport = \"9471\"\n", "c.toml", test_home());
  REQUIRE_FALSE(load);
  CHECK(load.error().message == "c.toml:3:8: daemon.port must be an integer");
}

TEST_CASE("core::config warns about unknown keys and sections by name") {
  auto load = parse_config("[daemon]\nprot = 1\n[loging]\n", "c.toml", test_home());
  REQUIRE(load);
  REQUIRE(load->warnings.size() == 2);
  CHECK(load->warnings[0] == "c.toml:2:1: unknown key 'prot' in [daemon]");
  CHECK(load->warnings[1].find("unknown key 'loging'") != std::string::npos);
}

TEST_CASE("core::config rejects an unknown vault backend") {
  auto load = parse_config("[vault]\nbackend = \"plaintext\"\n", "c.toml", test_home());
  REQUIRE_FALSE(load);
  CHECK(load.error().message.find("vault.backend must be") != std::string::npos);
}

TEST_CASE("core::config adds and overrides providers") {
  auto load = parse_config(
      "[providers.local]\nupstream = \"http://127.0.0.1:8080/\"\nauth = \"bearer\"\n"
      "[providers.openai]\nupstream = \"http://127.0.0.1:9000\"\n"
      "[providers.openai.headers]\nOpenAI-Organization = \"org-1\"\n",
      "c.toml", test_home());
  REQUIRE(load);
  auto local = load->config.provider("local");
  REQUIRE(local);
  CHECK(local->upstream == "http://127.0.0.1:8080");
  auto openai = load->config.provider("openai");
  REQUIRE(openai);
  CHECK(openai->upstream == "http://127.0.0.1:9000");
  CHECK(openai->default_headers.at("OpenAI-Organization") == "org-1");
  CHECK(load->config.provider("anthropic")->auth == AuthScheme::x_api_key);
}

TEST_CASE("core::config converts prices to micro-dollars per million tokens") {
  auto load = parse_config("[pricing.\"my-model\"]\ninput = 2.5\noutput = 10\n", "c.toml", test_home());
  REQUIRE(load);
  CHECK(load->config.pricing_overrides.at("my-model").input == 2'500'000);
  CHECK(load->config.pricing_overrides.at("my-model").output == 10'000'000);
}

TEST_CASE("core::names accepts only [a-z0-9][a-z0-9_-]{0,31}") {
  CHECK(is_valid_provider_name("openai"));
  CHECK(is_valid_provider_name("my-provider_2"));
  CHECK(is_valid_provider_name(std::string(32, 'a')));
  CHECK_FALSE(is_valid_provider_name(std::string(33, 'a')));
  CHECK_FALSE(is_valid_provider_name(""));
  CHECK_FALSE(is_valid_provider_name("-x"));
  CHECK_FALSE(is_valid_provider_name("OpenAI"));
  CHECK_FALSE(is_valid_provider_name("a/b"));
  CHECK(check_provider_name("A B").error().message == "provider name 'A B': must match [a-z0-9][a-z0-9_-]{0,31}");
}

TEST_CASE("core::SecretString shows only a short fingerprint") {
  SecretString key("abcdefghijklmnopqrstuvwxyz");
  CHECK(key.fingerprint() == "...wxyz");
  CHECK(SecretString("short").fingerprint() == "...");
  SecretString copy = key;
  CHECK(copy == key);
  SecretString moved = std::move(copy);
  CHECK(moved.reveal() == key.reveal());
  CHECK(copy.empty());
}

TEST_CASE("core::SecretString assignment replaces the value, also with an empty one") {
  SecretString key("abcdefghijklmnopqrstuvwxyz");
  SecretString other("old value");
  other = key;
  CHECK(other == key);
  CHECK(other.reveal().data() != key.reveal().data());  // a copy has its own buffer
  other = SecretString();
  CHECK(other.empty());
  CHECK(other.reveal().data() == nullptr);  // an empty value allocates nothing
  CHECK(SecretString("").reveal().data() == nullptr);
}

TEST_CASE("core::LockedBuffer is zeroed, never grows, wipes what it forgets and moves out empty") {
  LockedBuffer none;
  CHECK(none.data() == nullptr);
  CHECK(none.size() == 0);
  LockedBuffer zero(0);
  CHECK(zero.data() != nullptr);
  CHECK(zero.size() == 0);

  LockedBuffer buf(8);
  CHECK(buf.view() == std::string_view("\0\0\0\0\0\0\0\0", 8));
  std::memcpy(buf.data(), "abcdefgh", 8);
  const unsigned char* bytes = buf.data();
  buf.truncate(3);
  CHECK(buf.view() == "abc");
  CHECK(bytes[3] != 'd');  // the tail is wiped, not just forgotten
  buf.truncate(5);
  CHECK(buf.size() == 3);

  LockedBuffer moved = std::move(buf);
  CHECK(moved.data() == bytes);
  CHECK(moved.view() == "abc");
  CHECK(buf.data() == nullptr);
  CHECK(buf.size() == 0);
  moved.reset();
  CHECK(moved.data() == nullptr);
  CHECK(moved.size() == 0);
}
