#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "core/providers.hpp"
#include "launcher/openclaw/config.hpp"

using namespace tokfence;
using namespace tokfence::launcher;

namespace {

const ProviderSpec& builtin(const std::string& name) {
  for (const auto& p : builtin_providers())
    if (p.name == name) return p;
  FAIL("no builtin provider " << name);
  throw;
}

std::string template_text() {
  auto text = read_template("openclaw/openclaw.json.tmpl");
  REQUIRE(text);
  return *text;
}

RenderRequest three_providers() {
  RenderRequest r;
  r.providers = {{"openai", "openai-completions", "http://127.0.0.1:9471/openai/v1", {"gpt-4o", "gpt-4o-mini"}},
                 {"google", "google-generative-ai", "http://127.0.0.1:9471/google/v1beta", {"gemini-2.5-flash"}},
                 {"anthropic", "anthropic-messages", "http://127.0.0.1:9471/anthropic", {"claude-sonnet-4-5"}}};
  r.gateway_token = "0123456789abcdef";
  return r;
}

}  // namespace

TEST_CASE("launcher::proxy_base_url and openclaw_api follow each provider's wire format") {
  const std::string root = "http://127.0.0.1:9471";
  CHECK(proxy_base_url(builtin("openai"), root) == "http://127.0.0.1:9471/openai/v1");
  CHECK(proxy_base_url(builtin("groq"), root) == "http://127.0.0.1:9471/groq/v1");
  CHECK(proxy_base_url(builtin("anthropic"), root) == "http://127.0.0.1:9471/anthropic");
  CHECK(proxy_base_url(builtin("google"), root) == "http://127.0.0.1:9471/google/v1beta");
  CHECK(*openclaw_api(builtin("openai")) == "openai-completions");
  CHECK(*openclaw_api(builtin("anthropic")) == "anthropic-messages");
  CHECK(*openclaw_api(builtin("google")) == "google-generative-ai");
}

TEST_CASE("launcher::provider_priority puts anthropic, openai, google first") {
  CHECK(provider_priority({"xai", "openai", "groq", "google", "anthropic"}) ==
        std::vector<std::string>{"anthropic", "openai", "google", "groq", "xai"});
  CHECK(provider_priority({"mistral", "openai"}) == std::vector<std::string>{"openai", "mistral"});
}

TEST_CASE("launcher::render_openclaw_config renders providers, primary model and gateway auth") {
  auto rendered = render_openclaw_config(template_text(), three_providers());
  REQUIRE(rendered);
  auto config = json::parse(rendered->text);
  CHECK(rendered->primary_model == "anthropic/claude-sonnet-4-5");
  CHECK(config["agents"]["defaults"]["model"]["primary"] == "anthropic/claude-sonnet-4-5");
  CHECK(config["agents"]["defaults"]["workspace"] == "/workspace");
  auto& providers = config["models"]["providers"];
  REQUIRE(providers.size() == 3);
  CHECK(providers["openai"]["baseUrl"] == "http://127.0.0.1:9471/openai/v1");
  CHECK(providers["openai"]["api"] == "openai-completions");
  CHECK(providers["anthropic"]["api"] == "anthropic-messages");
  CHECK(providers["google"]["api"] == "google-generative-ai");
  for (auto& [name, p] : providers.items()) {
    CHECK(p["apiKey"] == "tokfence-managed");
    CHECK(p["models"].size() >= 1);
    CHECK(p["models"][0].contains("id"));
    CHECK(p["models"][0].contains("name"));
  }
  CHECK(config["gateway"]["auth"]["mode"] == "token");
  CHECK(config["gateway"]["auth"]["token"] == "0123456789abcdef");
  CHECK(config["gateway"]["bind"] == "loopback");
  CHECK(config["gateway"]["port"] == 18789);
  CHECK(config["gateway"]["mode"] == "local");
  // Only keys OpenClaw's strict schema knows (validated against OpenClaw 2026.9.6).
  std::set<std::string> top;
  for (auto& [k, v] : config.items()) top.insert(k);
  CHECK(top == std::set<std::string>{"agents", "gateway", "models", "proxy"});
}

TEST_CASE("launcher::render_openclaw_config honours --model and lists an unpriced model") {
  auto request = three_providers();
  request.model = "openai/gpt-5-experimental";
  auto rendered = render_openclaw_config(template_text(), request);
  REQUIRE(rendered);
  auto config = json::parse(rendered->text);
  CHECK(rendered->primary_model == "openai/gpt-5-experimental");
  CHECK(config["models"]["providers"]["openai"]["models"][0]["id"] == "gpt-5-experimental");

  request.model = "mistral/large";
  auto no_key = render_openclaw_config(template_text(), request);
  REQUIRE_FALSE(no_key);
  CHECK(no_key.error().message == "launch: --model: provider 'mistral' has no key: run 'tokfence vault add mistral -'");

  request.model = "justamodel";
  auto malformed = render_openclaw_config(template_text(), request);
  REQUIRE_FALSE(malformed);
  CHECK(malformed.error().message.find("expected provider/model") != std::string::npos);
}

TEST_CASE("launcher::render_openclaw_config refuses no providers and bad templates") {
  RenderRequest empty;
  auto none = render_openclaw_config(template_text(), empty);
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("run 'tokfence vault add openai -'") != std::string::npos);

  auto unknown = render_openclaw_config("{\"a\": {{nope}}}", three_providers());
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().message.find("unknown placeholder: {{nope}}") != std::string::npos);

  auto not_object = render_openclaw_config("[{{providers}}]", three_providers());
  REQUIRE_FALSE(not_object);
  CHECK(not_object.error().message.find("does not render to a JSON object") != std::string::npos);
}

TEST_CASE("launcher::render_openclaw_config adds the Telegram channel with the placeholder only") {
  auto plain = render_openclaw_config(template_text(), three_providers());
  REQUIRE(plain);
  CHECK_FALSE(nlohmann::json::parse(plain->text).contains("channels"));

  auto request = three_providers();
  request.telegram = *telegram_channel("telegram-bot", {"424242001", "7"});
  auto rendered = render_openclaw_config(template_text(), request);
  REQUIRE(rendered);
  auto telegram = nlohmann::json::parse(rendered->text)["channels"]["telegram"];
  CHECK(telegram["enabled"] == true);
  CHECK(telegram["botToken"] == "tokfence-secret:telegram-bot");
  CHECK(telegram["dmPolicy"] == "allowlist");
  CHECK(telegram["allowFrom"] == nlohmann::json::array({"424242001", "7"}));

  request.telegram = *telegram_channel("telegram-bot", {});
  telegram = nlohmann::json::parse(render_openclaw_config(template_text(), request)->text)["channels"]["telegram"];
  CHECK(telegram["dmPolicy"] == "pairing");
  CHECK_FALSE(telegram.contains("allowFrom"));
}

TEST_CASE("launcher::telegram_channel checks the secret name and the user ids") {
  CHECK(telegram_channel("", {})->secret.empty());
  CHECK(telegram_channel("", {"1"}).error().message.find("needs --telegram-secret") != std::string::npos);
  CHECK(telegram_channel("Bad Name", {}).error().message.find("--telegram-secret: vault name") != std::string::npos);
  auto pasted = telegram_channel("bot", {"123456:AAsecretsecretsecretsecretsecret"});
  REQUIRE_FALSE(pasted);
  CHECK(pasted.error().message.find("not a numeric Telegram user id") != std::string::npos);
  CHECK(pasted.error().message.find("AAsecret") == std::string::npos);  // not echoed
  CHECK_FALSE(telegram_channel("bot", {"-100123"}));
  CHECK_FALSE(telegram_channel("bot", {std::string(21, '1')}));
  CHECK_FALSE(telegram_channel("bot", std::vector<std::string>(101, "1")));
  CHECK(telegram_channel("bot", std::vector<std::string>(100, "1")));
}

TEST_CASE("launcher::check_launch_name, numeric_user and parse_memory validate flags") {
  CHECK(check_launch_name("tokfence-openclaw"));
  CHECK(check_launch_name("a.b_c-1"));
  CHECK_FALSE(check_launch_name(""));
  CHECK_FALSE(check_launch_name("-x"));
  CHECK_FALSE(check_launch_name("a/b"));
  CHECK_FALSE(check_launch_name("../up"));
  CHECK_FALSE(check_launch_name(std::string(64, 'a')));
  CHECK(numeric_user("1000:1000") == std::pair<unsigned, unsigned>{1000, 1000});
  CHECK(numeric_user("1001") == std::pair<unsigned, unsigned>{1001, 1001});
  CHECK_FALSE(numeric_user("node"));
  CHECK_FALSE(numeric_user("1000:"));
  CHECK(parse_memory("2g") == 2LL << 30);
  CHECK(parse_memory("512m") == 512LL << 20);
  CHECK(parse_memory("134217728") == 134217728);
  CHECK_FALSE(parse_memory("1m"));  // below 64 MiB
  CHECK_FALSE(parse_memory("lots"));
  CHECK_FALSE(parse_memory("-2g"));
}

TEST_CASE("launcher::random_token is 48 hex characters and differs each time") {
  auto a = random_token(), b = random_token();
  CHECK(a.size() == 48);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("launcher::container_spec has no network, the relay as init and a hardened host config") {
  ContainerSpecInput in;
  in.name = "t1";
  in.image = "img:1";
  in.command = {"openclaw", "gateway", "run"};
  in.user = "65000:65000";
  in.memory_bytes = 1LL << 30;
  in.pids_limit = 256;
  in.launcher_pid = 4242;
  in.home_root = "/h";
  in.relay_binary = "/b/tokfence-relay";
  in.proxy_socket_dir = "/h/sockets/launch-t1/proxy";
  in.ui_socket_dir = "/h/sockets/launch-t1/ui";
  in.config_file = "/h/openclaw/t1/openclaw.json";
  in.state_home = "/h/openclaw/t1/home";
  in.workspace = "/w";
  auto spec = container_spec(in);
  auto& hc = spec["HostConfig"];
  CHECK(hc["NetworkMode"] == "none");
  CHECK(hc["CapDrop"] == json::array({"ALL"}));
  CHECK(hc["SecurityOpt"] == json::array({"no-new-privileges"}));
  CHECK(hc["ReadonlyRootfs"] == true);
  CHECK(hc["Tmpfs"].contains("/tmp"));
  CHECK(hc["PidsLimit"] == 256);
  CHECK(hc["Memory"] == 1LL << 30);
  CHECK(hc["Privileged"] == false);
  CHECK(hc["RestartPolicy"]["Name"] == "no");
  CHECK_FALSE(hc.contains("PortBindings"));
  CHECK(spec["User"] == "65000:65000");
  CHECK(spec["Entrypoint"] == json::array({"/tokfence/relay"}));
  CHECK(spec["Cmd"] == json::array({"--forward", "tcp:127.0.0.1:9471=unix:/run/tokfence/proxy.sock", "--forward",
                                    "unix:/run/tokfence-ui/ui.sock=tcp:127.0.0.1:18789", "--", "openclaw", "gateway", "run"}));
  // The proxy socket's directory is read-only; only the dashboard socket's is writable.
  CHECK(hc["Binds"] == json::array({"/b/tokfence-relay:/tokfence/relay:ro", "/h/sockets/launch-t1/proxy:/run/tokfence:ro",
                                    "/h/sockets/launch-t1/ui:/run/tokfence-ui",
                                    "/h/openclaw/t1/openclaw.json:/tokfence/config/openclaw.json:ro",
                                    "/h/openclaw/t1/home:/tokfence/home", "/w:/workspace"}));
  // Nothing of the home itself, the Docker socket or a key is mounted or passed.
  for (const auto& bind : hc["Binds"]) {
    auto text = bind.get<std::string>();
    CHECK(text.find("docker.sock") == std::string::npos);
    CHECK(text.rfind("/h:", 0) == std::string::npos);
  }
  for (const auto& var : spec["Env"]) {
    auto text = var.get<std::string>();
    CHECK(text.find("API_KEY") == std::string::npos);
    CHECK(text.find("TOKFENCE") == std::string::npos);
    CHECK(text.find("DOCKER_HOST") == std::string::npos);
  }
  CHECK(spec["Labels"]["org.tokfence.launch"] == "t1");
  CHECK(spec["Labels"]["org.tokfence.mode"] == "foreground");
  CHECK(spec["Labels"]["org.tokfence.pid"] == "4242");

  in.workspace_binds = {{".git", false}, {".git/hooks", true}};
  auto guarded = container_spec(in)["HostConfig"]["Binds"];
  CHECK(guarded[guarded.size() - 2] == "/w/.git:/workspace/.git");
  CHECK(guarded.back() == "/w/.git/hooks:/workspace/.git/hooks:ro");

  in.detach = true;
  auto detached = container_spec(in);
  CHECK(detached["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped");
  CHECK(detached["Labels"]["org.tokfence.mode"] == "detach");
}

TEST_CASE("launcher::container_spec binds the host's account files read-only over the image's") {
  ContainerSpecInput in;
  in.workspace = "/w";
  CHECK(container_spec(in)["HostConfig"]["Binds"].dump().find("/etc/passwd") == std::string::npos);
  in.passwd_file = "/h/openclaw/t1/passwd";
  in.group_file = "/h/openclaw/t1/group";
  auto binds = container_spec(in)["HostConfig"]["Binds"];
  CHECK(std::count(binds.begin(), binds.end(), json("/h/openclaw/t1/passwd:/etc/passwd:ro")) == 1);
  CHECK(std::count(binds.begin(), binds.end(), json("/h/openclaw/t1/group:/etc/group:ro")) == 1);
}

TEST_CASE("launcher::container_accounts names the container user and keeps the image's usual accounts") {
  auto dedicated = container_accounts(65520, 65520);
  CHECK(dedicated.passwd ==
        "root:x:0:0:root:/root:/bin/sh\n"
        "node:x:1000:1000:node:/home/node:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        "openclaw:x:65520:65520:OpenClaw (tokfence launch):/tokfence/home:/bin/sh\n");
  CHECK(dedicated.group == "root:x:0:\nnode:x:1000:\nnogroup:x:65534:\nopenclaw:x:65520:\n");
  // An id one of those accounts has keeps that account's name and is not listed twice.
  auto node = container_accounts(1000, 1000);
  CHECK(node.passwd.find("openclaw") == std::string::npos);
  CHECK(node.group.find("openclaw") == std::string::npos);
  auto mixed = container_accounts(65001, 1000);
  CHECK(mixed.passwd.find("openclaw:x:65001:1000:") != std::string::npos);
  CHECK(mixed.group.find("openclaw") == std::string::npos);
}

TEST_CASE("launcher::default_model prefers a current general-purpose model") {
  CHECK(default_model("openai", {"codex-mini", "gpt-3.5-turbo", "gpt-4.1", "gpt-4o"}) == "gpt-4.1");
  CHECK(default_model("anthropic", {"claude-3-haiku", "claude-sonnet-4-5"}) == "claude-sonnet-4-5");
  CHECK(default_model("groq", {"llama-3.1-8b-instant", "qwen/qwen3-32b"}) == "llama-3.1-8b-instant");
}

TEST_CASE("launcher::container_spec points every HTTP client at the launch's listener as forward proxy") {
  ContainerSpecInput in;
  in.name = "t1";
  auto env = container_spec(in)["Env"];
  std::set<std::string> vars;
  for (const auto& v : env) vars.insert(v.get<std::string>());
  for (const char* name : {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy",
                           "OPENCLAW_PROXY_URL"})
    CHECK(vars.count(std::string(name) + "=http://127.0.0.1:9471"));
  // Requests to the model proxy itself stay direct.
  CHECK(vars.count("NO_PROXY=127.0.0.1,localhost,::1"));
  CHECK(vars.count("no_proxy=127.0.0.1,localhost,::1"));
}

TEST_CASE("launcher::container_spec trusts the local CA in /run/tokfence and passes --secret placeholders only") {
  ContainerSpecInput in;
  in.name = "t1";
  in.secret_env = {{"TELEGRAM_BOT_TOKEN", "tokfence-secret:telegram-bot"}};
  const auto spec = container_spec(in);
  std::set<std::string> vars;
  for (const auto& v : spec["Env"]) vars.insert(v.get<std::string>());
  CHECK(vars.count("NODE_EXTRA_CA_CERTS=/run/tokfence/egress-ca.pem"));
  for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"})
    CHECK(vars.count(std::string(name) + "=/run/tokfence/egress-ca-bundle.pem"));
  CHECK(vars.count("TELEGRAM_BOT_TOKEN=tokfence-secret:telegram-bot"));
}

TEST_CASE("launcher::render_openclaw_config turns on OpenClaw's managed proxy mode at the launch's listener") {
  auto rendered = render_openclaw_config(template_text(), three_providers());
  REQUIRE(rendered);
  auto config = json::parse(rendered->text);
  CHECK(config["proxy"]["enabled"] == true);
  CHECK(config["proxy"]["proxyUrl"] == "http://127.0.0.1:9471");
  // Loopback (the model proxy, the gateway) bypasses it.
  CHECK(config["proxy"]["loopbackMode"] == "gateway-only");
}

TEST_CASE("launcher::render_openclaw_config puts the session token in every provider's apiKey") {
  RenderRequest request;
  request.providers = {{"openai", "openai-completions", "http://127.0.0.1:9471/openai/v1", {"gpt-4o"}},
                       {"anthropic", "anthropic-messages", "http://127.0.0.1:9471/anthropic", {"claude-sonnet-4-5"}}};
  request.gateway_token = "g";
  request.api_key = "tfc1.abc.def-ghi_jkl";
  auto out = render_openclaw_config("{\"models\": {\"providers\": {{providers}}}}", request);
  REQUIRE(out);
  auto doc = nlohmann::json::parse(out->text);
  for (auto& [name, p] : doc["models"]["providers"].items()) CHECK(p["apiKey"] == "tfc1.abc.def-ghi_jkl");
}

TEST_CASE("launcher::home_archive builds a ustar tar with owned directory and file entries") {
  auto tar = home_archive({{".aws/credentials", "[default]\n"}, {".config/gh/hosts.yml", "x"}, {".env", "A=B\n"}}, 1000, 1001);
  REQUIRE(tar);
  REQUIRE(tar->size() % 512 == 0);
  std::vector<std::string> names;
  for (std::size_t at = 0; at + 512 <= tar->size();) {
    std::string header = tar->substr(at, 512);
    if (header == std::string(512, '\0')) break;
    std::string name = header.substr(0, header.find('\0'));
    names.push_back(name);
    CHECK(header.substr(257, 5) == "ustar");
    CHECK(std::stoul(header.substr(108, 7), nullptr, 8) == 1000);
    CHECK(std::stoul(header.substr(116, 7), nullptr, 8) == 1001);
    unsigned mode = std::stoul(header.substr(100, 7), nullptr, 8);
    CHECK(mode == (header[156] == '5' ? 0700u : 0600u));
    unsigned sum = 0;
    for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(header[i]);
    CHECK(std::stoul(header.substr(148, 6), nullptr, 8) == sum);
    std::size_t size = std::stoul(header.substr(124, 11), nullptr, 8);
    at += 512 + (size + 511) / 512 * 512;
  }
  CHECK(names == std::vector<std::string>{".aws/", ".aws/credentials", ".config/", ".config/gh/", ".config/gh/hosts.yml", ".env"});
  CHECK_FALSE(home_archive({{"../x", "y"}}, 1, 1));
  // A uid or gid wider than the header's 7 octal digits (a directory-service uid) is written in
  // GNU base-256, never spilled into the next field; the largest octal one stays octal.
  auto big = home_archive({{".env", "x"}}, 1234567890u, kUstarMaxId);
  REQUIRE(big);
  CHECK(big->substr(108, 8) == std::string("\x80\0\0\0\x49\x96\x02\xd2", 8));
  CHECK(big->substr(116, 8) == std::string("7777777\0", 8));
  CHECK(big->substr(124, 11) == "00000000001");  // the size field untouched
}

TEST_CASE("launcher::subordinate_ranges and first_free_id pick the container id no one has") {
  auto ranges = subordinate_ranges("alice:100000:65536\n1001:165536:65536\r\nbroken\nx:1:\ny:5:0\n\nz:65000:10");
  REQUIRE(ranges.size() == 3);
  CHECK(ranges[0] == std::pair<std::uint64_t, std::uint64_t>{100000, 165536});
  CHECK(ranges[1] == std::pair<std::uint64_t, std::uint64_t>{165536, 231072});
  CHECK(ranges[2] == std::pair<std::uint64_t, std::uint64_t>{65000, 65010});
  CHECK(subordinate_ranges("").empty());
  auto in_ranges = [&](unsigned id) {
    for (auto [first, end] : ranges)
      if (id >= first && id < end) return true;
    return false;
  };
  CHECK(first_free_id(kDedicatedIdFirst, kDedicatedIdLast, in_ranges) == 65010u);
  CHECK(first_free_id(kDedicatedIdFirst, kDedicatedIdLast, [](unsigned) { return false; }) == kDedicatedIdFirst);
  CHECK_FALSE(first_free_id(kDedicatedIdFirst, kDedicatedIdLast, [](unsigned) { return true; }));
  CHECK(first_free_id(4294967295u, 4294967295u, [](unsigned) { return false; }) == 4294967295u);  // no wrap-around loop
  // The range is Debian's reserved one and fits a ustar header.
  CHECK(kDedicatedIdLast < 65534u);
  CHECK(kDedicatedIdLast <= kUstarMaxId);
}

TEST_CASE("launcher::first_free_dedicated_id tries the ids above systemd's DynamicUser range first") {
  // 61184..65519 is systemd's DynamicUser= range (review 13a O3).
  CHECK(kDedicatedIdPreferred == 65520u);
  CHECK(first_free_dedicated_id([](unsigned) { return false; }) == 65520u);
  CHECK(first_free_dedicated_id([](unsigned id) { return id < 65530; }) == 65530u);
  // All of 65520..65533 taken: back to the first free one from 65000.
  CHECK(first_free_dedicated_id([](unsigned id) { return id >= 65520 || id < 65007; }) == 65007u);
  CHECK_FALSE(first_free_dedicated_id([](unsigned) { return true; }));
  std::vector<unsigned> asked;
  CHECK_FALSE(first_free_dedicated_id([&](unsigned id) { asked.push_back(id); return true; }));
  CHECK(asked.size() == kDedicatedIdLast - kDedicatedIdFirst + 1);  // each id once
}

TEST_CASE("launcher::status_uids reads the Uid line of /proc/<pid>/status") {
  CHECK(status_uids("Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t65520\t65521\t65522\t65523\n"
                    "Gid:\t0\t0\t0\t0\n") == std::vector<unsigned>{65520, 65521, 65522, 65523});
  CHECK(status_uids("Uid:\t0\t0\t0\t0") == std::vector<unsigned>{0, 0, 0, 0});  // no final newline
  CHECK(status_uids("Name:\tx\nGid:\t1\t1\t1\t1\n").empty());
  CHECK(status_uids("Uid:\tabc\n").empty());
  CHECK(status_uids("").empty());
}

TEST_CASE("launcher::container_spec hands the relay each bind's identity, and bounds the engine's log") {
  ContainerSpecInput in;
  in.name = "t1";
  in.image = "img:1";
  in.command = {"openclaw", "gateway", "run"};
  in.workspace = "/w";
  in.expected_mounts = {{"/workspace", 2049, 77, 0}, {"/workspace/.git/modules", 2049, 78, 991}};
  auto spec = container_spec(in);
  const auto& cmd = spec["Cmd"];
  std::vector<std::string> args(cmd.begin(), cmd.end());
  auto dashes = std::find(args.begin(), args.end(), "--");
  REQUIRE(dashes != args.end());
  const std::vector<std::string> before(args.begin(), dashes);
  // Before "--": the relay's options, never the agent's arguments (review 15c X1).
  const std::vector<std::string> pair = {"--expect-mount", "/workspace=2049:77:0"};
  CHECK(std::search(before.begin(), before.end(), pair.begin(), pair.end()) != before.end());
  CHECK(std::find(before.begin(), before.end(), "/workspace/.git/modules=2049:78:991") != before.end());
  CHECK(std::vector<std::string>(dashes + 1, args.end()) == in.command);
  CHECK(spec["HostConfig"]["LogConfig"] ==
        json{{"Type", "json-file"}, {"Config", {{"max-size", kLogMaxSize}, {"max-file", kLogMaxFiles}}}});
}
