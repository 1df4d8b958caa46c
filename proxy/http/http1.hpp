#pragma once
// HTTP/1.1 message framing for the proxy's data path (RFC 9112): request and response heads
// parsed in place, an incremental chunked-body decoder, and a read buffer.
//
// Why not Beast's parser and serializer: they cost a heap node per header field, a copy of every
// field into the outgoing message, and a buffer-sequence walk per write. The proxy only needs to
// look at a handful of fields and copy the rest through, so the heads here are views into the
// connection's read buffer, and what goes out is built in one string. Profiles of the daemon had
// Beast's HTTP code and the allocations it made as the largest user-space cost per request.
//
// The rules are strict where laxness lets two parsers disagree about where a message ends
// (request smuggling): no whitespace before a colon, no obsolete line folding, Content-Length
// digits only and one value, no Content-Length beside Transfer-Encoding in a request, chunked as
// the only transfer coding, bounded chunk-size lines and trailers. Pure functions, unit-tested in
// tests/unit/test_proxy_http1.cpp.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tokfence::proxy::http1 {

bool iequals(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces and tabs (RFC 9110 OWS).
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(element) for each element of a comma-separated field value (Connection,
// Transfer-Encoding, Content-Length lists), without surrounding whitespace; empty elements are
// skipped (RFC 9110 section 5.6.1).
template <class Fn>
void for_each_list_element(std::string_view value, Fn&& fn) {
  std::size_t start = 0;
  while (start <= value.size()) {
    auto comma = value.find(',', start);
    auto element = trim_ows(value.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

struct Header {
  std::string_view name;
  std::string_view value;  // without surrounding whitespace
};

// How the body of a message is delimited.
enum class BodyKind {
  none,         // no body (request without length/coding; HEAD, 1xx, 204 and 304 responses)
  length,       // Content-Length bytes
  chunked,      // Transfer-Encoding: chunked
  until_close,  // a response without either: the body ends when the server closes
};

enum class Parse { complete, incomplete, error };

struct Head {
  int version_minor = 1;  // HTTP/1.<minor>: 0 or 1
  std::vector<Header> headers;
  BodyKind body = BodyKind::none;
  std::uint64_t content_length = 0;
  bool keep_alive = true;
  std::size_t size = 0;  // bytes of the head, final CRLF included
  std::string error;     // why, when parsing failed (never quotes the input)

  const Header* find(std::string_view name) const;  // first field of that name (case-insensitive)
  // Whether the comma-separated field `name` holds `token` (case-insensitive), e.g. Connection: close.
  bool has_token(std::string_view name, std::string_view token) const;
};

struct RequestHead : Head {
  std::string_view method;
  std::string_view target;
  bool expect_continue = false;  // Expect: 100-continue
};

struct ResponseHead : Head {
  int status = 0;
  std::string_view reason;
};

// Parses the request head at the start of `in` into `out` (views into `in`). incomplete: more
// bytes are needed; the caller bounds how many (max_header_bytes). Leading empty lines are skipped
// (RFC 9112 section 2.2) and counted in `size`.
Parse parse_request_head(std::string_view in, RequestHead& out);

// Parses a response head. `request_method` decides whether a body follows (HEAD: never).
Parse parse_response_head(std::string_view in, std::string_view request_method, ResponseHead& out);

// Says when a head that arrives in pieces is worth parsing, looking at each byte once: a head sent
// a byte at a time would otherwise be parsed from its start after every read (quadratic in its
// size). parse_request_head() can only give an answer other than `incomplete` once the request
// line has ended, the empty line ending the head has come, or a line ended in a bare LF (an
// error); scan() reports exactly those points, so a head costs at most three parses. (A malformed
// field line is therefore refused when the head ends, or at max_header_bytes, not at its CRLF.)
class HeadScanner {
 public:
  // `in` is every byte of the head so far: the bytes given to the previous call plus new ones
  // (the buffer may have moved; offsets are what count). true: parse `in` now.
  bool scan(std::string_view in);
  // For the next head (after a request was consumed from the buffer).
  void reset() { *this = HeadScanner(); }
  // Bytes looked at since the last reset(): the unit tests check this stays linear.
  std::size_t bytes_scanned() const { return scanned_; }

 private:
  std::size_t pos_ = 0;         // next byte to look at
  std::size_t line_start_ = 0;  // where the current line began
  bool leading_ = true;         // still skipping empty lines before the request line
  bool first_line_done_ = false;
  std::size_t scanned_ = 0;
};

// Decodes a chunked body incrementally. Each step() consumes a prefix of its input: framing,
// then at most one run of body bytes, which it returns as `data` (a view into the input). The
// caller forwards what was consumed as is, or only the data; consumed == 0 means more input is
// needed. Chunk extensions are skipped; trailer fields are consumed and not interpreted.
class ChunkedDecoder {
 public:
  struct Step {
    std::size_t consumed = 0;
    std::string_view data;
  };
  Step step(std::string_view in);
  bool done() const { return state_ == State::done; }
  bool failed() const { return state_ == State::failed; }
  const std::string& error() const { return error_; }

 private:
  enum class State { size, extension, size_lf, data, data_cr, data_lf, trailer_start, trailer_line, trailer_lf, last_lf, done, failed };
  Step fail(std::string message);
  State state_ = State::size;
  std::uint64_t remaining_ = 0;
  std::size_t size_digits_ = 0;
  std::size_t line_bytes_ = 0;     // bytes of the current size or trailer line
  std::size_t trailer_bytes_ = 0;  // all trailer bytes so far
  std::string error_;
};

// A connection's read buffer: unread bytes at the front, room to read into at the back.
//
// Storage is taken at the first prepare() and can be given back with release() while nothing is
// unread: a connection that waits (a stream between two events) then holds no buffer at all.
// Buffers of the default size go to a short list of spares kept by each thread and come back
// from it, so a release() and the next prepare() cost no allocation; buffers that grew are freed.
// Storage of whole pages is mapped rather than taken from the heap (http1.cpp says why).
class ReadBuffer {
 public:
  static constexpr std::size_t kDefaultCapacity = 16 * 1024;
  // The storage is not initialised: pages nobody reads into never become resident.
  explicit ReadBuffer(std::size_t initial_capacity = kDefaultCapacity) : initial_(initial_capacity) {}
  std::string_view data() const { return {storage_.get() + begin_, end_ - begin_}; }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(std::size_t n);
  void clear() { begin_ = end_ = 0; }
  // At least `min_room` writable bytes after the unread ones; moves the unread bytes to the front
  // and grows the storage as needed (views into data() are invalidated).
  std::span<char> prepare(std::size_t min_room = 4096);
  void commit(std::size_t n) { end_ += n; }
  // Gives the storage back when no byte is unread (else does nothing); views into data() and
  // spans from prepare() are invalidated. Returns whether the buffer now holds no storage.
  bool release();
  // Whether storage is held (tests, and the memory accounting in bench/README.md).
  bool holds_storage() const { return static_cast<bool>(storage_); }

 private:
  struct GiveBack {
    std::size_t capacity;              // no default member initialiser: the enclosing class
    void operator()(char* p) const;  // default-constructs it before it is complete
  };
  std::unique_ptr<char[], GiveBack> storage_;
  std::size_t initial_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// "4000\r\n" for a chunk of 0x4000 bytes.
std::string chunk_header(std::size_t size);
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

}  // namespace tokfence::proxy::http1
