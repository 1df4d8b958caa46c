// Usage extraction. The proxy relays every response byte as it arrives and hands the same bytes to
// an extractor; the extractor must therefore cope with any split (a line, a CRLF or a UTF-8
// sequence cut in two), keep memory bounded whatever the upstream sends, and never throw: a
// malformed body costs us the token count, never the response.
//
// SSE: a line assembler + event assembler per the WHATWG rules (LF, CR or CRLF line ends, `data:`
// lines joined with "\n", a blank line dispatches). An event whose text passes kMaxEventBytes is
// dropped whole. Only events that can carry usage (or the model, until we know it) are parsed.
// JSON: a capped copy parsed at the end, except top-level arrays (Gemini's non-SSE stream), whose
// elements are cut out and parsed one at a time.
#include "proxy/metering/usage.hpp"

#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace tokfence::proxy {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxEventBytes = 1024 * 1024;
constexpr std::size_t kMaxJsonBytes = 8 * 1024 * 1024;
// Past kMaxJsonBytes only this much of a JSON reply's end is kept, to find its usage there: the
// top-level usage is the last member but a few small ones (review 15a M1: n choices with logprobs
// passed 8 MiB, and the usage after it went unread).
constexpr std::size_t kMaxJsonTailBytes = 256 * 1024;
// The name SseParser gives the tail of an event past kMaxEventBytes.
constexpr std::string_view kOversizedEvent = "\x01oversized";

std::string_view strip_query(std::string_view path) { return path.substr(0, path.find('?')); }

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

json parse(std::string_view text) { return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false); }

// --- Reading JSON text without parsing all of it -------------------------------------------------
// Request bodies run to megabytes of conversation, and replies carry long completions; the proxy
// needs a handful of small members of either. So members are found by scanning an object's text,
// skipping values (strings, nested objects and arrays) without building them, and only the small
// values wanted are parsed (nlohmann, which also validates them). A DOM parse of every body cost
// more CPU than everything else the proxy does per request. The scan is lenient: broken JSON
// yields fewer or odd members, never a crash or a read past the text.

std::size_t skip_ws(std::string_view t, std::size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n')) ++i;
  return i;
}

// True when `text` has `"key"` followed by `:` and an object: cheap filter that lets most stream
// events (text deltas, `"usage": null`) pass without a JSON parse.
bool has_object_member(std::string_view text, std::string_view quoted_key) {
  for (std::size_t pos = text.find(quoted_key); pos != std::string_view::npos; pos = text.find(quoted_key, pos + 1)) {
    std::size_t i = skip_ws(text, pos + quoted_key.size());
    if (i >= text.size() || text[i] != ':') continue;
    i = skip_ws(text, i + 1);
    if (i < text.size() && text[i] == '{') return true;
  }
  return false;
}

std::size_t skip_string(std::string_view t, std::size_t i) {  // t[i] == '"'
  // memchr to the next quote (conversation text is most of a body), then count the backslashes
  // before it: an odd number escapes it.
  const char* base = t.data();
  for (++i; i < t.size();) {
    const void* q = std::memchr(base + i, '"', t.size() - i);
    if (!q) return t.size();
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(q) - base);
    std::size_t slashes = 0;
    while (at - slashes > i && base[at - slashes - 1] == '\\') ++slashes;
    if (slashes % 2 == 0) return at + 1;
    i = at + 1;
  }
  return t.size();
}

std::size_t skip_value(std::string_view t, std::size_t i) {
  if (i >= t.size()) return i;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') {
        i = skip_string(t, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' && t[i] != '\r' &&
         t[i] != '\n')
    ++i;
  return i;
}

struct Span {
  std::size_t begin, end;
};

// Whether a quoted key (with its quotes) names `key`; escapes are decoded only when present.
bool key_is(std::string_view quoted, std::string_view key) {
  if (quoted.size() < 2) return false;
  std::string_view raw = quoted.substr(1, quoted.size() - 2);
  if (raw.find('\\') == std::string_view::npos) return raw == key;
  json name = parse(quoted);
  return name.is_string() && name.get_ref<const std::string&>() == key;
}

// One pass over the members of the object that `t` holds: found[k] is the position of the value
// of the last member named keys[k] (as in nlohmann, the last duplicate wins). All nullopt when
// `t` is no object.
template <std::size_t N>
std::array<std::optional<Span>, N> find_members(std::string_view t, const std::array<std::string_view, N>& keys) {
  std::array<std::optional<Span>, N> found;
  std::size_t i = skip_ws(t, 0);
  if (i >= t.size() || t[i] != '{') return found;
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    std::size_t key_end = skip_string(t, i);
    std::string_view quoted = t.substr(i, key_end - i);
    i = skip_ws(t, key_end);
    if (i >= t.size() || t[i] != ':') return found;
    i = skip_ws(t, i + 1);
    std::size_t value_end = skip_value(t, i);
    // Keys almost never hold escapes: compared as raw bytes then, decoded only when they do.
    std::string_view raw = quoted.size() >= 2 ? quoted.substr(1, quoted.size() - 2) : std::string_view();
    const bool escaped = raw.find('\\') != std::string_view::npos;
    for (std::size_t k = 0; k < N; ++k)
      if (escaped ? key_is(quoted, keys[k]) : raw == keys[k]) found[k] = Span{i, value_end};
    i = skip_ws(t, value_end);
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
  return found;
}

std::optional<Span> find_member_value(std::string_view t, std::string_view key) {
  return find_members<1>(t, {key})[0];
}

std::string_view text_of(std::string_view t, const std::optional<Span>& span) {
  return span ? t.substr(span->begin, span->end - span->begin) : std::string_view{};
}

// The text of member `key` of the object in `t` ("" when absent).
std::string_view member_text(std::string_view t, std::string_view key) { return text_of(t, find_member_value(t, key)); }

// The texts of several members, in one pass.
template <std::size_t N>
std::array<std::string_view, N> member_texts(std::string_view t, const std::array<std::string_view, N>& keys) {
  auto spans = find_members(t, keys);
  std::array<std::string_view, N> out;
  for (std::size_t k = 0; k < N; ++k) out[k] = text_of(t, spans[k]);
  return out;
}

bool is_object_text(std::string_view t) { return !t.empty() && t.front() == '{'; }

// Small values, parsed (and validated) on their own.
json value_of(std::string_view t) { return t.empty() ? json(json::value_t::discarded) : parse(t); }

std::optional<std::string> string_value(std::string_view t) {
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"' && t.find('\\') == std::string_view::npos)
    return std::string(t.substr(1, t.size() - 2));
  json v = value_of(t);
  if (v.is_string()) return v.get<std::string>();
  return std::nullopt;
}

// Whether a request's "stream" member asks for a stream, as lax servers read it: pydantic (vLLM,
// LiteLLM) takes 1, "true", "yes", "on", "1" as true (review 12b: "stream": 1 streamed upstream and
// was metered as one answer, without include_usage forced). false, null, 0 and their spellings are
// a single answer; any other value is taken as a stream, so include_usage is forced rather than
// the stream going unmetered (the upstream refuses what it cannot read either way).
std::optional<bool> stream_requested(std::string_view t) {
  if (t.empty()) return std::nullopt;  // absent
  if (t == "true") return true;
  if (t == "false" || t == "null") return false;
  std::string word;
  if (auto text = string_value(t)) {
    word = *text;
  } else if (auto n = value_of(t); n.is_number()) {
    return n.get<double>() != 0;
  } else {
    return true;
  }
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view no : {"false", "0", "no", "off", "f", "n"})
    if (word == no) return false;
  return true;
}

// A token count from the text of a JSON value: non-negative numbers only (fractions cut, huge
// values capped at INT64_MAX as far as they are exact integers); strings, negatives, non-finite
// and malformed numbers are absent. Usage objects are read this way, without a parser: the usage
// of every response is read, and a DOM parse of it cost more than the rest of the request.
std::optional<std::int64_t> count_value(std::string_view t) {
  if (t.empty() || t.front() == '-') return std::nullopt;
  std::size_t digits = 0;
  while (digits < t.size() && t[digits] >= '0' && t[digits] <= '9') ++digits;
  if (digits == 0) return std::nullopt;
  if (digits == t.size()) {
    if (t.size() > 1 && t.front() == '0') return std::nullopt;  // JSON has no leading zeros
    std::uint64_t v = 0;
    for (char c : t) {
      auto d = static_cast<std::uint64_t>(c - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;  // as a double: > 9e18
      v = v * 10 + d;
    }
    return static_cast<std::int64_t>(std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
  }
  // A fraction or an exponent: checked as JSON by nlohmann, then taken as a double.
  json v = value_of(t);
  if (!v.is_number_float()) return std::nullopt;
  double d = v.get<double>();
  if (!std::isfinite(d) || d < 0 || d > 9e18) return std::nullopt;
  return static_cast<std::int64_t>(d);
}

std::int64_t count_or(std::string_view t, std::int64_t fallback = 0) { return count_value(t).value_or(fallback); }

// Calls `fn` with the text of each element of the array in `t`.
template <class Fn>
void for_each_element(std::string_view t, Fn&& fn) {
  std::size_t i = skip_ws(t, 0);
  if (i >= t.size() || t[i] != '[') return;
  i = skip_ws(t, i + 1);
  while (i < t.size() && t[i] != ']') {
    std::size_t end = skip_value(t, i);
    if (end == i) return;  // not a value: stop rather than loop
    fn(t.substr(i, end - i));
    i = skip_ws(t, end);
    if (i < t.size() && t[i] == ',') i = skip_ws(t, i + 1);
  }
}

// OpenAI-style usage objects (the text of one): Chat Completions (prompt_/completion_tokens),
// Responses (input_/output_tokens), and the compatible providers' variants (DeepSeek's cache-hit
// counters). Prompt counts include cached tokens there; ours exclude them.
Usage read_openai_usage(std::string_view u) {
  Usage out;
  out.found = true;
  std::int64_t prompt = 0, cached = 0;
  enum { prompt_tokens, completion_tokens, prompt_details, cache_hit, input_tokens, output_tokens, input_details };
  auto m = member_texts<7>(u, {"prompt_tokens", "completion_tokens", "prompt_tokens_details", "prompt_cache_hit_tokens",
                               "input_tokens", "output_tokens", "input_tokens_details"});
  if (!m[prompt_tokens].empty() || !m[completion_tokens].empty()) {
    prompt = count_or(m[prompt_tokens]);
    out.output_tokens = count_or(m[completion_tokens]);
    if (auto c = count_value(member_text(m[prompt_details], "cached_tokens")))
      cached = *c;
    else
      cached = count_or(m[cache_hit]);
  } else {
    prompt = count_or(m[input_tokens]);
    out.output_tokens = count_or(m[output_tokens]);
    cached = count_or(member_text(m[input_details], "cached_tokens"));
  }
  cached = std::min(cached, prompt);
  out.input_tokens = prompt - cached;
  out.cache_read_tokens = cached;
  return out;
}

// Anthropic usage: input_tokens already excludes cache reads and writes.
void read_anthropic_usage(std::string_view u, Usage& out, bool cumulative_update) {
  auto m = member_texts<5>(u, {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                               "server_tool_use"});
  auto set = [&](std::int64_t& field, std::string_view text) {
    if (auto v = count_value(text)) field = cumulative_update ? std::max(field, *v) : *v;
  };
  set(out.input_tokens, m[0]);
  set(out.output_tokens, m[1]);
  set(out.cache_read_tokens, m[2]);
  set(out.cache_write_tokens, m[3]);
  // Web searches are billed per search; web fetches only by their tokens.
  set(out.tool_calls, member_text(m[4], "web_search_requests"));
  out.found = true;
}

// Gemini usageMetadata: promptTokenCount includes cachedContentTokenCount; thoughts are billed as
// output; tool-use prompt tokens as input.
Usage read_gemini_usage(std::string_view u) {
  Usage out;
  out.found = true;
  auto m = member_texts<5>(u, {"promptTokenCount", "cachedContentTokenCount", "toolUsePromptTokenCount",
                               "candidatesTokenCount", "thoughtsTokenCount"});
  auto prompt = count_or(m[0]);
  auto cached = std::min(count_or(m[1]), prompt);
  out.input_tokens = prompt - cached + count_or(m[2]);
  out.cache_read_tokens = cached;
  out.output_tokens = count_or(m[3]) + count_or(m[4]);
  return out;
}

bool is_generated_text_key(std::string_view quoted) {
  static constexpr std::array<std::string_view, 7> kKeys = {"content", "text", "delta", "arguments", "partial_json",
                                                            "thinking", "refusal"};
  for (auto key : kKeys)
    if (key_is(quoted, key)) return true;
  return false;
}

}  // namespace

void append_generated_text(std::string_view t, std::string& out) {
  // Every string in the text is either a key (followed by ':') or a value; nested objects and
  // arrays are walked into, since the wanted members sit at different depths in each API.
  for (std::size_t i = 0; i < t.size();) {
    const void* quote = std::memchr(t.data() + i, '"', t.size() - i);
    if (!quote) return;
    const std::size_t start = static_cast<std::size_t>(static_cast<const char*>(quote) - t.data());
    const std::size_t end = skip_string(t, start);
    std::size_t next = skip_ws(t, end);
    if (next >= t.size() || t[next] != ':') {
      i = end;  // a value, or the text's end
      continue;
    }
    const std::string_view key = t.substr(start, end - start);
    next = skip_ws(t, next + 1);
    if (next < t.size() && t[next] == '"' && is_generated_text_key(key)) {
      const std::size_t value_end = skip_string(t, next);
      if (auto text = string_value(t.substr(next, value_end - next))) out += *text;
      i = value_end;
      continue;
    }
    i = next;
  }
}

namespace {

// The last kMaxJsonTailBytes of what was appended to it (at most twice that held between trims).
class Tail {
 public:
  void append(std::string_view more) {
    if (more.size() >= kMaxJsonTailBytes) {
      text_.assign(more.substr(more.size() - kMaxJsonTailBytes));
      return;
    }
    // Trimmed in batches, not on every piece: one move per kMaxJsonTailBytes appended.
    if (text_.size() + more.size() > 2 * kMaxJsonTailBytes) text_.erase(0, text_.size() - (kMaxJsonTailBytes - more.size()));
    text_.append(more);
  }
  std::string_view view() const { return text_; }
  std::string take() { return std::exchange(text_, std::string()); }

 private:
  std::string text_;
};

// Incremental SSE parser: bytes in, (event, data) out. Memory: at most kMaxEventBytes of pending
// text; a bigger event is skipped.
class SseParser {
 public:
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    std::size_t i = 0;
    const std::size_t n = bytes.size();
    while (i < n) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (bytes[i] == '\n') {
          ++i;
          continue;
        }
      }
      // The rest of the line is taken in one piece, not a character at a time.
      std::size_t end = i;
      while (end < n && bytes[end] != '\r' && bytes[end] != '\n') ++end;
      if (end > i) {
        line_seen_ = true;
        if (!oversized_) {
          if (line_.size() + data_.size() + (end - i) > kMaxEventBytes) {
            oversized_ = true;
            // Its end is kept: a Responses stream's response.completed echoes the request's
            // instructions and tools and may pass the cap, and its usage is near the end.
            tail_.append(data_);
            tail_.append(line_);
            line_.clear();
            data_.clear();
            tail_.append(bytes.substr(i, end - i));
          } else {
            line_.append(bytes.substr(i, end - i));
          }
        } else {
          tail_.append(bytes.substr(i, end - i));
        }
      }
      if (end == n) break;
      skip_lf_ = bytes[end] == '\r';
      end_line(on_event);
      i = end + 1;
    }
  }

  // A stream that ends without a final blank line still delivers its last event.
  template <class OnEvent>
  void finish(OnEvent&& on_event) {
    if (line_seen_) end_line(on_event);
    end_line(on_event);
  }

 private:
  std::string line_, event_, data_;
  Tail tail_;
  // line_seen_: the current line has characters, even if an oversized event made us drop them.
  bool have_data_ = false, skip_lf_ = false, oversized_ = false, line_seen_ = false;

  template <class OnEvent>
  void end_line(OnEvent& on_event) {
    bool blank = !line_seen_;
    line_seen_ = false;
    if (blank) {
      if (have_data_ && !oversized_) on_event(std::string_view(event_), std::string_view(data_));
      // An event past the cap: its last kMaxJsonTailBytes (its lines' text run together), in
      // its place in the stream, under a name no server sends (it holds a control character).
      if (oversized_) {
        const std::string tail = tail_.take();
        on_event(kOversizedEvent, std::string_view(tail));
      }
      event_.clear();
      data_.clear();
      have_data_ = false;
      oversized_ = false;
      return;
    }
    if (oversized_) {
      line_.clear();
      return;
    }
    std::string_view line(line_);
    if (line.front() != ':') {  // ':' starts a comment
      auto colon = line.find(':');
      std::string_view field = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (field == "data") {
        if (have_data_) data_.push_back('\n');
        data_.append(value);
        have_data_ = true;
      } else if (field == "event") {
        event_.assign(value);
      }
    }
    line_.clear();
  }
};

// Cuts the elements out of a top-level JSON array as they arrive (Gemini's streamed array), or
// keeps a capped copy of any other document.
class JsonCollector {
 public:
  template <class OnDocument>
  void feed(std::string_view bytes, OnDocument&& on_doc) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      char ch = bytes[i];
      if (mode_ == Mode::unknown) {
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
        mode_ = ch == '[' ? Mode::array : Mode::whole;
        if (mode_ == Mode::array) continue;
      }
      if (mode_ == Mode::whole) {
        // The rest of the piece in one append, up to the cap; past it, only the last
        // kMaxJsonTailBytes are kept (the usage is the document's last member).
        std::size_t room = kMaxJsonBytes - std::min(text_.size(), kMaxJsonBytes);
        std::size_t take = std::min(room, bytes.size() - i);
        text_.append(bytes.substr(i, take));
        if (take < bytes.size() - i) {
          // The first time past the cap, the tail starts with the end of what was kept: a usage
          // object that straddles the cap is whole in it (review 15e E4).
          if (!truncated_) tail_.append(std::string_view(text_).substr(text_.size() - std::min(text_.size(), kMaxJsonTailBytes)));
          truncated_ = true;
          tail_.append(bytes.substr(i + take));
        }
        return;
      }
      array_byte(ch, on_doc);
    }
  }

  template <class OnDocument>
  void finish(OnDocument&& on_doc) {
    if (mode_ == Mode::whole && !truncated_) on_doc(std::string_view(text_));
  }

  bool whole_and_intact() const { return mode_ == Mode::whole && !truncated_; }
  std::string_view whole_text() const { return text_; }
  // A whole document past the cap: its last bytes ("" otherwise).
  std::string_view tail() const { return truncated_ ? tail_.view() : std::string_view(); }

 private:
  enum class Mode { unknown, whole, array } mode_ = Mode::unknown;
  std::string text_;
  Tail tail_;
  bool truncated_ = false;
  // Array mode: depth inside the current element, string state.
  int depth_ = 0;
  bool in_string_ = false, escape_ = false, element_oversized_ = false;

  template <class OnDocument>
  void array_byte(char ch, OnDocument& on_doc) {
    if (depth_ == 0) {
      // Between elements: only structure and whitespace; scalars are of no interest.
      if (ch == '{' || ch == '[') {
        depth_ = 1;
        text_.assign(1, ch);
        element_oversized_ = false;
      }
      return;
    }
    if (!element_oversized_) {
      if (text_.size() >= kMaxEventBytes) {
        element_oversized_ = true;
        text_.clear();
      } else {
        text_.push_back(ch);
      }
    }
    if (in_string_) {
      if (escape_)
        escape_ = false;
      else if (ch == '\\')
        escape_ = true;
      else if (ch == '"')
        in_string_ = false;
      return;
    }
    if (ch == '"') {
      in_string_ = true;
    } else if (ch == '{' || ch == '[') {
      ++depth_;
    } else if (ch == '}' || ch == ']') {
      if (--depth_ == 0) {
        if (!element_oversized_) on_doc(std::string_view(text_));
        text_.clear();
      }
    }
  }
};

// The Responses output items the provider bills per call (a code interpreter per container: one
// container a call at the most).
constexpr std::array<std::string_view, 3> kPaidResponsesItems = {"web_search_call", "file_search_call",
                                                                 "code_interpreter_call"};

bool is_paid_responses_item(std::string_view type) {
  return std::find(kPaidResponsesItems.begin(), kPaidResponsesItems.end(), type) != kPaidResponsesItems.end();
}

// Paid tool calls in a Responses object's `output`.
std::int64_t responses_tool_calls(std::string_view output) {
  std::int64_t calls = 0;
  for_each_element(output, [&](std::string_view item) {
    if (is_paid_responses_item(string_value(member_text(item, "type")).value_or(""))) ++calls;
  });
  return calls;
}

// The same in text that could not be parsed whole (the end of a reply or event past its cap):
// each `"type":"<paid item>"` in it. The model's own text cannot pose as one: its quotes are escaped.
std::int64_t responses_tool_calls_in_text(std::string_view text) {
  std::int64_t calls = 0;
  for (auto item : kPaidResponsesItems) {
    const std::string needle = "\"type\":\"" + std::string(item) + "\"";
    for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++calls;
  }
  return calls;
}

// Grounding in a Gemini answer: the webSearchQueries of each candidate's groundingMetadata
// (Google bills grounded prompts, or each query on newer models), and a grounded candidate without
// queries (Maps grounding) as one.
std::int64_t gemini_tool_calls(std::string_view candidates) {
  std::int64_t calls = 0;
  for_each_element(candidates, [&](std::string_view candidate) {
    const std::string_view grounding = member_text(candidate, "groundingMetadata");
    if (!is_object_text(grounding)) return;
    std::int64_t queries = 0, chunks = 0;
    for_each_element(member_text(grounding, "webSearchQueries"), [&](std::string_view) { ++queries; });
    for_each_element(member_text(grounding, "groundingChunks"), [&](std::string_view) { ++chunks; });
    // An empty groundingMetadata grounded nothing (review 15e E8).
    calls += queries > 0 ? queries : chunks > 0 ? 1 : 0;
  });
  return calls;
}

class Extractor final : public UsageExtractor {
 public:
  Extractor(ApiKind kind, bool event_stream) : kind_(kind), event_stream_(event_stream) {}

  void feed(std::string_view bytes) override {
    try {
      if (event_stream_)
        sse_.feed(bytes, [this](std::string_view event, std::string_view data) { on_event(event, data); });
      else
        json_.feed(bytes, [this](std::string_view element) {
          if (text_sink_) append_generated_text(element, *text_sink_);
          on_document(element);
        });
    } catch (...) {
      // Out of memory or a library surprise: stop counting, keep relaying.
      failed_ = true;
    }
  }

  Usage finish() override {
    try {
      if (event_stream_) {
        sse_.finish([this](std::string_view event, std::string_view data) { on_event(event, data); });
      } else {
        json_.finish([this](std::string_view doc) { on_document(doc); });
        if (!usage_.found && !json_.tail().empty()) usage_from_tail(json_.tail());
        // Some servers send SSE without saying so; give the text a second chance.
        if (!usage_.found && json_.whole_and_intact()) {
          auto text = json_.whole_text();
          auto first = text.find_first_not_of(" \t\r\n");
          if (first != std::string_view::npos && (text.substr(first).starts_with("data:") || text.substr(first).starts_with("event:"))) {
            SseParser again;
            auto cb = [this](std::string_view event, std::string_view data) { on_event(event, data); };
            again.feed(text, cb);
            again.finish(cb);
          }
        }
      }
    } catch (...) {
      failed_ = true;
    }
    // Whatever reset the usage last (a later usage object, a tail), the most paid calls seen stand.
    usage_.tool_calls = std::max(usage_.tool_calls, tool_calls_seen_);
    return usage_;
  }

  std::string response_model() const override { return model_; }

  void collect_generated_text(std::string* sink) override { text_sink_ = sink; }

 private:
  ApiKind kind_;
  bool event_stream_;
  SseParser sse_;
  JsonCollector json_;
  Usage usage_;
  std::string model_;
  bool failed_ = false;
  std::string* text_sink_ = nullptr;
  // Paid tool calls seen anywhere in the answer (a streamed item, a tail): usage_ may be reset by
  // a later usage object that does not list them.
  std::int64_t tool_calls_seen_ = 0, streamed_items_ = 0;

  void on_event(std::string_view event, std::string_view data) {
    if (failed_ || data.empty() || data == "[DONE]") return;
    if (event == kOversizedEvent) return oversized_event(data);
    // A Responses stream announces every finished output item on its own: a paid call is counted
    // there too, so a final event too big to read does not lose it (review 15d M1).
    if (kind_ == ApiKind::openai_responses && (event.empty() || event == "response.output_item.done") &&
        data.find("\"response.output_item.done\"") != std::string_view::npos &&
        is_paid_responses_item(string_value(member_text(member_text(data, "item"), "type")).value_or("")))
      ++streamed_items_;
    tool_calls_seen_ = std::max(tool_calls_seen_, streamed_items_);
    if (text_sink_) append_generated_text(data, *text_sink_);
    bool interesting = model_.empty();
    switch (kind_) {
      case ApiKind::gemini:
        interesting = interesting || has_object_member(data, "\"usageMetadata\"") ||
                      data.find("\"groundingMetadata\"") != std::string_view::npos;
        break;
      case ApiKind::anthropic_messages:
        interesting = interesting || event == "message_start" || event == "message_delta" ||
                      has_object_member(data, "\"usage\"");
        break;
      default: interesting = interesting || has_object_member(data, "\"usage\""); break;
    }
    if (!interesting) return;
    on_document(data);
  }

  void on_document(std::string_view text) {
    if (failed_) return;
    std::size_t first = skip_ws(text, 0);
    if (first < text.size() && text[first] == '[') {
      for_each_element(text, [this](std::string_view element) { apply(element.substr(skip_ws(element, 0))); });
    } else if (first < text.size()) {
      apply(text.substr(first));
    }
  }

  // An event past kMaxEventBytes is not parsed: the usage at its end is still read (not Anthropic's,
  // whose message_delta updates what message_start said, and whose events stay small).
  void oversized_event(std::string_view tail) {
    if (tail.empty() || kind_ == ApiKind::anthropic_messages) return;
    usage_from_tail(tail);
  }

  // The usage of a whole reply whose start was read but not its end: the last `"usage":{...}`
  // (Gemini: usageMetadata) complete in the tail. The model's own text sits in JSON strings, where
  // every quote is escaped, so the key with its quotes can only be a member name.
  void usage_from_tail(std::string_view tail) {
    if (kind_ == ApiKind::openai_responses) tool_calls_seen_ = std::max(tool_calls_seen_, responses_tool_calls_in_text(tail));
    tool_calls_seen_ = std::max(tool_calls_seen_, usage_.tool_calls);
    const std::string_view key = kind_ == ApiKind::gemini ? "\"usageMetadata\"" : "\"usage\"";
    // The last one only: the top-level usage is the document's last member, and an earlier key may
    // be one the agent wrote (an echoed tool schema, a function call's arguments) when the last is
    // null (review 15e E5). One look, so a cut text costs one parse at most.
    const std::size_t at = tail.rfind(key);
    if (at == std::string_view::npos) return;
    std::size_t i = skip_ws(tail, at + key.size());
    if (i >= tail.size() || tail[i] != ':') return;
    i = skip_ws(tail, i + 1);
    if (i >= tail.size() || tail[i] != '{') return;
    const std::size_t end = skip_value(tail, i);
    if (end == i || end > tail.size() || tail[end - 1] != '}') return;
    const std::string_view u = tail.substr(i, end - i);
    if (kind_ == ApiKind::gemini) {
      usage_ = read_gemini_usage(u);
    } else if (kind_ == ApiKind::anthropic_messages) {
      usage_ = Usage{};
      read_anthropic_usage(u, usage_, false);
    } else {
      usage_ = read_openai_usage(u);
    }
  }

  void take_model(std::string_view v) {
    if (auto s = string_value(v); s && !s->empty()) model_ = std::move(*s);
  }

  // The text of a usage object (nullopt when absent or not an object: `"usage": null` is common).
  static std::optional<std::string_view> usage_object(std::string_view v) {
    if (!is_object_text(v) || v.back() != '}') return std::nullopt;
    return v;
  }

  void apply(std::string_view j) {
    if (!is_object_text(j)) return;
    switch (kind_) {
      case ApiKind::anthropic_messages: {
        auto [type_text, message, model, usage] = member_texts<4>(j, {"type", "message", "model", "usage"});
        auto type = string_value(type_text).value_or("");
        if (type == "message_delta") {
          if (auto u = usage_object(usage)) read_anthropic_usage(*u, usage_, true);
          return;
        }
        if (type == "message_start") {
          if (!is_object_text(message)) return;
          auto inner = member_texts<2>(message, {"model", "usage"});
          model = inner[0];
          usage = inner[1];
        }
        take_model(model);
        if (auto u = usage_object(usage)) {
          usage_ = Usage{};
          read_anthropic_usage(*u, usage_, false);
        }
        return;
      }
      case ApiKind::gemini: {
        auto [model, usage, candidates] = member_texts<3>(j, {"modelVersion", "usageMetadata", "candidates"});
        take_model(model);
        const std::int64_t calls = std::max(usage_.tool_calls, gemini_tool_calls(candidates));
        if (auto u = usage_object(usage)) usage_ = read_gemini_usage(*u);
        usage_.tool_calls = calls;  // streamed: the chunk that carries them may not be the last
        tool_calls_seen_ = std::max(tool_calls_seen_, calls);
        return;
      }
      case ApiKind::openai_responses: {
        auto [response, model, usage, output] = member_texts<4>(j, {"response", "model", "usage", "output"});
        if (is_object_text(response)) {
          auto inner = member_texts<3>(response, {"model", "usage", "output"});
          model = inner[0];
          usage = inner[1];
          output = inner[2];
        }
        take_model(model);
        if (auto u = usage_object(usage)) {
          usage_ = read_openai_usage(*u);
          usage_.tool_calls = responses_tool_calls(output);
          tool_calls_seen_ = std::max(tool_calls_seen_, usage_.tool_calls);
        }
        return;
      }
      case ApiKind::openai_chat:
      case ApiKind::other: {
        auto [model, usage, x_groq] = member_texts<3>(j, {"model", "usage", "x_groq"});
        take_model(model);
        auto u = usage_object(usage);
        if (!u) u = usage_object(member_text(x_groq, "usage"));  // Groq's older streaming shape
        if (u) usage_ = read_openai_usage(*u);
        return;
      }
    }
  }
};

// --- Request rewriting -------------------------------------------------------------------------
// The body is forwarded as the client wrote it; the only change is an inserted member, spliced into
// the text so that numbers, key order and whitespace stay exactly as they were.

// `body` is a JSON object (checked by the caller) whose stream_options.include_usage is not true.
void inject_include_usage(std::string& body) {
  auto span = find_member_value(body, "stream_options");
  if (span) {
    // An explicit include_usage (false, or anything but true) is overwritten: without the usage
    // chunk the request could not be charged (and the upstream bills it all the same).
    std::string_view options(body.data() + span->begin, span->end - span->begin);
    if (auto current = find_member_value(options, "include_usage")) {
      body.replace(span->begin + current->begin, current->end - current->begin, "true");
      return;
    }
  }
  if (!span) {
    auto open = skip_ws(body, 0);  // the '{' of the top-level object
    auto next = skip_ws(body, open + 1);
    bool empty = next < body.size() && body[next] == '}';
    body.insert(open + 1, empty ? R"("stream_options":{"include_usage":true})" : R"("stream_options":{"include_usage":true},)");
    return;
  }
  std::string_view options(body.data() + span->begin, span->end - span->begin);
  if (is_object_text(options)) {
    std::size_t inner = skip_ws(body, span->begin + 1);
    bool empty = inner < body.size() && body[inner] == '}';
    body.insert(span->begin + 1, empty ? R"("include_usage":true)" : R"("include_usage":true,)");
  } else if (options == "null") {
    body.replace(span->begin, span->end - span->begin, R"({"include_usage":true})");
  }
}

std::string gemini_model_from_path(std::string_view path) {
  path = strip_query(path);
  auto colon = path.rfind(':');
  if (colon == std::string_view::npos) return {};
  auto slash = path.rfind('/', colon);
  if (slash == std::string_view::npos) return {};
  return std::string(path.substr(slash + 1, colon - slash - 1));
}

}  // namespace

std::string path_model(ApiStyle style, std::string_view path) {
  if (style != ApiStyle::gemini) return {};
  path = strip_query(path);
  // The first collection segment: Google's templates are {model=models/*}:<method> (and
  // tunedModels/*), after the version or a Vertex project's publisher.
  std::size_t from = std::string_view::npos;
  for (std::string_view collection : {"/models/", "/tunedModels/"})
    if (auto at = path.find(collection); at != std::string_view::npos && (from == std::string_view::npos || at < from))
      from = at + collection.size();
  if (from == std::string_view::npos) return {};
  // Up to the method's ':', which a client may also send percent-encoded.
  for (std::size_t i = from; i < path.size(); ++i) {
    if (path[i] == '/') return {};
    if (path[i] == ':' || (path[i] == '%' && i + 2 < path.size() && path[i + 1] == '3' && (path[i + 2] | 0x20) == 'a'))
      return i > from ? std::string(path.substr(from, i - from)) : std::string();
  }
  return {};
}

ApiKind classify(ApiStyle style, std::string_view path) {
  path = strip_query(path);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (ends_with(path, "/chat/completions")) return ApiKind::openai_chat;
  if (ends_with(path, "/responses")) return ApiKind::openai_responses;
  if (ends_with(path, ":generateContent") || ends_with(path, ":streamGenerateContent")) return ApiKind::gemini;
  // OpenAI's Assistants API also has .../messages, with another shape: only Anthropic-style
  // providers, or the Anthropic path itself, count as Messages.
  if (ends_with(path, "/messages") && (style == ApiStyle::anthropic || path == "/v1/messages"))
    return ApiKind::anthropic_messages;
  return ApiKind::other;
}

// The calls of the provider's own paid tools a request's `tools` allow, for the estimate: Anthropic's
// web_search_* (its max_uses, else kDefaultToolCalls), OpenAI's web_search*, file_search and
// code_interpreter, Gemini's search, Maps and enterprise grounding (kDefaultToolCalls each).
std::int64_t paid_tool_calls(ApiKind kind, std::string_view tools) {
  std::int64_t calls = 0;
  for_each_element(tools, [&](std::string_view tool) {
    if (!is_object_text(tool)) return;
    // One pass over each tool (agents send large schemas: review 15e E6).
    if (kind == ApiKind::gemini) {
      const auto named = member_texts<8>(tool, {"google_search", "googleSearch", "google_search_retrieval", "googleSearchRetrieval",
                                               "google_maps", "googleMaps", "enterprise_web_search", "enterpriseWebSearch"});
      if (std::any_of(named.begin(), named.end(), [](std::string_view v) { return !v.empty(); })) calls += kDefaultToolCalls;
      return;
    }
    auto [type, max_uses] = member_texts<2>(tool, {"type", "max_uses"});
    const std::string name = string_value(type).value_or("");
    if (name.starts_with("web_search") || name == "file_search" || name == "code_interpreter")
      calls += std::min(count_value(max_uses).value_or(kDefaultToolCalls), kMaxEstimatedToolCalls);
  });
  return calls;
}

// The entries of a fallback list (`models`, `fallbacks`) into info.other_models: strings, or
// objects with a string "model". Anything else (or more than 64) marks the list unreadable.
void read_other_models(std::string_view list, RequestInfo& info) {
  if (list.empty() || list == "null") return;
  if (list.front() != '[') {
    info.other_models_unreadable = true;
    return;
  }
  for_each_element(list, [&](std::string_view element) {
    auto name = string_value(element);
    if (!name && is_object_text(element)) name = string_value(member_text(element, "model"));
    if (!name || info.other_models.size() >= 64)
      info.other_models_unreadable = true;
    else
      info.other_models.push_back(std::move(*name));
  });
}

// How many answers the upstream generates (and bills) for one request: OpenAI's `n` and legacy
// `best_of`, Gemini's `candidateCount`; the largest of them. A value that is there but cannot be
// read as a count is taken as the most an upstream allows, so the estimate stays an upper bound.
std::int64_t requested_choices(std::initializer_list<std::string_view> counts) {
  std::int64_t choices = 1;
  for (auto t : counts) {
    if (t.empty() || t == "null") continue;
    choices = std::max(choices, std::min(count_value(t).value_or(kMaxEstimatedChoices), kMaxEstimatedChoices));
  }
  return choices;
}

RequestInfo inspect_request(ApiKind kind, std::string_view path, std::string& body, bool inject_stream_usage) {
  RequestInfo info;
  info.estimated_input_tokens = static_cast<std::int64_t>(body.size() / 4);
  if (kind == ApiKind::gemini) {
    info.model = gemini_model_from_path(path);
    info.streaming = ends_with(strip_query(path), ":streamGenerateContent");
  }
  try {
    std::string_view j(body);
    j.remove_prefix(std::min(skip_ws(j, 0), j.size()));
    while (!j.empty() && (j.back() == ' ' || j.back() == '\t' || j.back() == '\r' || j.back() == '\n')) j.remove_suffix(1);
    // An object, as far as its ends tell: the scan below reads members, and the upstream judges
    // the rest of the body as it always would.
    if (!is_object_text(j) || j.back() != '}') return info;
    // One pass over the body (it may be megabytes of conversation).
    enum { model, stream, max_completion_tokens, max_tokens, max_output_tokens, generation_config, stream_options, background,
           n, best_of, models, fallbacks, tools, web_search_options };
    auto m = member_texts<14>(j, {"model", "stream", "max_completion_tokens", "max_tokens", "max_output_tokens",
                                  "generationConfig", "stream_options", "background", "n", "best_of", "models", "fallbacks",
                                  "tools", "web_search_options"});
    info.tool_calls = paid_tool_calls(kind, m[tools]);
    // Chat Completions' search models bill each request that asks to search, whatever the answer
    // says: one call at least (review 15d M2).
    if (kind == ApiKind::openai_chat && !m[web_search_options].empty() && m[web_search_options] != "null") {
      info.min_tool_calls = 1;
      info.tool_calls = std::max<std::int64_t>(info.tool_calls, 1);
    }
    read_other_models(m[models], info);
    read_other_models(m[fallbacks], info);
    if (kind != ApiKind::gemini) {
      info.model = string_value(m[model]).value_or("");
      if (auto asked = stream_requested(m[stream])) info.streaming = *asked;
    }
    info.background = kind == ApiKind::openai_responses && m[background] == "true";
    for (auto p : {m[max_completion_tokens], m[max_tokens], m[max_output_tokens],
                   member_text(m[generation_config], "maxOutputTokens")}) {
      if (auto n = count_value(p)) {
        info.max_output_tokens = *n;
        break;
      }
    }
    info.choices = requested_choices({m[n], m[best_of], member_text(m[generation_config], "candidateCount")});
    // Legacy /completions streams report usage the same way, on request (OpenAI and the
    // compatible servers): without it they were always charged the estimate (review 15a M1).
    const bool completions = kind == ApiKind::openai_chat ||
                             (kind == ApiKind::other && ends_with(strip_query(path), "/completions"));
    if (inject_stream_usage && completions && info.streaming &&
        member_text(m[stream_options], "include_usage") != "true") {
      info.usage_requested_by_proxy = true;
      inject_include_usage(body);
    }
  } catch (...) {
    // Only allocation can throw here; the request goes out as it came.
  }
  return info;
}

std::unique_ptr<UsageExtractor> make_usage_extractor(ApiKind kind, bool event_stream) {
  return std::make_unique<Extractor>(kind, event_stream);
}

}  // namespace tokfence::proxy
