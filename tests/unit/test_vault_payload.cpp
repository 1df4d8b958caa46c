#include <catch2/catch.hpp>

#include <vector>

#include "vault/payload.hpp"
#include "vault/vault.hpp"

using namespace tokfence;
using namespace tokfence::vault;

TEST_CASE("vault::payload round-trips entries, escaping quotes and backslashes") {
  payload::Entries in;
  in["openai"] = payload::Entry{SecretString("sk-a\"b\\c"), 100, 0, {}};
  in["groq"] = payload::Entry{SecretString("gsk_xyz"), 5, 7, {}};
  SecureBytes json = payload::serialize(in);
  CHECK(json.view() ==
        R"({"groq":{"key":"gsk_xyz","added_at":5,"rotated_at":7},"openai":{"key":"sk-a\"b\\c","added_at":100,"rotated_at":0}})");
  auto out = payload::parse(json.view());
  REQUIRE(out);
  REQUIRE(out->size() == 2);
  CHECK(out->at("openai").key.reveal() == "sk-a\"b\\c");
  CHECK(out->at("openai").added_at == 100);
  CHECK(out->at("groq").rotated_at == 7);
}

TEST_CASE("vault::payload round-trips the hosts of a bound secret, in order") {
  payload::Entries in;
  in["openai"] = payload::Entry{SecretString("provider-key"), 1, 0, {}};
  in["telegram-bot"] = payload::Entry{SecretString("bot-token"), 2, 3, {"api.telegram.org", "uploads.example.org"}};
  SecureBytes json = payload::serialize(in);
  CHECK(json.view() ==
        R"({"openai":{"key":"provider-key","added_at":1,"rotated_at":0},)"
        R"("telegram-bot":{"key":"bot-token","added_at":2,"rotated_at":3,"hosts":["api.telegram.org","uploads.example.org"]}})");
  auto out = payload::parse(json.view());
  REQUIRE(out);
  CHECK(out->at("openai").hosts.empty());
  CHECK(out->at("telegram-bot").hosts == std::vector<std::string>{"api.telegram.org", "uploads.example.org"});
  CHECK(out->at("telegram-bot").key.reveal() == "bot-token");
  CHECK(out->at("telegram-bot").rotated_at == 3);
  // One host, and an empty list (= none).
  auto one = payload::parse(R"({"t":{"hosts":[ "a.example.com" ],"key":"k1"},"u":{"key":"k2","hosts":[]}})");
  REQUIRE(one);
  CHECK(one->at("t").hosts == std::vector<std::string>{"a.example.com"});
  CHECK(one->at("u").hosts.empty());
}

TEST_CASE("vault::payload reads a payload written before hosts existed as provider keys") {
  auto out = payload::parse(R"({"anthropic":{"key":"old-key-value","added_at":10,"rotated_at":0}})");
  REQUIRE(out);
  CHECK(out->at("anthropic").hosts.empty());
  CHECK(out->at("anthropic").key.reveal() == "old-key-value");
  CHECK(out->at("anthropic").added_at == 10);
}

TEST_CASE("vault::payload refuses bad hosts without quoting them") {
  const std::string secretish = "zzsecretzz";
  for (const std::string& bad : std::vector<std::string>{R"({"t":{"key":"k","hosts":"a.example.com"}})", R"({"t":{"key":"k","hosts":[1]}})",
                          R"({"t":{"key":"k","hosts":["a.example.com",]}})", R"({"t":{"key":"k","hosts":["a.example.com")",
                          R"({"t":{"key":"k","hosts":["a.example.com","a.example.com"]}})",
                          R"({"t":{"key":"k","hosts":["Upper.)" + secretish + R"(.com"]}})",
                          R"({"t":{"key":"k","hosts":["127.0.0.1"]}})", R"({"t":{"key":"k","hosts":["a..)" + secretish + R"("]}})"}) {
    auto r = payload::parse(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.rfind("payload: malformed at byte ", 0) == 0);
    CHECK(r.error().message.find(secretish) == std::string::npos);
  }
  std::string many = R"({"t":{"key":"k","hosts":[)";
  for (std::size_t i = 0; i <= kMaxSecretHosts; ++i) many += (i ? ",\"h" : "\"h") + std::to_string(i) + ".example.com\"";
  many += "]}}";
  auto r = payload::parse(many);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("too many hosts") != std::string::npos);
}

TEST_CASE("vault::payload reads any well-formed JSON of its shape") {
  auto out = payload::parse(" {\n \"mistral\" : { \"note\": [1, {\"a\": null}], \"key\" : \"m\\u0041x\", \"added_at\": 3 } }\n");
  REQUIRE(out);
  CHECK(out->at("mistral").key.reveal() == "mAx");
  CHECK(out->at("mistral").added_at == 3);
  CHECK(out->at("mistral").rotated_at == 0);
  auto empty = payload::parse("{}");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("vault::payload rejects malformed input without quoting it") {
  const std::string secretish = "zzsecretzz";
  for (std::string bad : std::vector<std::string>{std::string("[]"), "{\"openai\":{\"key\":\"" + secretish + "\"}",
                          "{\"openai\":{\"key\":\"" + secretish + "\"}} trailing",
                          "{\"Bad Name\":{\"key\":\"" + secretish + "\"}}",
                          "{\"openai\":{\"key\":\"has space " + secretish + "\"}}",
                          std::string("{\"openai\":{\"added_at\":1}}"),
                          "{\"a\":{\"key\":\"" + secretish + "\"},\"a\":{\"key\":\"" + secretish + "\"}}"}) {
    auto r = payload::parse(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.rfind("payload: malformed at byte ", 0) == 0);
    CHECK(r.error().message.find(secretish) == std::string::npos);
  }
}

TEST_CASE("vault::payload check_key states the rule, never the key") {
  CHECK(payload::check_key("sk-proj-abc_DEF.123"));
  for (std::string bad : {std::string(""), std::string("with space"), std::string("tab\there"), std::string("nl\n"),
                          std::string("caf\xc3\xa9"), std::string(9000, 'a')}) {
    auto r = payload::check_key(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.rfind("key: ", 0) == 0);
    if (bad.size() > 3) CHECK(r.error().message.find(bad) == std::string::npos);
  }
}

TEST_CASE("vault::payload keeps a binding's path position, and an entry without one is for credential fields only") {
  payload::Entries in;
  in["telegram-bot"] = payload::Entry{SecretString("bot-token"), 1, 0, {"api.telegram.org"}, true};
  in["github"] = payload::Entry{SecretString("gh-token"), 1, 0, {"api.github.com"}, false};
  in["openai"] = payload::Entry{SecretString("provider-key"), 1, 0, {}, false};
  auto bytes = payload::serialize(in);
  const std::string text(bytes.view());
  CHECK(text.find(R"("hosts":["api.telegram.org"],"in":"path")") != std::string::npos);
  CHECK(text.find(R"("in")") == text.rfind(R"("in")"));  // only the path-bound entry says where
  auto out = payload::parse(text);
  REQUIRE(out);
  CHECK(out->at("telegram-bot").in_path);
  CHECK_FALSE(out->at("github").in_path);
  CHECK_FALSE(out->at("openai").in_path);
  // Written before positions existed: no "in", header-only.
  auto old = payload::parse(R"({"tg":{"key":"k","added_at":1,"rotated_at":0,"hosts":["api.telegram.org"]}})");
  REQUIRE(old);
  CHECK_FALSE(old->at("tg").in_path);
  auto header = payload::parse(R"({"tg":{"key":"k","hosts":["api.telegram.org"],"in":"header"}})");
  REQUIRE(header);
  CHECK_FALSE(header->at("tg").in_path);
  CHECK_FALSE(payload::parse(R"({"tg":{"key":"k","hosts":["api.telegram.org"],"in":"query"}})"));
}
