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

TEST_CASE("core::config reads who may use the keys: allowed_origins, methods, forced_headers") {
  auto load = parse_config(
      "[daemon]\nallowed_origins = [\"https://app.example.com\", \"vscode-webview://abc\"]\n"
      "[providers.openai]\nmethods = [\"GET\", \"POST\"]\n"
      "[providers.openai.forced_headers]\n\"OpenAI-Organization\" = \"org-1\"\n",
      "c.toml", test_home());
  REQUIRE(load);
  CHECK(load->config.daemon.allowed_origins == std::vector<std::string>{"https://app.example.com", "vscode-webview://abc"});
  auto openai = load->config.provider("openai");
  REQUIRE(openai);
  CHECK(openai->methods == std::vector<std::string>{"GET", "POST"});
  CHECK(openai->forced_headers.at("OpenAI-Organization") == "org-1");
  CHECK(load->warnings.empty());
}

TEST_CASE("core::config refuses bad access settings with their position") {
  auto error = [](const std::string& text) {
    auto load = parse_config(text, "c.toml", test_home());
    REQUIRE_FALSE(load);
    return load.error().message;
  };
  CHECK(error("[daemon]\nallowed_origins = [\"https://a.example/x\"]\n").rfind("c.toml:2:", 0) == 0);
  CHECK(error("[daemon]\nallowed_origins = [\"null\"]\n").find("not a web origin") != std::string::npos);
  CHECK(error("[daemon]\nallowed_origins = [\"*\"]\n").find("not a web origin") != std::string::npos);
  CHECK(error("[daemon]\nallowed_origins = [\"HTTPS://A.EXAMPLE\"]\n").find("lower case") != std::string::npos);
  CHECK(error("[providers.openai]\nmethods = [\"POST\", \"TRACE\"]\n") ==
        "c.toml:2:20: providers.openai.methods: \"TRACE\" is never forwarded: choose from GET, HEAD, POST, PUT, "
        "PATCH, DELETE (upper case)");
  CHECK(error("[providers.openai]\nmethods = []\n").find("at least one") != std::string::npos);
  CHECK(error("[providers.openai.forced_headers]\nx-api-key = \"k\"\n").find("carries a credential") != std::string::npos);
  CHECK(error("[providers.openai.forced_headers]\nHost = \"h\"\n").find("set by the proxy") != std::string::npos);
  CHECK(error("[providers.openai.forced_headers]\n\"A B\" = \"h\"\n").find("not a valid header name") != std::string::npos);
  CHECK(error("[providers.openai.forced_headers]\nX-A = \"a\\r\\nX-B: b\"\n").find("control character") != std::string::npos);
}

TEST_CASE("core::config refuses a clear-text upstream that is not loopback, unless allow_insecure") {
  auto load = parse_config("[providers.lan]\nupstream = \"http://192.168.1.20:11434\"\n", "c.toml", test_home());
  REQUIRE_FALSE(load);
  CHECK(load.error().message.rfind("c.toml:2:", 0) == 0);
  CHECK(load.error().message.find("the key would travel in clear text") != std::string::npos);
  CHECK(parse_config("[providers.lan]\nupstream = \"http://192.168.1.20\"\nallow_insecure = true\n", "c.toml", test_home()));
  for (auto ok : {"http://127.0.0.1:8080", "http://127.1.2.3", "http://localhost:11434/v1", "http://[::1]:1",
                  "https://api.example.com"})
    CHECK(parse_config(std::string("[providers.x]\nupstream = \"") + ok + "\"\n", "c.toml", test_home()));
  for (auto bad : {"http://127.0.0.1.example.com", "http://[::ffff:10.0.0.1]", "http://0.0.0.0:80", "http://localhost.evil.example"})
    CHECK_FALSE(parse_config(std::string("[providers.x]\nupstream = \"") + bad + "\"\n", "c.toml", test_home()));
}

TEST_CASE("core::config reads [launch] engine_socket and refuses a relative one with its position") {
  auto load = parse_config("[launch]\nengine_socket = \"/run/podman/podman.sock\"\n", "config.toml", test_home());
  REQUIRE(load);
  CHECK(load->config.launch.engine_socket == "/run/podman/podman.sock");
  CHECK(load->warnings.empty());
  auto relative = parse_config("[launch]\nengine_socket = \"run/podman.sock\"\n", "/x/config.toml", test_home());
  REQUIRE_FALSE(relative);
  CHECK(relative.error().message.find("/x/config.toml:2:") == 0);
  CHECK(relative.error().message.find("launch.engine_socket must be an absolute path") != std::string::npos);
}
