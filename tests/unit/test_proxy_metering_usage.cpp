#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "proxy/metering/usage.hpp"

using namespace tokfence;
using namespace tokfence::proxy;
using json = nlohmann::json;

namespace {

struct Extracted {
  Usage usage;
  std::string model;
};

Extracted run(ApiKind kind, bool sse, std::string_view body) {
  auto x = make_usage_extractor(kind, sse);
  x->feed(body);
  Extracted out{x->finish(), x->response_model()};
  return out;
}

// Feeds `body` in two pieces cut at `split`.
Extracted run_split(ApiKind kind, bool sse, std::string_view body, std::size_t split) {
  auto x = make_usage_extractor(kind, sse);
  x->feed(body.substr(0, split));
  x->feed(body.substr(split));
  Extracted out{x->finish(), x->response_model()};
  return out;
}

Extracted run_bytewise(ApiKind kind, bool sse, std::string_view body) {
  auto x = make_usage_extractor(kind, sse);
  for (char c : body) x->feed(std::string_view(&c, 1));
  Extracted out{x->finish(), x->response_model()};
  return out;
}

void check_usage(const Usage& u, std::int64_t in, std::int64_t out, std::int64_t cache_read, std::int64_t cache_write) {
  CHECK(u.found);
  CHECK(u.input_tokens == in);
  CHECK(u.output_tokens == out);
  CHECK(u.cache_read_tokens == cache_read);
  CHECK(u.cache_write_tokens == cache_write);
}

// Shapes as the real APIs send them (trimmed of fields that do not matter here).
const std::string kChatJson = R"({
  "id": "chatcmpl-abc", "object": "chat.completion", "created": 1750000000, "model": "gpt-4o-2024-08-06",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "the \"usage\": {} is text"}, "finish_reason": "stop"}],
  "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 30}}
})";

const std::string kChatStream =
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":7,\"total_tokens\":57,\"prompt_tokens_details\":{\"cached_tokens\":20}}}\n\n"
    "data: [DONE]\n\n";

const std::string kResponsesJson = R"({"id":"resp_1","object":"response","status":"completed","model":"gpt-5-2025-08-07",
  "output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}],
  "usage":{"input_tokens":300,"input_tokens_details":{"cached_tokens":100},"output_tokens":40,
           "output_tokens_details":{"reasoning_tokens":25},"total_tokens":340}})";

const std::string kResponsesStream =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5-2025-08-07\",\"status\":\"in_progress\",\"usage\":null}}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"po\"}\n\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"delta\":\"ng\"}\n\n"
    "event: response.completed\n"
    "data: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-5-2025-08-07\",\"status\":\"completed\","
    "\"usage\":{\"input_tokens\":900,\"input_tokens_details\":{\"cached_tokens\":512},\"output_tokens\":61,\"output_tokens_details\":{\"reasoning_tokens\":48},\"total_tokens\":961}}}\n\n";

const std::string kAnthropicJson = R"({"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
  "content":[{"type":"text","text":"pong"}],"stop_reason":"end_turn","stop_sequence":null,
  "usage":{"input_tokens":12,"cache_creation_input_tokens":2048,"cache_read_input_tokens":4096,"output_tokens":9}})";

const std::string kAnthropicStream =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5-20251001\",\"content\":[],"
    "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":3000,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

const std::string kGeminiJson = R"({"candidates":[{"content":{"parts":[{"text":"pong"}],"role":"model"},"finishReason":"STOP","index":0}],
  "usageMetadata":{"promptTokenCount":1000,"candidatesTokenCount":20,"cachedContentTokenCount":600,"thoughtsTokenCount":55,"totalTokenCount":1075},
  "modelVersion":"gemini-2.5-flash","responseId":"r1"})";

// Gemini separates events with CRLF CRLF and repeats usageMetadata in every chunk.
const std::string kGeminiStream =
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"po\"}],\"role\":\"model\"},\"index\":0}],"
    "\"usageMetadata\":{\"promptTokenCount\":40,\"candidatesTokenCount\":1,\"totalTokenCount\":41},\"modelVersion\":\"gemini-2.5-pro\"}\r\n\r\n"
    "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ng\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],"
    "\"usageMetadata\":{\"promptTokenCount\":40,\"candidatesTokenCount\":3,\"cachedContentTokenCount\":8,\"thoughtsTokenCount\":12,\"totalTokenCount\":55},\"modelVersion\":\"gemini-2.5-pro\"}\r\n\r\n";

}  // namespace

// ---- classify -------------------------------------------------------------------------------

TEST_CASE("proxy::classify recognises each API by provider style and path") {
  CHECK(classify(ApiStyle::openai, "/v1/chat/completions") == ApiKind::openai_chat);
  CHECK(classify(ApiStyle::openai, "/v1/chat/completions?x=1") == ApiKind::openai_chat);
  CHECK(classify(ApiStyle::openai, "/openai/v1/chat/completions") == ApiKind::openai_chat);
  CHECK(classify(ApiStyle::openai, "/v1/responses") == ApiKind::openai_responses);
  CHECK(classify(ApiStyle::openai, "/v1/responses/") == ApiKind::openai_responses);
  CHECK(classify(ApiStyle::anthropic, "/v1/messages") == ApiKind::anthropic_messages);
  CHECK(classify(ApiStyle::anthropic, "/v1/messages?beta=true") == ApiKind::anthropic_messages);
  CHECK(classify(ApiStyle::anthropic, "/v1/messages/count_tokens") == ApiKind::other);
  CHECK(classify(ApiStyle::gemini, "/v1beta/models/gemini-2.5-flash:generateContent") == ApiKind::gemini);
  CHECK(classify(ApiStyle::gemini, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == ApiKind::gemini);
  CHECK(classify(ApiStyle::gemini, "/v1beta/openai/chat/completions") == ApiKind::openai_chat);
  CHECK(classify(ApiStyle::openai, "/v1/models") == ApiKind::other);
  CHECK(classify(ApiStyle::openai, "/v1/embeddings") == ApiKind::other);
  // OpenAI's Assistants threads have a /messages too, with another shape.
  CHECK(classify(ApiStyle::openai, "/v1/threads/t1/messages") == ApiKind::other);
}

// ---- inspect_request ------------------------------------------------------------------------

TEST_CASE("proxy::inspect_request reads model, streaming and the output cap") {
  std::string body = R"({"model":"gpt-4.1","stream":true,"max_completion_tokens":512,"messages":[]})";
  auto info = inspect_request(ApiKind::openai_responses, "/v1/responses", body, true);
  CHECK(info.model == "gpt-4.1");
  CHECK(info.streaming);
  CHECK(info.max_output_tokens == 512);
  CHECK(info.estimated_input_tokens == static_cast<std::int64_t>(body.size() / 4));

  std::string anthropic = R"({"model":"claude-opus-4-1","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]})";
  info = inspect_request(ApiKind::anthropic_messages, "/v1/messages", anthropic, true);
  CHECK(info.model == "claude-opus-4-1");
  CHECK_FALSE(info.streaming);
  CHECK(info.max_output_tokens == 1024);

  std::string responses = R"({"model":"gpt-5","max_output_tokens":2000,"input":"x"})";
  CHECK(inspect_request(ApiKind::openai_responses, "/v1/responses", responses, true).max_output_tokens == 2000);
}

// Review 12b F6 / 13a: lax servers (pydantic: vLLM, LiteLLM) stream on "stream": 1 or "true".
TEST_CASE("proxy::inspect_request takes a stream as lax servers read \"stream\"") {
  auto streams = [](const std::string& value) {
    std::string body = R"({"model":"m","stream":)" + value + R"(,"messages":[]})";
    auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
    if (info.streaming) CHECK(body.find("include_usage") != std::string::npos);
    return info.streaming;
  };
  for (std::string yes : {"true", "1", "2.5", "\"true\"", "\"True\"", "\"1\"", "\"yes\"", "\"on\"", "\"t\"", "[]", "{}"})
    CHECK(streams(yes));
  for (std::string no : {"false", "null", "0", "0.0", "\"false\"", "\"0\"", "\"no\"", "\"off\"", "\"F\"", "\"n\""})
    CHECK_FALSE(streams(no));
}

TEST_CASE("proxy::inspect_request takes the Gemini model and streaming from the path") {
  std::string body = R"({"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":77}})";
  auto info = inspect_request(ApiKind::gemini, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", body, true);
  CHECK(info.model == "gemini-2.5-pro");
  CHECK(info.streaming);
  CHECK(info.max_output_tokens == 77);
  info = inspect_request(ApiKind::gemini, "/v1beta/models/gemini-2.5-flash-lite:generateContent", body, true);
  CHECK(info.model == "gemini-2.5-flash-lite");
  CHECK_FALSE(info.streaming);
  std::string not_json = "garbage{";
  info = inspect_request(ApiKind::gemini, "/v1beta/models/gemini-2.0-flash:generateContent", not_json, true);
  CHECK(info.model == "gemini-2.0-flash");
  CHECK(not_json == "garbage{");
}

TEST_CASE("proxy::path_model takes a Gemini path's model for every method, never the body's") {
  // Google routes models/<m>:<method> by <m>: a body "model" naming an allowed model must not
  // stand in for it (a session scoped to gemini-2.5-flash* reaching Veo via :predictLongRunning).
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/veo-3.0-generate-001:predictLongRunning") == "veo-3.0-generate-001");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/imagen-4.0-generate-001:predict") == "imagen-4.0-generate-001");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/gemini-embedding-001:embedContent?x=a:b") == "gemini-embedding-001");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == "gemini-2.5-flash");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/tunedModels/my-tune-7:generateContent") == "my-tune-7");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/veo-3.0-generate-001%3ApredictLongRunning") == "veo-3.0-generate-001");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/veo-3.0-generate-001%3apredict") == "veo-3.0-generate-001");
  CHECK(path_model(ApiStyle::gemini, "/v1/projects/p/locations/us/publishers/google/models/gemini-2.5-pro:predict") ==
        "gemini-2.5-pro");
  // No model in the path: the body's is the request's (inspect_request).
  CHECK(path_model(ApiStyle::gemini, "/v1beta/cachedContents") == "");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/openai/chat/completions") == "");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/files/abc:download") == "");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/:generateContent") == "");
  CHECK(path_model(ApiStyle::gemini, "/v1beta/models/a/b:generateContent") == "");
  // Other styles: OpenAI fine-tune names hold colons (ft:gpt-4o-mini:org::id); never read so.
  CHECK(path_model(ApiStyle::openai, "/v1/models/ft:gpt-4o-mini:org::abc") == "");
  CHECK(path_model(ApiStyle::openai, "/v1beta/models/veo-3.0-generate-001:predictLongRunning") == "");
  CHECK(path_model(ApiStyle::anthropic, "/v1/models/claude:x") == "");
}

TEST_CASE("proxy::inspect_request adds include_usage to a streaming chat request and changes nothing else") {
  // Odd spacing, key order and number spellings must survive: the body is spliced, not re-serialised.
  const std::string original = "  {\"messages\": [{\"role\":\"user\",\"content\":\"}{\\\"\"}], \"temperature\": 1.0E0, "
                               "\"seed\": 12345678901234567890, \"model\": \"gpt-4o\", \"stream\": true}\n";
  std::string body = original;
  auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(info.streaming);
  CHECK(info.model == "gpt-4o");
  const std::string inserted = R"("stream_options":{"include_usage":true},)";
  auto at = body.find(inserted);
  REQUIRE(at != std::string::npos);
  std::string without = body;
  without.erase(at, inserted.size());
  CHECK(without == original);
  auto parsed = json::parse(body, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  CHECK(parsed["stream_options"]["include_usage"] == true);
  CHECK(parsed["model"] == "gpt-4o");
}

TEST_CASE("proxy::inspect_request completes an existing stream_options object") {
  std::string body = R"({"model":"gpt-4o","stream":true,"stream_options":{"x":1},"n":1})";
  inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(body == R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true,"x":1},"n":1})");

  body = R"({"model":"gpt-4o","stream":true,"stream_options": { } })";
  inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(body == R"({"model":"gpt-4o","stream":true,"stream_options": {"include_usage":true } })");

  body = R"({"model":"gpt-4o","stream":true,"stream_options":null})";
  inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(body == R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}})");

  // A key spelled with an escape is still the same key.
  body = R"({"model":"gpt-4o","stream":true,"stream\u005foptions":{}})";
  inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(json::parse(body)["stream_options"]["include_usage"] == true);
}

TEST_CASE("proxy::inspect_request leaves the body alone when usage injection does not apply") {
  auto unchanged = [](ApiKind kind, std::string body, bool inject) {
    std::string copy = body;
    inspect_request(kind, "/v1/chat/completions", copy, inject);
    return copy == body;
  };
  CHECK(unchanged(ApiKind::openai_chat, R"({"model":"gpt-4o","stream":true})", false));               // disabled
  CHECK(unchanged(ApiKind::openai_chat, R"({"model":"gpt-4o","stream":false})", true));               // not streaming
  CHECK(unchanged(ApiKind::openai_chat, R"({"model":"gpt-4o"})", true));                              // not streaming
  CHECK(unchanged(ApiKind::openai_responses, R"({"model":"gpt-4o","stream":true})", true));           // other API
  CHECK(unchanged(ApiKind::anthropic_messages, R"({"model":"c","stream":true})", true));              // other API
  CHECK(unchanged(ApiKind::openai_chat, R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}})", true));
  CHECK(unchanged(ApiKind::openai_chat, R"({"model":"gpt-4o","stream":true)", true));                 // not JSON
  CHECK(unchanged(ApiKind::openai_chat, R"([{"model":"gpt-4o","stream":true}])", true));              // not an object
  CHECK(unchanged(ApiKind::openai_chat, "", true));
}

TEST_CASE("proxy::inspect_request reads only top-level members, whatever the strings hold") {
  // The members are found by scanning the text, not by a parse: nested keys of the same name,
  // quotes and backslashes inside strings, and a long conversation must not mislead it.
  std::string body = R"({"messages":[{"role":"user","model":"nested-model","stream":false,)"
                     R"("content":"say \"model\":\"fake\" and a backslash \\\\ then \\\" quote"},)"
                     R"({"role":"user","content":"ends with backslashes \\\\\\\\"}],)"
                     R"("metadata":{"max_tokens":9,"stream":true},"model":"gpt-4o","stream":true,"max_tokens":64})";
  REQUIRE_FALSE(json::parse(body, nullptr, false).is_discarded());
  auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, false);
  CHECK(info.model == "gpt-4o");
  CHECK(info.streaming);
  CHECK(info.max_output_tokens == 64);

  // The last duplicate wins, as in a parser; escaped key spellings count.
  std::string dup = R"({"model":"first","m\u006fdel":"second","stream":true,"stream":false})";
  info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", dup, true);
  CHECK(info.model == "second");
  CHECK_FALSE(info.streaming);

  // Megabytes of conversation before the members that matter.
  std::string big = R"({"messages":[)";
  for (int i = 0; i < 2000; ++i) big += R"({"role":"user","content":")" + std::string(1000, 'x') + R"(\"{[\\"},)";
  big += R"({"role":"user","content":"last"}],"model":"claude-sonnet-4-5","stream":true,"max_tokens":8192})";
  REQUIRE_FALSE(json::parse(big, nullptr, false).is_discarded());
  info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", big, true);
  CHECK(info.model == "claude-sonnet-4-5");
  CHECK(info.max_output_tokens == 8192);
  auto parsed = json::parse(big, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  CHECK(parsed["stream_options"]["include_usage"] == true);
  CHECK(parsed["messages"].size() == 2001);
}

TEST_CASE("proxy::UsageExtractor ignores usage-like members nested in the content") {
  // A completion that talks about usage must not be taken for the usage object.
  std::string body = R"({"model":"gpt-4o","choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":999}}",)"
                     R"("usage":{"prompt_tokens":777,"completion_tokens":777}}}],)"
                     R"("usage":{"prompt_tokens":12,"completion_tokens":3}})";
  REQUIRE_FALSE(json::parse(body, nullptr, false).is_discarded());
  auto r = run(ApiKind::openai_chat, false, body);
  check_usage(r.usage, 12, 3, 0, 0);
  CHECK(r.model == "gpt-4o");
}

// ---- OpenAI Chat Completions ------------------------------------------------------------------

TEST_CASE("proxy::UsageExtractor reads OpenAI chat JSON usage, cached tokens apart") {
  auto r = run(ApiKind::openai_chat, false, kChatJson);
  check_usage(r.usage, 1200 - 1024, 80, 1024, 0);
  CHECK(r.model == "gpt-4o-2024-08-06");
  CHECK(r.usage.total() == 1280);
}

TEST_CASE("proxy::UsageExtractor reads the usage chunk of an OpenAI chat stream") {
  auto r = run(ApiKind::openai_chat, true, kChatStream);
  check_usage(r.usage, 30, 7, 20, 0);
  CHECK(r.model == "gpt-4o-mini-2024-07-18");
}

TEST_CASE("proxy::UsageExtractor reports no usage for a chat stream without a usage chunk") {
  std::string stream =
      "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"
      "data: [DONE]\n\n";
  auto r = run(ApiKind::openai_chat, true, stream);
  CHECK_FALSE(r.usage.found);
  CHECK(r.usage.total() == 0);
  CHECK(r.model == "gpt-4o");
}

TEST_CASE("proxy::UsageExtractor reads OpenAI-compatible variants (DeepSeek cache hits, Groq x_groq)") {
  auto deepseek = run(ApiKind::openai_chat, false,
                      R"({"model":"deepseek-chat","usage":{"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}})");
  check_usage(deepseek.usage, 36, 5, 64, 0);
  auto groq = run(ApiKind::openai_chat, true,
                  "data: {\"model\":\"llama-3.3-70b-versatile\",\"choices\":[],\"x_groq\":{\"id\":\"r\",\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3}}}\n\ndata: [DONE]\n\n");
  check_usage(groq.usage, 11, 3, 0, 0);
}

// ---- OpenAI Responses -------------------------------------------------------------------------

TEST_CASE("proxy::UsageExtractor reads OpenAI Responses JSON usage") {
  auto r = run(ApiKind::openai_responses, false, kResponsesJson);
  check_usage(r.usage, 200, 40, 100, 0);
  CHECK(r.model == "gpt-5-2025-08-07");
}

TEST_CASE("proxy::UsageExtractor reads usage from the response.completed event") {
  auto r = run(ApiKind::openai_responses, true, kResponsesStream);
  check_usage(r.usage, 900 - 512, 61, 512, 0);
  CHECK(r.model == "gpt-5-2025-08-07");
}

// ---- Anthropic Messages -------------------------------------------------------------------------

TEST_CASE("proxy::UsageExtractor reads Anthropic JSON usage with cache reads and writes") {
  auto r = run(ApiKind::anthropic_messages, false, kAnthropicJson);
  check_usage(r.usage, 12, 9, 4096, 2048);
  CHECK(r.model == "claude-sonnet-4-5-20250929");
}

TEST_CASE("proxy::UsageExtractor combines Anthropic message_start and message_delta") {
  auto r = run(ApiKind::anthropic_messages, true, kAnthropicStream);
  check_usage(r.usage, 25, 15, 3000, 100);
  CHECK(r.model == "claude-haiku-4-5-20251001");
}

TEST_CASE("proxy::UsageExtractor takes cumulative counts a message_delta repeats, never lowering them") {
  std::string stream =
      "event: message_start\n"
      "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-1\",\"usage\":{\"input_tokens\":500,\"output_tokens\":1}}}\n\n"
      "event: message_delta\n"
      "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":40,\"input_tokens\":0,\"cache_read_input_tokens\":7}}\n\n"
      "event: message_delta\n"
      "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":90}}\n\n";
  auto r = run(ApiKind::anthropic_messages, true, stream);
  check_usage(r.usage, 500, 90, 7, 0);
}

// ---- Gemini -------------------------------------------------------------------------------------

TEST_CASE("proxy::UsageExtractor reads Gemini JSON usageMetadata with cache and thoughts") {
  auto r = run(ApiKind::gemini, false, kGeminiJson);
  check_usage(r.usage, 400, 75, 600, 0);
  CHECK(r.model == "gemini-2.5-flash");
}

TEST_CASE("proxy::UsageExtractor takes the last usageMetadata of a Gemini SSE stream") {
  auto r = run(ApiKind::gemini, true, kGeminiStream);
  check_usage(r.usage, 32, 15, 8, 0);
  CHECK(r.model == "gemini-2.5-pro");
}

TEST_CASE("proxy::UsageExtractor reads Gemini's streamed JSON array element by element") {
  std::string array = "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a]}\\\"[{\"}]}}],"
                      "\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1}}\r\n,\r\n"
                      "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":4},\"modelVersion\":\"gemini-2.0-flash\"}]";
  for (std::size_t split = 0; split <= array.size(); ++split) {
    auto r = run_split(ApiKind::gemini, false, array, split);
    INFO("split at " << split);
    check_usage(r.usage, 9, 4, 0, 0);
    CHECK(r.model == "gemini-2.0-flash");
  }
}

// ---- SSE framing ----------------------------------------------------------------------------------

TEST_CASE("proxy::UsageExtractor finds the same usage whatever the chunk boundaries") {
  struct Case {
    const char* name;
    ApiKind kind;
    const std::string* stream;
    std::int64_t in, out, cache_read, cache_write;
  };
  const Case cases[] = {{"chat", ApiKind::openai_chat, &kChatStream, 30, 7, 20, 0},
                        {"responses", ApiKind::openai_responses, &kResponsesStream, 388, 61, 512, 0},
                        {"anthropic", ApiKind::anthropic_messages, &kAnthropicStream, 25, 15, 3000, 100},
                        {"gemini", ApiKind::gemini, &kGeminiStream, 32, 15, 8, 0}};
  for (const auto& c : cases) {
    for (std::size_t split = 0; split <= c.stream->size(); ++split) {
      INFO(c.name << " split at " << split);
      auto r = run_split(c.kind, true, *c.stream, split);
      check_usage(r.usage, c.in, c.out, c.cache_read, c.cache_write);
    }
    INFO(c.name << " byte by byte");
    check_usage(run_bytewise(c.kind, true, *c.stream).usage, c.in, c.out, c.cache_read, c.cache_write);
  }
}

TEST_CASE("proxy::UsageExtractor handles CRLF and lone CR line ends and multi-line data") {
  auto with = [](std::string s, const std::string& eol) {
    std::string out;
    for (char c : s) {
      if (c == '\n')
        out += eol;
      else
        out += c;
    }
    return out;
  };
  for (const std::string eol : {"\r\n", "\r"}) {
    auto stream = with(kAnthropicStream, eol);
    for (std::size_t split = 0; split <= stream.size(); ++split) {
      INFO("split at " << split);
      check_usage(run_split(ApiKind::anthropic_messages, true, stream, split).usage, 25, 15, 3000, 100);
    }
  }
  // One JSON document spread over several data: lines, with a comment and an id field between.
  std::string multi =
      ": keep-alive comment\n"
      "id: 7\n"
      "data: {\"model\":\"gpt-4o\",\"choices\":[],\n"
      "data:\"usage\":{\"prompt_tokens\":8,\n"
      "data: \"completion_tokens\":2}}\n"
      "\n";
  check_usage(run(ApiKind::openai_chat, true, multi).usage, 8, 2, 0, 0);
}

TEST_CASE("proxy::UsageExtractor delivers a last event that has no blank line after it") {
  std::string stream = kChatStream.substr(0, kChatStream.find("data: [DONE]"));
  stream.resize(stream.size() - 2);  // drop the final blank line of the usage event
  check_usage(run(ApiKind::openai_chat, true, stream).usage, 30, 7, 20, 0);
}

TEST_CASE("proxy::UsageExtractor skips an oversized event and keeps reading the stream") {
  std::string huge = "data: {\"usage\":{\"prompt_tokens\":999999,\"completion_tokens\":1},\"pad\":\"" +
                     std::string(2 * 1024 * 1024, 'x') + "\"}\n\n";
  auto x = make_usage_extractor(ApiKind::openai_chat, true);
  for (std::size_t i = 0; i < huge.size(); i += 4096) x->feed(std::string_view(huge).substr(i, 4096));
  x->feed(kChatStream);
  check_usage(x->finish(), 30, 7, 20, 0);
}

TEST_CASE("proxy::UsageExtractor takes every line of an oversized event as that event, not just the long one") {
  // The usage line belongs to the dropped event; were it read as an event of its own, the
  // huge prompt count would be taken.
  std::string stream = "data: {\"pad\":\"" + std::string(2 * 1024 * 1024, 'x') + "\",\n" +
                       "data: \"usage\":{\"prompt_tokens\":999999,\"completion_tokens\":1}}\n\n" +
                       "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n";
  check_usage(run(ApiKind::openai_chat, true, stream).usage, 4, 2, 0, 0);
  // The usage at the end of an oversized event is its own, read in its place (review 15a: a
  // Responses response.completed past 1 MiB); a later event's still wins, as above.
  std::string only_huge = "data: {\"pad\":\"" + std::string(2 * 1024 * 1024, 'x') + "\",\n" +
                          "data: \"usage\":{\"prompt_tokens\":999999,\"completion_tokens\":1}}\n\n";
  check_usage(run(ApiKind::openai_chat, true, only_huge).usage, 999999, 1, 0, 0);
}

TEST_CASE("proxy::UsageExtractor survives malformed input without usage or exceptions") {
  const std::string bad[] = {"", "not json", "{\"usage\":", "{\"usage\":{\"prompt_tokens\":\"many\"}}",
                             "{\"usage\":{\"prompt_tokens\":-5,\"completion_tokens\":1e400}}", "\xff\xfe{\"usage\":{}}",
                             "[1,2,{", "]]]]}}}}", std::string(100, '[')};
  for (auto kind : {ApiKind::openai_chat, ApiKind::openai_responses, ApiKind::anthropic_messages, ApiKind::gemini, ApiKind::other}) {
    for (bool sse : {false, true}) {
      for (const auto& b : bad) {
        auto x = make_usage_extractor(kind, sse);
        CHECK_NOTHROW(x->feed(b));
        CHECK_NOTHROW(x->feed("data: {broken\n\ndata: [DONE]\n\n"));
        Usage u;
        CHECK_NOTHROW(u = x->finish());
        CHECK(u.input_tokens >= 0);
        CHECK(u.output_tokens >= 0);
      }
    }
  }
  // Wrong types and negative counts do not count.
  auto r = run(ApiKind::openai_chat, false, R"({"usage":{"prompt_tokens":-5,"completion_tokens":"3"}})");
  CHECK(r.usage.input_tokens == 0);
  CHECK(r.usage.output_tokens == 0);
}

TEST_CASE("proxy::UsageExtractor reads token counts the way a JSON parser would") {
  auto prompt = [](const std::string& value) {
    auto r = run(ApiKind::openai_chat, false, R"({"usage":{"prompt_tokens":)" + value + R"(,"completion_tokens":0}})");
    return r.usage.input_tokens;
  };
  CHECK(prompt("0") == 0);
  CHECK(prompt("1234") == 1234);
  CHECK(prompt("1.5e3") == 1500);       // exponent
  CHECK(prompt("12.9") == 12);          // fraction cut
  CHECK(prompt("9223372036854775807") == INT64_MAX);
  CHECK(prompt("18446744073709551615") == INT64_MAX);  // unsigned 64-bit: capped
  CHECK(prompt("18446744073709551616") == 0);          // past 64 bits: a double > 9e18, absent
  CHECK(prompt("007") == 0);            // not JSON
  CHECK(prompt("-0") == 0);
  CHECK(prompt("1e") == 0);             // malformed exponent
  CHECK(prompt("true") == 0);
  CHECK(prompt("null") == 0);
  CHECK(prompt(R"("12")") == 0);
}

TEST_CASE("proxy::UsageExtractor reads an event stream sent without its content-type") {
  check_usage(run(ApiKind::anthropic_messages, false, kAnthropicStream).usage, 25, 15, 3000, 100);
}

TEST_CASE("proxy::UsageExtractor keeps only the end of a JSON body past its cap") {
  // The usage at the end is still read (review 15a M1)...
  std::string body = R"({"pad":")" + std::string(9 * 1024 * 1024, 'x') + R"(","usage":{"prompt_tokens":5,"completion_tokens":1}})";
  check_usage(run(ApiKind::openai_chat, false, body).usage, 5, 1, 0, 0);
  // ...but one before the last 256 KiB is not (the document is never parsed whole past 8 MiB), so
  // such a reply is charged its estimate.
  std::string early = R"({"usage":{"prompt_tokens":5,"completion_tokens":1},"pad":")" + std::string(9 * 1024 * 1024, 'x') + R"("})";
  CHECK_FALSE(run(ApiKind::openai_chat, false, early).usage.found);
}

TEST_CASE("proxy::UsageExtractor reads usage of other OpenAI endpoints (embeddings)") {
  auto r = run(ApiKind::other, false, R"({"object":"list","data":[],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}})");
  check_usage(r.usage, 8, 0, 0, 0);
  CHECK(r.model == "text-embedding-3-small");
}

TEST_CASE("proxy::inspect_request forces include_usage to true when the client says false") {
  // Without the usage chunk a stream can only be charged an estimate; the upstream bills it all
  // the same (issue 15).
  auto forced = [](std::string body) {
    auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
    CHECK(info.usage_requested_by_proxy);
    return body;
  };
  CHECK(forced(R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false}})") ==
        R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}})");
  CHECK(forced(R"({"model":"gpt-4o","stream":true,"stream_options":{"x":1, "include_usage" : false }})") ==
        R"({"model":"gpt-4o","stream":true,"stream_options":{"x":1, "include_usage" : true }})");
  // Any other value, too (the upstream would refuse it anyway).
  CHECK(forced(R"({"stream":true,"stream_options":{"include_usage":0}})") == R"({"stream":true,"stream_options":{"include_usage":true}})");
  // Duplicates: the last one is what parsers keep, and the one rewritten.
  auto body = forced(R"({"stream":true,"stream_options":{"include_usage":true,"include_usage":false}})");
  CHECK(json::parse(body)["stream_options"]["include_usage"] == true);
  body = forced(R"({"stream":true,"stream_options":{"include_usage":false},"stream_options":{"include_usage":false}})");
  CHECK(json::parse(body)["stream_options"]["include_usage"] == true);
  // Escaped key names are the same key to a JSON parser.
  body = forced(R"({"stream":true,"stream_options":{"include_usage":false}})");
  CHECK(json::parse(body)["stream_options"]["include_usage"] == true);
  // Already true: unchanged, and not counted as forced.
  std::string asked = R"({"stream":true,"stream_options":{"include_usage":true}})";
  auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", asked, true);
  CHECK_FALSE(info.usage_requested_by_proxy);
  CHECK(asked == R"({"stream":true,"stream_options":{"include_usage":true}})");
}

TEST_CASE("proxy::append_generated_text joins the model's text out of each API's stream events") {
  auto text_of = [](std::string_view event) {
    std::string out;
    append_generated_text(event, out);
    return out;
  };
  // Chat Completions: delta.content and tool calls' arguments; role, ids and models are not text.
  CHECK(text_of(R"({"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]})") == "Hel");
  CHECK(text_of(R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"sh","arguments":"{\"cmd\":\"ec"}}]}}]})") ==
        R"({"cmd":"ec)");
  CHECK(text_of(R"({"choices":[{"delta":{"content":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}})").empty());
  // Responses: the delta of output_text / function_call_arguments events.
  CHECK(text_of(R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"lo w"})") == "lo w");
  // Anthropic: text, partial_json and thinking deltas; the event type is not text.
  CHECK(text_of(R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"orld"}})") == "orld");
  CHECK(text_of(R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": \"b"}})") == R"({"a": "b)");
  CHECK(text_of(R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}})") == "hmm");
  // Gemini: parts[].text.
  CHECK(text_of(R"({"candidates":[{"content":{"parts":[{"text":"a"},{"text":"b"}],"role":"model"}}],"modelVersion":"gemini-2.5-flash"})") == "ab");
  // Escapes are decoded (a \u-escaped fragment is the same text to the client).
  CHECK(text_of(R"({"delta":{"text":"\u0041\"B\\"}})") == "A\"B\\");
  // Broken JSON: less, never a crash.
  CHECK(text_of(R"({"delta":{"text":"unterminated)").empty());
  CHECK(text_of(R"("text":)").empty());
  CHECK(text_of(R"({"text":"a","text")") == "a");
}

TEST_CASE("proxy::UsageExtractor hands out the generated text of a stream, event by event, when asked") {
  // A secret spelled three characters per event is whole only in the joined text (issue #19).
  std::string said;
  auto x = make_usage_extractor(ApiKind::openai_chat, true);
  x->collect_generated_text(&said);
  std::string joined;
  for (std::string_view piece : {"AKI", "AEX", "AMP", "LE0"}) {
    x->feed(R"(data: {"choices":[{"index":0,"delta":{"content":")");
    CHECK(said.empty());  // the event is not complete yet
    x->feed(std::string(piece) + "\"}}]}\n\n");
    CHECK(said == piece);
    joined += said;
    said.clear();
  }
  CHECK(joined == "AKIAEXAMPLE0");
  x->feed("data: [DONE]\n\n");
  CHECK(said.empty());
  // Gemini's JSON array stream: element by element.
  auto g = make_usage_extractor(ApiKind::gemini, false);
  g->collect_generated_text(&said);
  g->feed(R"([{"candidates":[{"content":{"parts":[{"text":"ab"}]}}]})");
  g->feed(R"(,{"candidates":[{"content":{"parts":[{"text":"cd"}]}}]}])");
  CHECK(said == "abcd");
  // Not asked: nothing collected, usage read as before.
  said.clear();
  auto quiet = make_usage_extractor(ApiKind::openai_chat, true);
  quiet->feed("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n");
  CHECK(said.empty());
}

TEST_CASE("proxy::inspect_request reads a gateway's fallback models") {
  std::string body = R"({"model":"a","models":["b","c"],"fallbacks":[{"model":"d"},"e"],"messages":[]})";
  auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true);
  CHECK(info.other_models == std::vector<std::string>{"b", "c", "d", "e"});
  CHECK_FALSE(info.other_models_unreadable);
  for (std::string odd : {R"({"model":"a","models":[7]})", R"({"model":"a","models":"b"})",
                          R"({"model":"a","fallbacks":[{"name":"x"}]})"}) {
    CHECK(inspect_request(ApiKind::openai_chat, "/v1/chat/completions", odd, true).other_models_unreadable);
  }
  std::string none = R"({"model":"a","models":null})";
  auto plain = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", none, true);
  CHECK(plain.other_models.empty());
  CHECK_FALSE(plain.other_models_unreadable);
}

TEST_CASE("proxy::UsageExtractor reads the usage at the end of a reply past 8 MiB") {
  // Review 15a M1: n choices with logprobs pass the 8 MiB kept of a reply; the usage after it was
  // never read and the request was charged its estimate.
  const std::string filler(12 * 1024 * 1024, 'x');
  const std::string chat = R"({"id":"c","model":"gpt-4o","choices":[{"index":0,"message":{"content":")" + filler +
                           R"("}}],"usage":{"prompt_tokens":11,"completion_tokens":9600},"system_fingerprint":"fp"})";
  check_usage(run(ApiKind::openai_chat, false, chat).usage, 11, 9600, 0, 0);
  // In many pieces, as a socket delivers it.
  auto x = make_usage_extractor(ApiKind::openai_chat, false);
  for (std::size_t at = 0; at < chat.size(); at += 65536) x->feed(std::string_view(chat).substr(at, 65536));
  check_usage(x->finish(), 11, 9600, 0, 0);
  const std::string gemini = R"({"candidates":[{"content":{"parts":[{"text":")" + filler +
                             R"("}]}}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":80,"totalTokenCount":85}})";
  check_usage(run(ApiKind::gemini, false, gemini).usage, 5, 80, 0, 0);
  const std::string messages = R"({"type":"message","content":[{"type":"text","text":")" + filler +
                               R"("}],"usage":{"input_tokens":3,"output_tokens":70}})";
  check_usage(run(ApiKind::anthropic_messages, false, messages).usage, 3, 70, 0, 0);
  // The model's text cannot pose as the usage: its quotes are escaped.
  const std::string posing = R"({"choices":[{"message":{"content":")" + filler +
                             R"(\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}"}}]})";
  CHECK_FALSE(run(ApiKind::openai_chat, false, posing).usage.found);
}

TEST_CASE("proxy::inspect_request asks legacy /completions streams for their usage too") {
  std::string body = R"({"model":"gpt-3.5-turbo-instruct","prompt":"hi","stream":true,"n":4})";
  auto info = inspect_request(ApiKind::other, "/v1/completions", body, true);
  CHECK(info.usage_requested_by_proxy);
  CHECK(body.find(R"("include_usage":true)") != std::string::npos);
  std::string other = R"({"model":"m","input":"hi","stream":true})";
  CHECK_FALSE(inspect_request(ApiKind::other, "/v1/embeddings", other, true).usage_requested_by_proxy);
}

TEST_CASE("proxy::UsageExtractor counts the provider's own paid tool calls") {
  // Review 15a T1: web searches are billed per call on top of the tokens.
  auto a = run(ApiKind::anthropic_messages, false,
               R"({"type":"message","model":"m","usage":{"input_tokens":3,"output_tokens":4,"server_tool_use":{"web_search_requests":20}}})");
  CHECK(a.usage.tool_calls == 20);
  auto r = run(ApiKind::openai_responses, false,
               R"({"object":"response","model":"m","output":[{"type":"web_search_call"},{"type":"file_search_call"},{"type":"message"}],"usage":{"input_tokens":1,"output_tokens":2}})");
  CHECK(r.usage.tool_calls == 2);
  auto g = run(ApiKind::gemini, false,
               R"({"candidates":[{"groundingMetadata":{"webSearchQueries":["a","b","c"]}}],"usageMetadata":{"promptTokenCount":1}})");
  CHECK(g.usage.tool_calls == 3);
  std::string body = R"({"model":"m","tools":[{"type":"web_search_20250305","max_uses":7},{"type":"web_search"},{"google_search":{}},{"type":"function","name":"f"}]})";
  // Google's tool names count on Gemini requests only (one scan per tool: review 15e E6).
  CHECK(inspect_request(ApiKind::openai_chat, "/v1/chat/completions", body, true).tool_calls == 7 + kDefaultToolCalls);
  std::string gemini = R"({"tools":[{"google_search":{}},{"functionDeclarations":[]}]})";
  CHECK(inspect_request(ApiKind::gemini, "/v1beta/models/g:generateContent", gemini, true).tool_calls == kDefaultToolCalls);
}

TEST_CASE("proxy::UsageExtractor reads the usage at the end of a stream event past 1 MiB") {
  // A Responses stream's response.completed echoes the request's instructions and tools: with
  // long ones the event passes the 1 MiB an event may take, and was skipped whole (review 15a).
  const std::string instructions(3 * 1024 * 1024, 'i');
  const std::string stream =
      "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\n\n"
      "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"instructions\":\"" + instructions +
      "\",\"output\":[{\"type\":\"web_search_call\"}],\"usage\":{\"input_tokens\":700000,\"output_tokens\":42}}}\n\n";
  check_usage(run(ApiKind::openai_responses, true, stream).usage, 700000, 42, 0, 0);
  check_usage(run_split(ApiKind::openai_responses, true, stream, stream.size() / 2).usage, 700000, 42, 0, 0);
  // The events after it are read as ever.
  auto x = make_usage_extractor(ApiKind::openai_chat, true);
  x->feed("data: {\"pad\":\"" + instructions + "\"}\n\n");
  x->feed("data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n");
  check_usage(x->finish(), 3, 4, 0, 0);
}

TEST_CASE("proxy::UsageExtractor keeps the paid calls of a Responses stream whose final event is too big") {
  // Review 15d M1: instructions echoed in response.completed made it pass 1 MiB; the searches
  // in it were lost with it. They are counted from the output_item.done events as they come.
  std::string stream;
  for (int i = 0; i < 100; ++i)
    stream += "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"web_search_call\",\"id\":\"ws" +
              std::to_string(i) + "\"}}\n\n";
  stream += "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"instructions\":\"" +
            std::string(2 * 1024 * 1024, 'i') + "\",\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}}\n\n";
  auto u = run(ApiKind::openai_responses, true, stream).usage;
  check_usage(u, 5, 6, 0, 0);
  CHECK(u.tool_calls == 100);
  // Review 15d M2: code interpreter calls, Maps grounding, a chat request that asks to search.
  auto r = run(ApiKind::openai_responses, false,
               R"({"output":[{"type":"code_interpreter_call"}],"usage":{"input_tokens":1,"output_tokens":1}})");
  CHECK(r.usage.tool_calls == 1);
  auto g = run(ApiKind::gemini, false, R"({"candidates":[{"groundingMetadata":{"groundingChunks":[{"maps":{}}]}}],"usageMetadata":{"promptTokenCount":1}})");
  CHECK(g.usage.tool_calls == 1);
  std::string chat = R"({"model":"gpt-4o-search-preview","web_search_options":{},"messages":[]})";
  auto info = inspect_request(ApiKind::openai_chat, "/v1/chat/completions", chat, true);
  CHECK(info.min_tool_calls == 1);
  CHECK(info.tool_calls == 1);
  std::string maps = R"({"tools":[{"googleMaps":{}}]})";
  CHECK(inspect_request(ApiKind::gemini, "/v1beta/models/g:generateContent", maps, true).tool_calls == kDefaultToolCalls);
}

TEST_CASE("proxy::UsageExtractor finds a usage that straddles the 8 MiB cap, and takes only the last usage key") {
  // Review 15e E4: the tail began at the cap, so a usage object across it was lost.
  std::string reply = R"({"choices":[{"message":{"content":")";
  const std::string tail_part = R"("}}],"usage":{"prompt_tokens":7,"completion_tokens":8}})";
  reply += std::string(8 * 1024 * 1024 - reply.size() - 20, 'x') + tail_part;
  REQUIRE(reply.size() > 8 * 1024 * 1024);
  check_usage(run(ApiKind::openai_chat, false, reply).usage, 7, 8, 0, 0);
  // Review 15e E5: the last usage key is null; an earlier one (an echoed tool schema's) is not taken.
  const std::string echoed = R"({"pad":")" + std::string(9 * 1024 * 1024, 'y') +
                             R"(","tools":[{"schema":{"usage":{"prompt_tokens":0,"completion_tokens":0}}}],"usage":null})";
  CHECK_FALSE(run(ApiKind::openai_chat, false, echoed).usage.found);
}

TEST_CASE("proxy::Usage::total saturates") {
  Usage u;
  u.input_tokens = std::numeric_limits<std::int64_t>::max();
  u.output_tokens = 5;
  CHECK(u.total() == std::numeric_limits<std::int64_t>::max());
}
