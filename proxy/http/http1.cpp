#include "proxy/http/http1.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace tokfence::proxy::http1 {
namespace {

constexpr std::size_t kMaxChunkLine = 4096;       // size + extensions
constexpr std::size_t kMaxTrailerBytes = 64 * 1024;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// RFC 9110 tchar.
bool is_tchar(unsigned char c) {
  static const auto table = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
    return t;
  }();
  return table[c];
}

// Field values: visible characters, space, tab and obs-text; no other control characters.
bool is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// The next line of `in` from `pos`, without its CRLF; pos moves past it. incomplete when no LF
// yet; error on a bare LF.
Parse next_line(std::string_view in, std::size_t& pos, std::string_view& line, std::string& error) {
  if (pos >= in.size()) return Parse::incomplete;  // memchr must not see a null pointer (empty view)
  const char* start = in.data() + pos;
  const void* lf = std::memchr(start, '\n', in.size() - pos);
  if (!lf) return Parse::incomplete;
  std::size_t len = static_cast<const char*>(lf) - start;
  if (len == 0 || start[len - 1] != '\r') {
    error = "line ends in LF without CR";
    return Parse::error;
  }
  line = std::string_view(start, len - 1);
  pos += len + 1;
  return Parse::complete;
}

// Header lines from `pos` up to and including the empty line.
Parse parse_fields(std::string_view in, std::size_t& pos, Head& out) {
  for (;;) {
    std::string_view line;
    Parse p = next_line(in, pos, line, out.error);
    if (p != Parse::complete) return p;
    if (line.empty()) return Parse::complete;
    if (line.front() == ' ' || line.front() == '\t') {
      out.error = "obsolete line folding in a header";
      return Parse::error;
    }
    std::size_t colon = 0;
    while (colon < line.size() && is_tchar(static_cast<unsigned char>(line[colon]))) ++colon;
    if (colon == 0 || colon == line.size() || line[colon] != ':') {
      out.error = "invalid header field name";
      return Parse::error;
    }
    std::string_view value = line.substr(colon + 1);
    for (char c : value)
      if (!is_value_char(static_cast<unsigned char>(c))) {
        out.error = "invalid character in a header value";
        return Parse::error;
      }
    out.headers.push_back({line.substr(0, colon), trim_ows(value)});
  }
}

// Content-Length fields: digits only; a list or repeated field is accepted only when every value
// is the same (RFC 9112 section 6.3).
bool content_length_of(const Head& head, bool& present, std::uint64_t& length) {
  present = false;
  bool ok = true;
  for (const auto& h : head.headers) {
    if (!iequals(h.name, "content-length")) continue;
    if (h.value.empty()) return false;
    bool any = false;  // a value of only commas and whitespace ("Content-Length: ,") holds no length
    for_each_list_element(h.value, [&](std::string_view v) {
      any = true;
      if (v.size() > 18 || !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        ok = false;
        return;
      }
      std::uint64_t n = 0;
      for (char c : v) n = n * 10 + static_cast<std::uint64_t>(c - '0');
      if (present && n != length) ok = false;
      present = true;
      length = n;
    });
    if (!ok || !any) return false;
  }
  return ok;
}

// The transfer codings of all Transfer-Encoding fields, in order.
std::vector<std::string_view> transfer_codings(const Head& head) {
  std::vector<std::string_view> codings;
  for (const auto& h : head.headers)
    if (iequals(h.name, "transfer-encoding")) for_each_list_element(h.value, [&](std::string_view v) { codings.push_back(v); });
  return codings;
}

bool has_field(const Head& head, std::string_view name) { return head.find(name) != nullptr; }

// "HTTP/1.x" -> minor version; -1 when it is not HTTP/1.
int parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1." || v[7] < '0' || v[7] > '9') return -1;
  return std::min(v[7] - '0', 1);  // a higher 1.x is served as 1.1 (RFC 9110 section 2.5)
}

void set_keep_alive(Head& head) {
  head.keep_alive = head.version_minor >= 1 ? !head.has_token("connection", "close")
                                            : head.has_token("connection", "keep-alive");
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

const Header* Head::find(std::string_view name) const {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return &h;
  return nullptr;
}

bool Head::has_token(std::string_view name, std::string_view token) const {
  bool found = false;
  for (const auto& h : headers)
    if (iequals(h.name, name)) for_each_list_element(h.value, [&](std::string_view v) { found = found || iequals(v, token); });
  return found;
}

Parse parse_request_head(std::string_view in, RequestHead& out) {
  out.headers.clear();
  out.error.clear();
  std::size_t pos = 0;
  // Empty lines before the request line are ignored (a client's stray CRLF after a body).
  while (in.size() - pos >= 2 && in[pos] == '\r' && in[pos + 1] == '\n') pos += 2;
  if (in.size() - pos == 1 && in[pos] == '\r') return Parse::incomplete;
  std::string_view line;
  Parse p = next_line(in, pos, line, out.error);
  if (p != Parse::complete) return p;
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    out.error = "request line is not 'METHOD target HTTP/1.x'";
    return Parse::error;
  }
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (out.method.empty() || !std::all_of(out.method.begin(), out.method.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); })) {
    out.error = "invalid method";
    return Parse::error;
  }
  if (out.target.empty() || !std::all_of(out.target.begin(), out.target.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u != 0x7f;
      })) {
    out.error = "invalid request target";
    return Parse::error;
  }
  out.version_minor = parse_version(line.substr(sp2 + 1));
  if (out.version_minor < 0) {
    out.error = "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)";
    return Parse::error;
  }
  p = parse_fields(in, pos, out);
  if (p != Parse::complete) return p;
  out.size = pos;

  bool has_length = false;
  if (!content_length_of(out, has_length, out.content_length)) {
    out.error = "invalid Content-Length";
    return Parse::error;
  }
  auto codings = transfer_codings(out);
  bool has_coding = has_field(out, "transfer-encoding");
  if (has_coding) {
    // A request whose length two parsers could read differently is refused outright.
    if (has_length) {
      out.error = "both Content-Length and Transfer-Encoding";
      return Parse::error;
    }
    if (out.version_minor == 0) {
      out.error = "Transfer-Encoding in an HTTP/1.0 request";
      return Parse::error;
    }
    if (codings.size() != 1 || !iequals(codings[0], "chunked")) {
      out.error = "unsupported Transfer-Encoding (only chunked)";
      return Parse::error;
    }
    out.body = BodyKind::chunked;
  } else {
    out.body = has_length ? BodyKind::length : BodyKind::none;
  }
  if (!has_length) out.content_length = 0;
  set_keep_alive(out);
  const Header* expect = out.find("expect");
  out.expect_continue = expect && iequals(expect->value, "100-continue");
  return Parse::complete;
}

Parse parse_response_head(std::string_view in, std::string_view request_method, ResponseHead& out) {
  out.headers.clear();
  out.error.clear();
  std::size_t pos = 0;
  std::string_view line;
  Parse p = next_line(in, pos, line, out.error);
  if (p != Parse::complete) return p;
  // HTTP/1.1 SP 3DIGIT [SP reason]
  out.version_minor = parse_version(line.substr(0, 8));
  if (out.version_minor < 0 || line.size() < 12 || line[8] != ' ' ||
      !std::all_of(line.begin() + 9, line.begin() + 12, [](char c) { return c >= '0' && c <= '9'; }) ||
      (line.size() > 12 && line[12] != ' ')) {
    out.error = "status line is not 'HTTP/1.x NNN reason'";
    return Parse::error;
  }
  out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (out.status < 100) {
    out.error = "status code below 100";
    return Parse::error;
  }
  out.reason = line.size() > 12 ? line.substr(13) : std::string_view();
  for (char c : out.reason)
    if (!is_value_char(static_cast<unsigned char>(c))) {
      out.error = "invalid character in the reason phrase";
      return Parse::error;
    }
  p = parse_fields(in, pos, out);
  if (p != Parse::complete) return p;
  out.size = pos;

  bool has_length = false;
  std::uint64_t length = 0;
  bool length_ok = content_length_of(out, has_length, length);
  out.content_length = 0;
  set_keep_alive(out);
  if (iequals(request_method, "HEAD") || out.status / 100 == 1 || out.status == 204 || out.status == 304) {
    out.body = BodyKind::none;
    return Parse::complete;
  }
  if (has_field(out, "transfer-encoding")) {
    // Transfer-Encoding wins over Content-Length (RFC 9112 section 6.3); a final coding other than
    // chunked means the body runs until the server closes.
    auto codings = transfer_codings(out);
    if (!codings.empty() && iequals(codings.back(), "chunked")) {
      out.body = BodyKind::chunked;
    } else {
      out.body = BodyKind::until_close;
      out.keep_alive = false;
    }
    return Parse::complete;
  }
  if (!length_ok) {
    out.error = "invalid Content-Length";
    return Parse::error;
  }
  if (has_length) {
    out.body = BodyKind::length;
    out.content_length = length;
  } else {
    out.body = BodyKind::until_close;
    out.keep_alive = false;
  }
  return Parse::complete;
}

bool HeadScanner::scan(std::string_view in) {
  // Empty lines before the request line, skipped the way parse_request_head() skips them.
  while (leading_ && pos_ < in.size()) {
    if (in[pos_] != '\r') {
      leading_ = false;
    } else if (pos_ + 1 >= in.size()) {
      return false;  // a lone CR so far: an empty line, or the start of something else
    } else if (in[pos_ + 1] == '\n') {
      pos_ += 2;
      scanned_ += 2;
    } else {
      leading_ = false;
    }
    line_start_ = pos_;
  }
  while (pos_ < in.size()) {
    const char* start = in.data() + pos_;
    const void* lf = std::memchr(start, '\n', in.size() - pos_);
    if (!lf) {
      scanned_ += in.size() - pos_;
      pos_ = in.size();
      return false;
    }
    std::size_t at = static_cast<std::size_t>(static_cast<const char*>(lf) - in.data());
    scanned_ += at + 1 - pos_;
    pos_ = at + 1;
    std::size_t line_length = at - line_start_;  // with its CR, if any
    bool bare_lf = line_length == 0 || in[at - 1] != '\r';
    bool empty_line = line_length == 1;
    bool request_line = !first_line_done_;
    first_line_done_ = true;
    line_start_ = pos_;
    if (bare_lf || empty_line || request_line) return true;
  }
  return false;
}

ChunkedDecoder::Step ChunkedDecoder::fail(std::string message) {
  state_ = State::failed;
  error_ = std::move(message);
  return {};
}

ChunkedDecoder::Step ChunkedDecoder::step(std::string_view in) {
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (digit >= 0) {
          if (++size_digits_ > 15) return fail("chunk size too large");
          remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(digit);
          ++line_bytes_;
          ++i;
        } else if (size_digits_ == 0) {
          return fail("chunk size expected");
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::extension;
        } else if (c == '\r') {
          state_ = State::size_lf;
          ++i;
        } else {
          return fail("invalid chunk size");
        }
        break;
      }
      case State::extension:
        if (c == '\r') {
          state_ = State::size_lf;
        } else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || ++line_bytes_ > kMaxChunkLine) {
          return fail("invalid chunk extension");
        }
        ++i;
        break;
      case State::size_lf:
        if (c != '\n') return fail("chunk size line ends in CR without LF");
        ++i;
        line_bytes_ = 0;
        size_digits_ = 0;
        state_ = remaining_ == 0 ? State::trailer_start : State::data;
        break;
      case State::data: {
        auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size() - i));
        Step out{i + n, in.substr(i, n)};
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::data_cr;
        return out;
      }
      case State::data_cr:
        if (c != '\r') return fail("chunk data longer than its size");
        state_ = State::data_lf;
        ++i;
        break;
      case State::data_lf:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::size;
        ++i;
        break;
      case State::trailer_start:
        if (c == '\r') {
          state_ = State::last_lf;
          ++i;
        } else {
          state_ = State::trailer_line;
        }
        break;
      case State::trailer_line:
        if (++trailer_bytes_ > kMaxTrailerBytes) return fail("trailer too large");
        if (c == '\r') {
          state_ = State::trailer_lf;
        } else if (c == '\n' || !is_value_char(static_cast<unsigned char>(c))) {
          return fail("invalid trailer");
        }
        ++i;
        break;
      case State::trailer_lf:
        if (c != '\n') return fail("trailer line ends in CR without LF");
        state_ = State::trailer_start;
        ++i;
        break;
      case State::last_lf:
        if (c != '\n') return fail("chunked body ends in CR without LF");
        state_ = State::done;
        return {i + 1, {}};
      case State::done:
      case State::failed:
        return {i, {}};
    }
  }
  return {i, {}};
}

namespace {

// Spare read buffers of the default size, per thread: a connection that gives its buffer back
// while it waits takes one again when bytes arrive, without malloc. At most kMaxSpares are kept
// (their pages stay resident); a thread serves one connection at a time, so only connections
// holding unread bytes keep buffers out of the list, and a few spares cover the rest.
constexpr std::size_t kMaxSpares = 16;

// Storage of whole pages, 16 KiB and up, is mapped rather than taken from malloc: only the pages
// a connection reads into become resident, even when the storage was used before, and unmapped
// storage goes back to the system at once. From the heap, a buffer re-used after another
// connection's bytes is resident whole, and thousands of buffers freed between live objects (a
// burst of streams whose requests were read and forwarded) stay resident as holes in the heap:
// that was most of what a stream cost (bench/README.md, stream_scale). Mapping costs two system
// calls, paid per connection at most (the spares take most releases).
bool mapped(std::size_t capacity) { return capacity >= ReadBuffer::kDefaultCapacity && capacity % 4096 == 0; }

char* allocate(std::size_t capacity) {
  if (!mapped(capacity)) return new char[capacity];
  void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<char*>(p);
}

void deallocate(char* p, std::size_t capacity) {
  if (mapped(capacity))
    ::munmap(p, capacity);
  else
    delete[] p;
}

// Set when the thread's list is destroyed (thread exit): a buffer freed after that is deleted.
thread_local bool spares_gone = false;
struct Spares {
  std::vector<char*> buffers;
  Spares() { buffers.reserve(kMaxSpares); }  // GiveBack never allocates
  ~Spares() {
    spares_gone = true;
    for (char* p : buffers) deallocate(p, ReadBuffer::kDefaultCapacity);
  }
};
thread_local Spares spares;

}  // namespace

void ReadBuffer::GiveBack::operator()(char* p) const {
  if (capacity == ReadBuffer::kDefaultCapacity && !spares_gone && spares.buffers.size() < kMaxSpares)
    spares.buffers.push_back(p);
  else
    deallocate(p, capacity);
}

void ReadBuffer::consume(std::size_t n) {
  begin_ += std::min(n, size());
  if (begin_ == end_) begin_ = end_ = 0;
}

bool ReadBuffer::release() {
  if (begin_ != end_) return false;
  begin_ = end_ = 0;
  storage_.reset();
  return true;
}

std::span<char> ReadBuffer::prepare(std::size_t min_room) {
  if (!storage_) {
    const std::size_t capacity = std::max(initial_, min_room);
    char* p = nullptr;
    if (capacity == kDefaultCapacity && !spares_gone && !spares.buffers.empty()) {
      p = spares.buffers.back();
      spares.buffers.pop_back();
    } else {
      p = allocate(capacity);
    }
    storage_ = std::unique_ptr<char[], GiveBack>(p, GiveBack{capacity});
  }
  const std::size_t capacity = storage_.get_deleter().capacity;
  if (capacity - end_ < min_room && begin_ > 0) {
    std::memmove(storage_.get(), storage_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (capacity - end_ < min_room) {
    std::size_t grown = std::max(capacity * 2, end_ + min_room);
    std::unique_ptr<char[], GiveBack> bigger(allocate(grown), GiveBack{grown});
    std::memcpy(bigger.get(), storage_.get(), end_);
    storage_ = std::move(bigger);
  }
  return {storage_.get() + end_, storage_.get_deleter().capacity - end_};
}

std::string chunk_header(std::size_t size) {
  static const char* hex = "0123456789abcdef";
  char digits[20];
  int n = 0;
  do {
    digits[n++] = hex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  std::string out;
  out.reserve(n + 2);
  while (n > 0) out.push_back(digits[--n]);
  out += "\r\n";
  return out;
}

}  // namespace tokfence::proxy::http1
