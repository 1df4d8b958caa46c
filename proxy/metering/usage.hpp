#pragma once
// Token usage, read from provider responses without buffering whole streams.
//
// Formats understood: OpenAI Chat Completions (JSON `usage`, and the final SSE chunk with
// `usage` when stream_options.include_usage is set), OpenAI Responses (`response.completed` event /
// JSON `usage`), Anthropic Messages (`message_start` + `message_delta` events / JSON `usage`),
// Gemini (`usageMetadata`, in JSON and in every streamed chunk: the last one wins).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/providers.hpp"

namespace tokfence::proxy {

enum class ApiKind { openai_chat, openai_responses, anthropic_messages, gemini, other };

struct Usage {
  std::int64_t input_tokens = 0;        // uncached prompt tokens billed at the input price
  std::int64_t output_tokens = 0;       // incl. reasoning tokens
  std::int64_t cache_read_tokens = 0;
  std::int64_t cache_write_tokens = 0;
  // Calls of tools the provider runs itself and bills per call, as the answer reports them:
  // Anthropic's server_tool_use.web_search_requests, OpenAI Responses' web_search_call and
  // file_search_call output items, Gemini's grounding queries (webSearchQueries).
  std::int64_t tool_calls = 0;
  bool found = false;                   // false: the response carried no usage at all
  // Saturates instead of overflowing: the counts come from clients' max_tokens and upstreams' reports.
  std::int64_t total() const {
    std::int64_t sum = 0;
    for (std::int64_t part : {input_tokens, output_tokens, cache_read_tokens, cache_write_tokens})
      if (__builtin_add_overflow(sum, std::max<std::int64_t>(part, 0), &sum)) return std::numeric_limits<std::int64_t>::max();
    return sum;
  }
};

// Which API a request speaks, from the provider's style and the path after /<provider>.
ApiKind classify(ApiStyle style, std::string_view path);

// The model a Gemini-style path names, `.../models/<m>:<method>` or `.../tunedModels/<m>:<method>`,
// for every method (generateContent, predict, predictLongRunning, embedContent, ...); "" for
// other styles and paths. Google routes such a request by this model whatever the body's "model"
// says, so it is the request's model (a session's model scope judges it, not the body's).
std::string path_model(ApiStyle style, std::string_view path);

// What the proxy learns from (and may change in) a request body before forwarding it.
// OpenAI's limit on `n` (128); more is refused upstream, and an unreadable count is taken as this.
inline constexpr std::int64_t kMaxEstimatedChoices = 128;
// A paid server-side tool without a stated limit (OpenAI's web_search, Gemini's google_search,
// Anthropic's web_search without max_uses) is estimated at this many calls per request.
inline constexpr std::int64_t kDefaultToolCalls = 10;
// More than this many per tool (a max_uses of a billion) is estimated as this many.
inline constexpr std::int64_t kMaxEstimatedToolCalls = 10'000;

struct RequestInfo {
  std::string model;         // "" when absent (Gemini: taken from the path)
  bool streaming = false;    // stream=true, or Gemini :streamGenerateContent
  std::int64_t max_output_tokens = 0;  // max_tokens / max_output_tokens / max_completion_tokens, 0 = unset
  // Answers generated per request (n, best_of, candidateCount; at least 1, at most
  // kMaxEstimatedChoices): each may run to max_output_tokens, so the estimate multiplies by it.
  std::int64_t choices = 1;
  // Calls of the provider's own paid tools the request allows (Anthropic `max_uses`, else
  // kDefaultToolCalls for each such tool): part of the estimate.
  std::int64_t tool_calls = 0;
  // Paid calls the request is billed for whatever the answer says (Chat Completions'
  // web_search_options: one); the answer's count is raised to it.
  std::int64_t min_tool_calls = 0;
  // Models a gateway may answer with instead (OpenRouter's `models` fallback list, LiteLLM-style
  // `fallbacks`: strings or {"model": ...}); `other_models_unreadable` when an entry is neither.
  // A session limited to some models must allow each of them too (review 15a O1).
  std::vector<std::string> other_models;
  bool other_models_unreadable = false;
  std::int64_t estimated_input_tokens = 0;  // rough: body bytes / 4
  bool usage_requested_by_proxy = false;  // include_usage was added or forced to true (see below)
  // Responses' "background": true: answered at once ("queued", usage null); the provider runs and
  // bills it later, and its usage is only ever in GET /v1/responses/<id>: this answer cannot pay.
  bool background = false;
};

// Inspects a JSON request body. When `inject_stream_usage` is set and this is a streaming OpenAI
// chat request whose stream_options.include_usage is not true, `body` is rewritten to ask for the
// usage chunk: stream_options or include_usage spliced in, or an explicit `false` (or any other
// value) overwritten with `true`; everything else stays byte for byte as sent. Forced because the
// upstream bills the stream whether or not the client wants to see the usage, and a stream
// without it can only be charged an estimate. The client then receives that last chunk (`choices:
// []`, `usage: {...}`) even when it asked for none: the official SDKs accept it (docs/CONTROLS.md).
// Never fails: a body that is not JSON yields a RequestInfo with what the path tells.
RequestInfo inspect_request(ApiKind kind, std::string_view path, std::string& body, bool inject_stream_usage);

// Fed the response body piece by piece, as it is relayed. Memory stays bounded for SSE (one event
// at a time) and for JSON (capped copy; usage past the cap is not found).
class UsageExtractor {
 public:
  virtual ~UsageExtractor() = default;
  virtual void feed(std::string_view bytes) = 0;
  virtual Usage finish() = 0;
  // The model the response names (may differ from the request, e.g. a dated snapshot).
  virtual std::string response_model() const = 0;
  // Also hands out the text the model generates, as it streams: after each feed(), `*sink` has
  // the decoded text of the events (SSE) or array elements (Gemini's JSON stream) completed in it
  // appended; the caller reads and clears it. Why: a model repeating a secret streams it a few
  // characters per event, split by JSON, so only the joined text shows it whole (ImmuneFence's
  // response scan). A whole JSON body needs none of this: its text is contiguous in the bytes.
  virtual void collect_generated_text(std::string* sink) { (void)sink; }  // default: reads no text
};

// Appends to `out` the decoded string values of the members that carry generated text in one
// event's JSON: Chat Completions `content` and tool calls' `arguments`, Responses' `delta`,
// Anthropic's `text`, `partial_json` and `thinking`, Gemini's `text`; `refusal` too. Lenient:
// broken JSON yields less, never a read past `event`.
void append_generated_text(std::string_view event, std::string& out);

// `event_stream` = the response's content-type is text/event-stream.
std::unique_ptr<UsageExtractor> make_usage_extractor(ApiKind kind, bool event_stream);

}  // namespace tokfence::proxy
