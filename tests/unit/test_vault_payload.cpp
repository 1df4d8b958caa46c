#include <catch2/catch.hpp>

#include <vector>

#include "vault/payload.hpp"

using namespace tokfence;
using namespace tokfence::vault;

TEST_CASE("vault::payload round-trips entries, escaping quotes and backslashes") {
  payload::Entries in;
  in["openai"] = payload::Entry{SecretString("sk-a\"b\\c"), 100, 0};
  in["groq"] = payload::Entry{SecretString("gsk_xyz"), 5, 7};
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
