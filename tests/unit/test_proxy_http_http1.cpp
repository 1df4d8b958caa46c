#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http1.hpp"

using namespace tokfence::proxy::http1;
using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

// A distinctive string placed in malformed inputs: an error message must never contain it.
constexpr std::string_view kMarker = "Zq9x";

bool points_into(std::string_view view, std::string_view in) {
  return view.data() >= in.data() && view.data() + view.size() <= in.data() + in.size();
}

std::vector<std::string> lines_of(std::string_view raw) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < raw.size()) {
    auto lf = raw.find('\n', start);
    auto line = raw.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    if (lf == std::string_view::npos) break;
    start = lf + 1;
  }
  return lines;
}

// An error message is non-empty, printable ASCII, and quotes nothing of the input.
void check_error_message(const std::string& error, std::string_view raw) {
  CHECK_FALSE(error.empty());
  for (char c : error) {
    auto u = static_cast<unsigned char>(c);
    CHECK((u >= 0x20 && u < 0x7f));
  }
  CHECK(error.find(kMarker) == std::string::npos);
  for (const auto& line : lines_of(raw))
    if (line.size() >= 6) CHECK(error.find(line) == std::string::npos);
}

void expect_request_error(const std::string& raw) {
  INFO("request: " << raw);
  RequestHead h;
  CHECK(parse_request_head(raw, h) == Parse::error);
  check_error_message(h.error, raw);
}

void expect_response_error(const std::string& raw, std::string_view method = "GET") {
  INFO("response: " << raw);
  ResponseHead h;
  CHECK(parse_response_head(raw, method, h) == Parse::error);
  check_error_message(h.error, raw);
}

std::string post_with(const std::string& fields) {
  return "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields + "\r\n";
}

struct Decoded {
  std::string data;
  std::size_t consumed = 0;
  std::string left;  // bytes the decoder did not consume
  bool done = false;
  bool failed = false;
  std::string error;
};

// Feeds `pieces` to a decoder the way a connection does: unconsumed bytes stay buffered and the
// next piece is appended to them.
Decoded decode(const std::vector<std::string_view>& pieces) {
  ChunkedDecoder d;
  Decoded out;
  std::string pending;
  for (auto piece : pieces) {
    pending.append(piece);
    for (;;) {
      std::string_view in = pending;
      auto s = d.step(in);
      REQUIRE(s.consumed <= in.size());
      if (!s.data.empty()) {
        // The data is the last thing the step consumed.
        CHECK(points_into(s.data, in));
        CHECK(s.data.data() + s.data.size() == in.data() + s.consumed);
      }
      if (s.consumed == 0) {
        CHECK(s.data.empty());
        break;
      }
      out.data.append(s.data);
      out.consumed += s.consumed;
      pending.erase(0, s.consumed);
    }
  }
  out.left = pending;
  out.done = d.done();
  out.failed = d.failed();
  out.error = d.error();
  CHECK_FALSE((out.done && out.failed));
  return out;
}

Decoded decode_whole(std::string_view body) { return decode({body}); }

Decoded decode_bytewise(std::string_view body) {
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < body.size(); ++i) pieces.push_back(body.substr(i, 1));
  return decode(pieces);
}

void expect_chunked_error(const std::string& body) {
  INFO("chunked body: " << body.substr(0, 200));
  auto whole = decode_whole(body);
  CHECK(whole.failed);
  CHECK_FALSE(whole.done);
  check_error_message(whole.error, body);
  auto bytewise = decode_bytewise(body);
  CHECK(bytewise.failed);
  CHECK(bytewise.error == whole.error);  // the same failure however it is fed

  // A failed decoder consumes nothing more.
  ChunkedDecoder d;
  std::string_view in = body;
  while (!in.empty()) {
    auto s = d.step(in);
    if (s.consumed == 0) break;
    in.remove_prefix(s.consumed);
  }
  REQUIRE(d.failed());
  CHECK(d.step("0\r\n\r\n").consumed == 0);
  CHECK(d.step(in).consumed == 0);
  CHECK(d.failed());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------------

TEST_CASE("proxy::http1 parses a typical POST with Content-Length") {
  const std::string head =
      "POST /openai/v1/chat/completions?x=1 HTTP/1.1\r\n"
      "Host: 127.0.0.1:8787\r\n"
      "Content-Type: application/json\r\n"
      "Content-Length: 17\r\n"
      "Authorization:   Bearer tf-abc \t\r\n"
      "X-Empty:\r\n"
      "\r\n";
  RequestHead h;
  REQUIRE(parse_request_head(head, h) == Parse::complete);
  CHECK(h.error.empty());
  CHECK(h.method == "POST");
  CHECK(h.target == "/openai/v1/chat/completions?x=1");
  CHECK(h.version_minor == 1);
  CHECK(h.body == BodyKind::length);
  CHECK(h.content_length == 17);
  CHECK(h.keep_alive);
  CHECK_FALSE(h.expect_continue);
  CHECK(h.size == head.size());
  REQUIRE(h.headers.size() == 5);
  CHECK(h.headers[0].name == "Host");
  CHECK(h.headers[0].value == "127.0.0.1:8787");
  CHECK(h.headers[3].name == "Authorization");
  CHECK(h.headers[3].value == "Bearer tf-abc");  // surrounding whitespace trimmed
  CHECK(h.headers[4].name == "X-Empty");
  CHECK(h.headers[4].value.empty());

  REQUIRE(h.find("content-type"));
  CHECK(h.find("CONTENT-TYPE")->value == "application/json");
  CHECK(h.find("x-missing") == nullptr);
  CHECK(iequals("Content-Length", "content-LENGTH"));
  CHECK_FALSE(iequals("Content-Length", "Content-Lengt"));
}

TEST_CASE("proxy::http1 parses a GET without a body") {
  const std::string head = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestHead h;
  REQUIRE(parse_request_head(head, h) == Parse::complete);
  CHECK(h.method == "GET");
  CHECK(h.target == "/v1/models");
  CHECK(h.body == BodyKind::none);
  CHECK(h.content_length == 0);
  CHECK(h.keep_alive);
  CHECK(h.size == head.size());

  // No header fields at all.
  RequestHead bare;
  REQUIRE(parse_request_head("GET / HTTP/1.1\r\n\r\n", bare) == Parse::complete);
  CHECK(bare.headers.empty());
  CHECK(bare.body == BodyKind::none);
  CHECK(bare.size == 18);

  // Content-Length: 0 is a length body of zero bytes.
  RequestHead zero;
  REQUIRE(parse_request_head(post_with("Content-Length: 0\r\n"), zero) == Parse::complete);
  CHECK(zero.body == BodyKind::length);
  CHECK(zero.content_length == 0);

  // Transfer-Encoding: chunked, any case.
  RequestHead chunked;
  REQUIRE(parse_request_head(post_with("Transfer-Encoding: Chunked\r\n"), chunked) == Parse::complete);
  CHECK(chunked.body == BodyKind::chunked);
  CHECK(chunked.content_length == 0);
}

TEST_CASE("proxy::http1 request head views point into the input") {
  const std::string head = "PUT /a/b HTTP/1.1\r\nHost: example\r\nX-Custom: value here\r\nContent-Length: 3\r\n\r\nabc";
  std::string_view in = head;
  RequestHead h;
  REQUIRE(parse_request_head(in, h) == Parse::complete);
  CHECK(points_into(h.method, in));
  CHECK(points_into(h.target, in));
  CHECK(h.method.data() == in.data());
  CHECK(h.target.data() == in.data() + 4);
  for (const auto& f : h.headers) {
    CHECK(points_into(f.name, in.substr(0, h.size)));
    CHECK(points_into(f.value, in.substr(0, h.size)));
  }
  REQUIRE(h.find("x-custom"));
  CHECK(h.find("x-custom")->value.data() == in.data() + in.find("value here"));
}

TEST_CASE("proxy::http1 skips leading empty lines before a request") {
  const std::string head = "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestHead h;
  REQUIRE(parse_request_head(head, h) == Parse::complete);
  CHECK(h.method == "GET");
  CHECK(h.target == "/");
  CHECK(h.size == head.size());  // the skipped lines count
  CHECK(h.method.data() == head.data() + 4);

  for (std::string prefix : {"\r"s, "\r\n"s, "\r\n\r"s, "\r\n\r\n"s}) {
    INFO("input: only " << prefix.size() << " bytes of CR/LF");
    RequestHead p;
    CHECK(parse_request_head(prefix, p) == Parse::incomplete);
  }
  RequestHead empty;
  CHECK(parse_request_head("", empty) == Parse::incomplete);
  CHECK(parse_request_head(std::string_view(), empty) == Parse::incomplete);

  // A CR that does not start a CRLF is not an empty line.
  expect_request_error("\rGET /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("\r\n\rGET /Zq9x HTTP/1.1\r\n\r\n");
}

TEST_CASE("proxy::http1 request heads are incomplete at every prefix") {
  const std::vector<std::string> heads = {
      "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 12\r\n"
      "Expect: 100-continue\r\nConnection: keep-alive, Upgrade\r\n\r\n",
      "\r\n\r\nGET /x?y=z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-A: \t b \r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
  };
  for (const auto& head : heads) {
    for (std::size_t n = 0; n < head.size(); ++n) {
      INFO("head " << head << " cut at " << n);
      RequestHead h;
      CHECK(parse_request_head(std::string_view(head).substr(0, n), h) == Parse::incomplete);
    }
    INFO("head " << head);
    RequestHead h;
    REQUIRE(parse_request_head(head, h) == Parse::complete);
    CHECK(h.size == head.size());
  }
}

TEST_CASE("proxy::http1 pipelined bytes after a request head are not counted") {
  const std::string head = "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
  const std::string next = "GET /v1/y HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string all = head + "hello" + next;
  RequestHead h;
  REQUIRE(parse_request_head(all, h) == Parse::complete);
  CHECK(h.size == head.size());
  CHECK(h.content_length == 5);
  CHECK(std::string_view(all).substr(h.size, 5) == "hello");

  // Even bytes that would be an error are not looked at.
  RequestHead g;
  REQUIRE(parse_request_head("GET / HTTP/1.1\r\n\r\n\n\x01 garbage : \r", g) == Parse::complete);
  CHECK(g.size == 18);

  // The next request parses from where the body ends, into a reused head.
  REQUIRE(parse_request_head(std::string_view(all).substr(h.size + 5), h) == Parse::complete);
  CHECK(h.method == "GET");
  CHECK(h.target == "/v1/y");
  CHECK(h.body == BodyKind::none);
  CHECK(h.content_length == 0);
  CHECK(h.headers.size() == 1);
  CHECK(h.size == next.size());
}

TEST_CASE("proxy::http1 a reused request head carries nothing over") {
  RequestHead h;
  REQUIRE(parse_request_head(post_with("Content-Length: 9\r\nExpect: 100-continue\r\nConnection: close\r\n"), h) ==
          Parse::complete);
  CHECK(h.expect_continue);
  CHECK_FALSE(h.keep_alive);
  CHECK(h.content_length == 9);
  REQUIRE(parse_request_head("POST / HTTP/1.1\r\nBad Name: x\r\n\r\n", h) == Parse::error);
  CHECK_FALSE(h.error.empty());
  REQUIRE(parse_request_head("GET / HTTP/1.1\r\nHost: x\r\n\r\n", h) == Parse::complete);
  CHECK(h.error.empty());
  CHECK_FALSE(h.expect_continue);
  CHECK(h.keep_alive);
  CHECK(h.body == BodyKind::none);
  CHECK(h.content_length == 0);
  CHECK(h.headers.size() == 1);
}

TEST_CASE("proxy::http1 keep-alive follows the HTTP/1.0 and HTTP/1.1 rules") {
  auto keep_alive = [](const std::string& head) {
    INFO("head: " << head);
    RequestHead h;
    REQUIRE(parse_request_head(head, h) == Parse::complete);
    return h.keep_alive;
  };
  // HTTP/1.0: close unless asked to keep the connection.
  CHECK_FALSE(keep_alive("GET / HTTP/1.0\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.0\r\nHost: x\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.0\r\nConnection: Upgrade, keep-alive\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: close\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.0\r\nX-Connection: keep-alive\r\n\r\n"));
  {
    RequestHead h;
    REQUIRE(parse_request_head("GET / HTTP/1.0\r\n\r\n", h) == Parse::complete);
    CHECK(h.version_minor == 0);
  }

  // HTTP/1.1: keep unless asked to close.
  CHECK(keep_alive("GET / HTTP/1.1\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"));
  CHECK(keep_alive("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nCONNECTION: CLOSE\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: close,keep-alive\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: ,  close ,\r\n\r\n"));
  CHECK_FALSE(keep_alive("GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"));
  // A higher HTTP/1.x minor version is served as 1.1.
  {
    RequestHead h;
    REQUIRE(parse_request_head("GET / HTTP/1.2\r\n\r\n", h) == Parse::complete);
    CHECK(h.version_minor == 1);
    CHECK(h.keep_alive);
  }

  RequestHead h;
  REQUIRE(parse_request_head("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n", h) == Parse::complete);
  CHECK(h.has_token("connection", "upgrade"));
  CHECK(h.has_token("Connection", "KEEP-ALIVE"));
  CHECK_FALSE(h.has_token("connection", "close"));
  CHECK_FALSE(h.has_token("upgrade", "keep-alive"));
}

TEST_CASE("proxy::http1 recognises Expect: 100-continue case-insensitively") {
  auto expects = [](const std::string& fields) {
    INFO("fields: " << fields);
    RequestHead h;
    REQUIRE(parse_request_head(post_with("Content-Length: 4\r\n" + fields), h) == Parse::complete);
    return h.expect_continue;
  };
  CHECK(expects("Expect: 100-continue\r\n"));
  CHECK(expects("expect: 100-Continue\r\n"));
  CHECK(expects("EXPECT:   100-CONTINUE  \r\n"));
  CHECK_FALSE(expects(""));
  CHECK_FALSE(expects("Expect: 100-continuez\r\n"));
  CHECK_FALSE(expects("Expect: 200-ok\r\n"));
  CHECK_FALSE(expects("X-Expect: 100-continue\r\n"));
}

TEST_CASE("proxy::http1 rejects bare LF line endings") {
  expect_request_error("GET /Zq9x HTTP/1.1\nHost: x\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.1\r\nHost: Zq9x\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.1\r\nHost: Zq9x\r\n\n");
  expect_request_error("GET /Zq9x HTTP/1.1\n\n");
  expect_request_error("\nGET /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("\r\n\nGET /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.1\r\nX-A: a\rb\r\n\r\n");  // CR inside a value
  expect_request_error("GET /Zq9x HTTP/1.1\r\r\n\r\n");
}

TEST_CASE("proxy::http1 rejects malformed header fields") {
  // Whitespace between the field name and the colon.
  expect_request_error(post_with("Content-Length : 5\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Host\t: Zq9x\r\n"));
  expect_request_error(post_with("Transfer-Encoding : chunked\r\nX-Zq9x: 1\r\n"));
  // Obsolete line folding, also right after the request line.
  expect_request_error(post_with("X-Long: part one Zq9x\r\n  part two Zq9x\r\n"));
  expect_request_error(post_with("X-Long: part one Zq9x\r\n\tpart two Zq9x\r\n"));
  expect_request_error("GET / HTTP/1.1\r\n Host: Zq9x\r\n\r\n");
  expect_request_error("GET / HTTP/1.1\r\n\tHost: Zq9x\r\n\r\n");
  // Empty or invalid names, no colon.
  expect_request_error(post_with(": Zq9x\r\n"));
  expect_request_error(post_with(":\r\n"));
  expect_request_error(post_with("Zq9x-no-colon\r\n"));
  expect_request_error(post_with("X Zq9x: a\r\n"));
  expect_request_error(post_with("X(Zq9x): a\r\n"));
  expect_request_error(post_with("X-Zq9x\"q: a\r\n"));
  expect_request_error(post_with("X-Zq9x\xc3\xa9: a\r\n"));
  expect_request_error(post_with(std::string("X-Zq9x\0: a\r\n", 12)));
  // Control characters in values.
  expect_request_error(post_with(std::string("X-A: Zq9x\0tail\r\n", 16)));
  expect_request_error(post_with("X-A: Zq9x\x01tail\r\n"));
  expect_request_error(post_with("X-A: Zq9x\x1btail\r\n"));
  expect_request_error(post_with("X-A: Zq9x\x7ftail\r\n"));
  expect_request_error(post_with("X-A: Zq9x\x0btail\r\n"));

  // What is allowed: tabs and obs-text in values, all tchars in names.
  const std::string allowed = post_with("X-A: a\tb\xc3\xa9 c\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n");
  RequestHead h;
  REQUIRE(parse_request_head(allowed, h) == Parse::complete);
  REQUIRE(h.headers.size() == 3);
  CHECK(h.headers[1].value == "a\tb\xc3\xa9 c");
  CHECK(h.headers[2].name == "!#$%&'*+-.^_`|~09azAZ");
}

TEST_CASE("proxy::http1 rejects malformed request lines") {
  // Methods.
  expect_request_error("G(ET /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("GE\"T /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("GET\x01 /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("G\xc3\xa9T /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error(" /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("GET\t/Zq9x HTTP/1.1\r\n\r\n");
  // Targets.
  expect_request_error("GET /Zq9x b HTTP/1.1\r\n\r\n");
  expect_request_error("GET /Zq9x\tb HTTP/1.1\r\n\r\n");
  expect_request_error("GET /Zq9x\x01 HTTP/1.1\r\n\r\n");
  expect_request_error("GET /Zq9x\x7f HTTP/1.1\r\n\r\n");
  expect_request_error(std::string("GET /Zq9x\0 HTTP/1.1\r\n\r\n", 23));
  expect_request_error("GET  /Zq9x HTTP/1.1\r\n\r\n");
  expect_request_error("GET  HTTP/1.1\r\nX-Zq9x: 1\r\n\r\n");
  // Versions.
  expect_request_error("GET /Zq9x HTTP/2.0\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/2\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/0.9\r\n\r\n");
  expect_request_error("GET /Zq9x\r\n\r\n");  // the HTTP/0.9 form
  expect_request_error("GET /Zq9x HTTP/1.1 \r\n\r\n");
  expect_request_error("GET /Zq9x http/1.1\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.10\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.x\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/11\r\n\r\n");
  expect_request_error("GET /Zq9x HTTP/1.1x\r\n\r\n");
  expect_request_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  expect_request_error("Zq9x\r\n\r\n");
}

TEST_CASE("proxy::http1 rejects invalid Content-Length in requests") {
  for (std::string value : {"Zq9x", "-1", "+5", "5a", "0x5", "5 5", "5.0", "1e3", "\xd9\xa5", "5\t6",
                            "1234567890123456789", "99999999999999999999999", "", " ", ",", " , ,"}) {
    INFO("Content-Length: [" << value << "]");
    expect_request_error(post_with("Content-Length: " + value + "\r\nX-Zq9x: 1\r\n"));
  }
  // Different values, as separate fields and as a list.
  expect_request_error(post_with("Content-Length: 5\r\nContent-Length: 6\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5, 6\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5,6\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5\r\nContent-Length: 5, 6\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5\r\ncontent-length: 50\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5\r\nContent-Length:\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Content-Length: 5\r\nContent-Length: x\r\nX-Zq9x: 1\r\n"));

  // Identical repeated values are one length.
  for (std::string fields : {"Content-Length: 5\r\nContent-Length: 5\r\n"s, "Content-Length: 5, 5\r\n"s,
                             "Content-Length: 5,5\r\n"s, "content-length: 5\r\nCONTENT-LENGTH: 5,5\r\n"s,
                             "Content-Length: 005\r\n"s}) {
    INFO("fields: " << fields);
    RequestHead h;
    REQUIRE(parse_request_head(post_with(fields), h) == Parse::complete);
    CHECK(h.body == BodyKind::length);
    CHECK(h.content_length == 5);
  }
  // The largest accepted value.
  RequestHead big;
  REQUIRE(parse_request_head(post_with("Content-Length: 999999999999999999\r\n"), big) == Parse::complete);
  CHECK(big.content_length == 999999999999999999ULL);
}

TEST_CASE("proxy::http1 rejects request Transfer-Encoding other than a lone chunked") {
  // Content-Length beside Transfer-Encoding, either order.
  expect_request_error(post_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Transfer-Encoding: chunked\r\nContent-Length: 0\r\nX-Zq9x: 1\r\n"));
  // A Content-Length with no value beside Transfer-Encoding is still both.
  expect_request_error(post_with("Transfer-Encoding: chunked\r\nContent-Length: ,\r\nX-Zq9x: 1\r\n"));
  // Codings other than chunked alone.
  for (std::string value : {"gzip", "gzip, chunked", "chunked, chunked", "chunked, gzip", "identity", "", "chunkedZq9x",
                            "chunked;q=1", "\"chunked\"", "chunked chunked", "xchunked"}) {
    INFO("Transfer-Encoding: [" << value << "]");
    expect_request_error(post_with("Transfer-Encoding: " + value + "\r\nX-Zq9x: 1\r\n"));
  }
  expect_request_error(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nX-Zq9x: 1\r\n"));
  expect_request_error(post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nX-Zq9x: 1\r\n"));
  // Transfer-Encoding in HTTP/1.0.
  expect_request_error("POST /Zq9x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
  expect_request_error("POST /Zq9x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");

  // Surrounding whitespace and case do not matter.
  RequestHead h;
  REQUIRE(parse_request_head(post_with("transfer-encoding: \t CHUNKED \r\n"), h) == Parse::complete);
  CHECK(h.body == BodyKind::chunked);
}

// ---------------------------------------------------------------------------------------------
// Response heads
// ---------------------------------------------------------------------------------------------

TEST_CASE("proxy::http1 parses a 200 response with Content-Length") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n";
  const std::string all = head + std::string(42, 'x') + "HTTP/1.1 200 OK\r\n";
  std::string_view in = all;
  ResponseHead h;
  REQUIRE(parse_response_head(in, "POST", h) == Parse::complete);
  CHECK(h.error.empty());
  CHECK(h.status == 200);
  CHECK(h.reason == "OK");
  CHECK(h.version_minor == 1);
  CHECK(h.body == BodyKind::length);
  CHECK(h.content_length == 42);
  CHECK(h.keep_alive);
  CHECK(h.size == head.size());
  REQUIRE(h.headers.size() == 2);
  CHECK(h.find("content-type")->value == "application/json");
  CHECK(points_into(h.reason, in));
  for (const auto& f : h.headers) {
    CHECK(points_into(f.name, in.substr(0, h.size)));
    CHECK(points_into(f.value, in.substr(0, h.size)));
  }

  ResponseHead multi;
  REQUIRE(parse_response_head("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n", "GET", multi) ==
          Parse::complete);
  CHECK(multi.status == 429);
  CHECK(multi.reason == "Too Many Requests");
  CHECK(multi.body == BodyKind::length);
  CHECK(multi.content_length == 0);

  ResponseHead same;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n", "GET", same) ==
          Parse::complete);
  CHECK(same.body == BodyKind::length);
  CHECK(same.content_length == 7);
}

TEST_CASE("proxy::http1 parses chunked and close-delimited responses") {
  ResponseHead c;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", c) == Parse::complete);
  CHECK(c.body == BodyKind::chunked);
  CHECK(c.keep_alive);
  CHECK(c.content_length == 0);

  ResponseHead u;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", "POST", u) == Parse::complete);
  CHECK(u.body == BodyKind::until_close);
  CHECK_FALSE(u.keep_alive);

  ResponseHead no_reason;
  REQUIRE(parse_response_head("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", "GET", no_reason) == Parse::complete);
  CHECK(no_reason.status == 200);
  CHECK(no_reason.reason.empty());
  CHECK(no_reason.body == BodyKind::length);
  CHECK(no_reason.content_length == 2);

  ResponseHead empty_reason;
  REQUIRE(parse_response_head("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", "GET", empty_reason) == Parse::complete);
  CHECK(empty_reason.status == 404);
  CHECK(empty_reason.reason.empty());

  ResponseHead spaced;
  REQUIRE(parse_response_head("HTTP/1.1 500 Internal  Server\tError\r\n\r\n", "GET", spaced) == Parse::complete);
  CHECK(spaced.status == 500);
  CHECK(spaced.reason == "Internal  Server\tError");

  // Transfer-Encoding wins over Content-Length.
  ResponseHead both;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
                              both) == Parse::complete);
  CHECK(both.body == BodyKind::chunked);
  CHECK(both.keep_alive);
  ResponseHead both2;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 10\r\n\r\n",
                              "GET", both2) == Parse::complete);
  CHECK(both2.body == BodyKind::chunked);

  // A final coding other than chunked: the body runs until the server closes.
  for (std::string value : {"gzip", "chunked, gzip", "identity", ""}) {
    INFO("Transfer-Encoding: [" << value << "]");
    ResponseHead g;
    REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: " + value + "\r\nContent-Length: 10\r\n\r\n",
                                "GET", g) == Parse::complete);
    CHECK(g.body == BodyKind::until_close);
    CHECK_FALSE(g.keep_alive);
  }
}

TEST_CASE("proxy::http1 responses without a body: HEAD, 1xx, 204, 304") {
  ResponseHead head;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD", head) == Parse::complete);
  CHECK(head.body == BodyKind::none);
  CHECK(head.keep_alive);

  ResponseHead head_chunked;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", head_chunked) ==
          Parse::complete);
  CHECK(head_chunked.body == BodyKind::none);
  CHECK(head_chunked.keep_alive);

  ResponseHead head_neither;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\n\r\n", "HEAD", head_neither) == Parse::complete);
  CHECK(head_neither.body == BodyKind::none);
  CHECK(head_neither.keep_alive);

  for (int status : {100, 101, 103, 199, 204, 304}) {
    for (std::string fields : {""s, "Content-Length: 10\r\n"s, "Transfer-Encoding: chunked\r\n"s}) {
      INFO("status " << status << " with " << fields);
      ResponseHead h;
      REQUIRE(parse_response_head("HTTP/1.1 " + std::to_string(status) + " X\r\n" + fields + "\r\n", "GET", h) ==
              Parse::complete);
      CHECK(h.status == status);
      CHECK(h.body == BodyKind::none);
      CHECK(h.keep_alive);
    }
  }

  // 205 and others in 2xx/3xx do have a body.
  ResponseHead moved;
  REQUIRE(parse_response_head("HTTP/1.1 301 Moved Permanently\r\nContent-Length: 3\r\n\r\n", "GET", moved) ==
          Parse::complete);
  CHECK(moved.body == BodyKind::length);
}

TEST_CASE("proxy::http1 response keep-alive and versions") {
  ResponseHead h10;
  REQUIRE(parse_response_head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", h10) == Parse::complete);
  CHECK(h10.version_minor == 0);
  CHECK(h10.body == BodyKind::length);
  CHECK_FALSE(h10.keep_alive);

  ResponseHead h10ka;
  REQUIRE(parse_response_head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n", "GET", h10ka) ==
          Parse::complete);
  CHECK(h10ka.keep_alive);

  ResponseHead close;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive, close\r\n\r\n", "GET",
                              close) == Parse::complete);
  CHECK(close.body == BodyKind::length);
  CHECK_FALSE(close.keep_alive);

  // A close-delimited body never keeps the connection, whatever the server says.
  ResponseHead until;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", "GET", until) == Parse::complete);
  CHECK(until.body == BodyKind::until_close);
  CHECK_FALSE(until.keep_alive);
}

TEST_CASE("proxy::http1 a reused response head carries nothing over") {
  ResponseHead h;
  REQUIRE(parse_response_head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "GET", h) == Parse::complete);
  CHECK(h.content_length == 12);
  REQUIRE(parse_response_head("HTTP/1.1 204 No Content\r\n\r\n", "GET", h) == Parse::complete);
  CHECK(h.status == 204);
  CHECK(h.reason == "No Content");
  CHECK(h.body == BodyKind::none);
  CHECK(h.content_length == 0);
  CHECK(h.headers.empty());
  REQUIRE(parse_response_head("HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", h) == Parse::complete);
  CHECK(h.reason.empty());
  CHECK(h.body == BodyKind::chunked);
  CHECK(h.content_length == 0);
}

TEST_CASE("proxy::http1 response heads are incomplete at every prefix") {
  const std::vector<std::string> heads = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n",
      "HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.0 503 Service Unavailable\r\n\r\n",
  };
  for (const auto& head : heads) {
    for (std::size_t n = 0; n < head.size(); ++n) {
      INFO("head " << head << " cut at " << n);
      ResponseHead h;
      CHECK(parse_response_head(std::string_view(head).substr(0, n), "GET", h) == Parse::incomplete);
    }
    INFO("head " << head);
    ResponseHead h;
    REQUIRE(parse_response_head(head + "body", "GET", h) == Parse::complete);
    CHECK(h.size == head.size());
  }
}

TEST_CASE("proxy::http1 rejects malformed responses") {
  // Status lines.
  expect_response_error("HTTP/1.1 20 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 2000 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 20x Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 abc Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1  200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1\t200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 200\tZq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 099 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 000 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 -20 Zq9x\r\n\r\n");
  expect_response_error("HTTP/2 200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/2.0 200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/0.9 200 Zq9x\r\n\r\n");
  expect_response_error("http/1.1 200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1\r\n\r\n");
  expect_response_error("HTTP/1.1 \r\n\r\n");
  expect_response_error("ICY 200 Zq9x\r\n\r\n");
  expect_response_error("Zq9x\r\n\r\n");
  expect_response_error("\r\nHTTP/1.1 200 Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 200 Zq9x\x01\r\n\r\n");
  expect_response_error("HTTP/1.1 200 Zq9x\x7f\r\n\r\n");
  expect_response_error("HTTP/1.1 200 Zq9x\rX\r\n\r\n");
  // Line endings and fields.
  expect_response_error("HTTP/1.1 200 Zq9x\n\r\n");
  expect_response_error("HTTP/1.1 200 OK\r\nX-A: Zq9x\n\r\n");
  expect_response_error("HTTP/1.1 200 OK\r\nX-A: Zq9x\r\n\n");
  expect_response_error("HTTP/1.1 200 OK\r\nContent-Length : 5\r\nX-Zq9x: 1\r\n\r\n");
  expect_response_error("HTTP/1.1 200 OK\r\nX-A: Zq9x\r\n folded\r\n\r\n");
  expect_response_error("HTTP/1.1 200 OK\r\n: Zq9x\r\n\r\n");
  expect_response_error("HTTP/1.1 200 OK\r\nX-A: Zq9x\x01\r\n\r\n");
  // Invalid Content-Length without Transfer-Encoding.
  for (std::string value : {"Zq9x", "-1", "+5", "5 5", "1234567890123456789", "", ",", "5, 6"}) {
    INFO("Content-Length: [" << value << "]");
    expect_response_error("HTTP/1.1 200 OK\r\nContent-Length: " + value + "\r\nX-Zq9x: 1\r\n\r\n");
  }
  expect_response_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\nX-Zq9x: 1\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Chunked bodies
// ---------------------------------------------------------------------------------------------

namespace {
const std::string kChunked =
    "5\r\nhello\r\n"
    "1\r\n \r\n"
    "1A;name=value;flag\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "b ; ext=\"quoted; str\"\r\n world\r\n!!!\r\n"
    "0\r\n"
    "X-Checksum: abc\r\n"
    "X-Other:\tz\r\n"
    "\r\n";
const std::string kChunkedData = "hello abcdefghijklmnopqrstuvwxyz world\r\n!!!";
const std::string kAfter = "POST /next HTTP/1.1\r\n\r\n";
}  // namespace

TEST_CASE("proxy::http1 ChunkedDecoder decodes a body fed whole") {
  auto d = decode_whole(kChunked + kAfter);
  CHECK(d.done);
  CHECK_FALSE(d.failed);
  CHECK(d.error.empty());
  CHECK(d.data == kChunkedData);
  CHECK(d.consumed == kChunked.size());
  CHECK(d.left == kAfter);

  auto exact = decode_whole(kChunked);
  CHECK(exact.done);
  CHECK(exact.consumed == kChunked.size());
  CHECK(exact.left.empty());

  // One step yields at most one run of data.
  ChunkedDecoder dec;
  auto s = dec.step(kChunked);
  CHECK(s.data == "hello");
  CHECK(s.consumed == 8);
}

TEST_CASE("proxy::http1 ChunkedDecoder decodes a body fed one byte at a time") {
  const std::string all = kChunked + kAfter;
  auto d = decode_bytewise(all);
  CHECK(d.done);
  CHECK_FALSE(d.failed);
  CHECK(d.data == kChunkedData);
  CHECK(d.consumed == kChunked.size());
  CHECK(d.left == kAfter);

  // Not done one byte before the end.
  auto short_by_one = decode_bytewise(std::string_view(kChunked).substr(0, kChunked.size() - 1));
  CHECK_FALSE(short_by_one.done);
  CHECK_FALSE(short_by_one.failed);
  CHECK(short_by_one.consumed <= kChunked.size() - 1);
}

TEST_CASE("proxy::http1 ChunkedDecoder decodes a body split at every point") {
  const std::string all = kChunked + kAfter;
  for (std::size_t k = 0; k <= all.size(); ++k) {
    INFO("split at " << k);
    std::string_view v = all;
    auto d = decode({v.substr(0, k), v.substr(k)});
    CHECK(d.done);
    CHECK_FALSE(d.failed);
    CHECK(d.data == kChunkedData);
    CHECK(d.consumed == kChunked.size());
    CHECK(d.left == kAfter);
  }
  // And every split point of the body alone: done exactly when the last byte arrives.
  for (std::size_t k = 0; k < kChunked.size(); ++k) {
    INFO("first piece " << k);
    auto first = decode({std::string_view(kChunked).substr(0, k)});
    CHECK_FALSE(first.done);
    CHECK_FALSE(first.failed);
    CHECK(first.consumed <= k);
    CHECK(kChunkedData.starts_with(first.data));
  }
}

TEST_CASE("proxy::http1 ChunkedDecoder handles extensions, trailers and uppercase hex") {
  auto ext = decode_whole("3;a=b\r\nabc\r\n0;last=1\r\n\r\n");
  CHECK(ext.done);
  CHECK(ext.data == "abc");

  auto upper = decode_whole("1F\r\n" + std::string(31, 'u') + "\r\nA\r\n" + std::string(10, 'v') + "\r\n0\r\n\r\n");
  CHECK(upper.done);
  CHECK(upper.data == std::string(31, 'u') + std::string(10, 'v'));

  auto mixed = decode_whole("00aB\r\n" + std::string(0xab, 'm') + "\r\n000\r\n\r\n");
  CHECK(mixed.done);
  CHECK(mixed.data.size() == 0xab);

  auto trailers = decode_whole("2\r\nhi\r\n0\r\nExpires: never\r\nX-Sig: a b\tc\xc3\xa9\r\n\r\nNEXT");
  CHECK(trailers.done);
  CHECK(trailers.data == "hi");
  CHECK(trailers.left == "NEXT");

  auto empty = decode_whole("0\r\n\r\n");
  CHECK(empty.done);
  CHECK(empty.data.empty());
  CHECK(empty.consumed == 5);
  CHECK(last_chunk == "0\r\n\r\n");

  // The largest accepted size: 15 hex digits.
  ChunkedDecoder big;
  auto s = big.step("fffffffffffffff\r\nabc");
  CHECK_FALSE(big.failed());
  CHECK(s.data == "abc");
  CHECK(s.consumed == 20);

  // A chunk-size line of exactly 4096 bytes.
  auto line = decode_whole("1;" + std::string(4094, 'e') + "\r\nx\r\n0\r\n\r\n");
  CHECK(line.done);
  CHECK(line.data == "x");

  // Trailers well within the bound.
  std::string trailer_lines;
  for (int i = 0; i < 60; ++i) trailer_lines += "X-T" + std::to_string(i) + ": " + std::string(1000, 't') + "\r\n";
  auto big_trailers = decode_whole("0\r\n" + trailer_lines + "\r\n");
  CHECK(big_trailers.done);
  CHECK_FALSE(big_trailers.failed);
}

TEST_CASE("proxy::http1 ChunkedDecoder consumes nothing after done") {
  ChunkedDecoder d;
  const std::string body = "3\r\nabc\r\n0\r\n\r\n";
  std::string_view in = body;
  while (!in.empty() && !d.done()) {
    auto s = d.step(in);
    REQUIRE(s.consumed > 0);
    in.remove_prefix(s.consumed);
  }
  REQUIRE(d.done());
  CHECK(in.empty());
  auto s = d.step("3\r\nabc\r\n0\r\n\r\n");
  CHECK(s.consumed == 0);
  CHECK(s.data.empty());
  CHECK(d.done());
  CHECK_FALSE(d.failed());
  CHECK(d.step("").consumed == 0);

  // An empty input consumes nothing and changes nothing.
  ChunkedDecoder fresh;
  CHECK(fresh.step("").consumed == 0);
  CHECK_FALSE(fresh.done());
  CHECK_FALSE(fresh.failed());
}

TEST_CASE("proxy::http1 ChunkedDecoder rejects malformed framing") {
  // Missing or non-hex sizes.
  expect_chunked_error("\r\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error(";ext\r\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error(" 5\r\nhello\r\n0\r\n\r\n");
  expect_chunked_error("g\r\nZq9x\r\n");
  expect_chunked_error("5g\r\nZq9x\r\n");
  expect_chunked_error("0x5\r\nZq9x\r\n");
  expect_chunked_error("-5\r\nZq9x\r\n");
  expect_chunked_error("+5\r\nZq9x\r\n");
  expect_chunked_error("5\r\nhello\r\nZq9x\r\n0\r\n\r\n");
  // Data longer than the declared size, or not followed by CRLF.
  expect_chunked_error("3\r\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error("4\r\nZq9x\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error("4\r\nZq9x\rZq9x\r\n0\r\n\r\n");
  // Size overflow.
  expect_chunked_error("1000000000000000\r\nZq9x\r\n");
  expect_chunked_error("0000000000000001\r\nZq9x\r\n");
  expect_chunked_error("ffffffffffffffffffffffff\r\nZq9x\r\n");
  // CR without LF, bare LF.
  expect_chunked_error("4\rZq9x\r\n0\r\n\r\n");
  expect_chunked_error("4\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error("4;ext\rZq9x\r\n0\r\n\r\n");
  expect_chunked_error("4;ext\nZq9x\r\n0\r\n\r\n");
  expect_chunked_error("0\r\nX-A: Zq9x\rB\r\n\r\n");
  expect_chunked_error("0\r\nX-A: Zq9x\n\r\n");
  expect_chunked_error("0\r\n\rZq9x");
  expect_chunked_error("0\r\n\nZq9x");
  expect_chunked_error("0\nZq9x\r\n");
  // Control characters in extensions and trailers.
  expect_chunked_error("4;Zq9x\x01\r\nabcd\r\n0\r\n\r\n");
  expect_chunked_error(std::string("4;Zq9x\0\r\nabcd\r\n0\r\n\r\n", 20));
  expect_chunked_error("0\r\nX-A: Zq9x\x01\r\n\r\n");
  // Oversized extension line and trailers.
  expect_chunked_error("1;" + std::string(4095, 'e') + "\r\nx\r\n0\r\n\r\n");
  expect_chunked_error("1;" + std::string(10000, 'e') + "\r\nx\r\n0\r\n\r\n");
  expect_chunked_error("0\r\nX-Big: " + std::string(70 * 1024, 't') + "\r\n\r\n");
  std::string many;
  for (int i = 0; i < 80; ++i) many += "X-T" + std::to_string(i) + ": " + std::string(1000, 't') + "\r\n";
  expect_chunked_error("0\r\n" + many + "\r\n");
}

// ---------------------------------------------------------------------------------------------
// ReadBuffer, chunk_header
// ---------------------------------------------------------------------------------------------

namespace {
void put(ReadBuffer& buf, std::string_view bytes) {
  auto room = buf.prepare(bytes.size());
  REQUIRE(room.size() >= bytes.size());
  std::memcpy(room.data(), bytes.data(), bytes.size());
  buf.commit(bytes.size());
}
}  // namespace

TEST_CASE("proxy::http1 ReadBuffer prepare, commit and consume") {
  ReadBuffer buf(16);
  CHECK(buf.empty());
  CHECK(buf.size() == 0);
  CHECK(buf.data().empty());

  auto room = buf.prepare(4);
  CHECK(room.size() >= 4);
  CHECK(room.size() == 16);  // no growth needed
  std::memcpy(room.data(), "abcdefgh", 8);
  buf.commit(8);
  CHECK(buf.size() == 8);
  CHECK(buf.data() == "abcdefgh");

  buf.consume(3);
  CHECK(buf.data() == "defgh");
  CHECK(buf.size() == 5);
  CHECK_FALSE(buf.empty());

  // Room after the unread bytes; what is written there follows them.
  put(buf, "ij");
  CHECK(buf.data() == "defghij");

  // Consuming more than is there empties the buffer.
  buf.consume(100);
  CHECK(buf.empty());
  CHECK(buf.data().empty());

  put(buf, "xyz");
  buf.clear();
  CHECK(buf.empty());
  CHECK(buf.size() == 0);
}

TEST_CASE("proxy::http1 ReadBuffer growth preserves unread bytes") {
  ReadBuffer buf(8);
  put(buf, "01234567");
  buf.consume(2);
  CHECK(buf.data() == "234567");

  // Compaction: room for 2 more exists only after moving the unread bytes to the front.
  auto room = buf.prepare(2);
  CHECK(room.size() >= 2);
  CHECK(buf.data() == "234567");
  std::memcpy(room.data(), "89", 2);
  buf.commit(2);
  CHECK(buf.data() == "23456789");

  // Growth.
  buf.consume(1);
  auto more = buf.prepare(1000);
  CHECK(more.size() >= 1000);
  CHECK(buf.data() == "3456789");
  std::string big(1000, 'q');
  std::memcpy(more.data(), big.data(), big.size());
  buf.commit(big.size());
  CHECK(buf.size() == 7 + 1000);
  CHECK(buf.data() == "3456789" + big);

  // Many rounds of partial consumption and appends keep the byte stream intact.
  ReadBuffer r(4);
  std::string written;
  for (int i = 0; i < 500; ++i) {
    std::string piece = std::to_string(i) + ",";
    put(r, piece);
    written += piece;
    if (i % 3 == 0) {
      auto n = r.size() / 2;
      r.consume(n);
      written.erase(0, n);
    }
    REQUIRE(r.data() == written);
  }
}

TEST_CASE("proxy::http1 ReadBuffer consuming everything resets to the front") {
  ReadBuffer buf(16);
  put(buf, "0123456789");
  buf.consume(4);
  buf.consume(6);
  CHECK(buf.empty());
  // All 16 bytes of storage are writable again, without growth.
  auto room = buf.prepare(1);
  CHECK(room.size() == 16);
  put(buf, "abc");
  CHECK(buf.data() == "abc");
}

TEST_CASE("proxy::http1 ReadBuffer holds storage only from prepare() to release() while empty") {
  ReadBuffer buf;
  CHECK_FALSE(buf.holds_storage());  // a connection that has read nothing holds nothing
  CHECK(buf.data().empty());
  put(buf, "event 1");
  CHECK(buf.holds_storage());
  CHECK_FALSE(buf.release());  // unread bytes: kept
  CHECK(buf.data() == "event 1");
  buf.consume(7);
  CHECK(buf.release());
  CHECK_FALSE(buf.holds_storage());
  CHECK(buf.data().empty());
  // Taken again (from this thread's spares) at the next prepare(), at the default size.
  auto room = buf.prepare(1);
  CHECK(room.size() == ReadBuffer::kDefaultCapacity);
  put(buf, "event 2");
  CHECK(buf.data() == "event 2");

  // A grown buffer is released and replaced by one of the default size.
  ReadBuffer grown;
  std::string big(40 * 1024, 'g');
  put(grown, big);
  CHECK(grown.data() == big);
  grown.consume(big.size());
  CHECK(grown.release());
  CHECK(grown.prepare(1).size() == ReadBuffer::kDefaultCapacity);

  // Many buffers released and taken again keep their bytes apart.
  std::vector<ReadBuffer> many(40);
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < many.size(); ++i) put(many[i], "conn " + std::to_string(i));
    for (std::size_t i = 0; i < many.size(); ++i) {
      REQUIRE(many[i].data() == "conn " + std::to_string(i));
      many[i].consume(many[i].size());
      CHECK(many[i].release());
    }
  }
}

TEST_CASE("proxy::http1 chunk_header") {
  CHECK(chunk_header(0x4000) == "4000\r\n");
  CHECK(chunk_header(0) == "0\r\n");
  CHECK(chunk_header(1) == "1\r\n");
  CHECK(chunk_header(0xabc) == "abc\r\n");
  CHECK(chunk_header(0xffffffff) == "ffffffff\r\n");
  CHECK(chunk_header(static_cast<std::size_t>(-1)) == std::string(sizeof(std::size_t) * 2, 'f') + "\r\n");

  // A header it writes decodes to the same size.
  const std::string payload(0x123, 'p');
  auto d = decode_whole(chunk_header(payload.size()) + payload + "\r\n" + std::string(last_chunk));
  CHECK(d.done);
  CHECK(d.data == payload);
}

// ---- HeadScanner: a head that arrives in pieces is parsed a bounded number of times.

namespace {

struct PieceByPiece {
  Parse result = Parse::incomplete;
  std::size_t parses = 0;   // calls of parse_request_head
  std::size_t scanned = 0;  // bytes the scanner looked at
  std::size_t size = 0;
  std::string method, target, error;
  std::size_t headers = 0;
};

// What the proxy's read loop does: bytes arrive `piece` at a time into one buffer; the head is
// parsed only when the scanner says so.
PieceByPiece feed(std::string_view in, std::size_t piece) {
  PieceByPiece out;
  HeadScanner scanner;
  RequestHead head;
  for (std::size_t have = std::min(piece, in.size());; have = std::min(have + piece, in.size())) {
    std::string_view so_far = in.substr(0, have);
    if (scanner.scan(so_far)) {
      ++out.parses;
      out.result = parse_request_head(so_far, head);
      if (out.result != Parse::incomplete) break;
    }
    if (have == in.size()) break;
  }
  out.scanned = scanner.bytes_scanned();
  if (out.result == Parse::complete) {
    out.size = head.size;
    out.method = std::string(head.method);
    out.target = std::string(head.target);
    out.headers = head.headers.size();
  }
  out.error = head.error;
  return out;
}

}  // namespace

TEST_CASE("proxy::http1 HeadScanner: a head fed byte by byte parses as when fed whole") {
  const std::vector<std::string> inputs = {
      "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
      "GET / HTTP/1.1\r\n\r\n",
      "\r\n\r\nGET /a HTTP/1.0\r\nA: b\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\n\n",                  // bare LF: an error, not a wait
      "GET / HTTP/1.1\r\nHost: x\n\r\n",             // bare LF in a field line
      "BROKEN\r\n",                                  // a bad request line is refused at once
      "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n",               // incomplete
      "\r",
  };
  for (const auto& in : inputs) {
    RequestHead whole;
    Parse expected = parse_request_head(in, whole);
    for (std::size_t piece : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(7), in.size()}) {
      INFO("input: " << in << " piece: " << piece);
      auto got = feed(in, piece);
      CHECK(got.result == expected);
      CHECK(got.error == whole.error);
      if (expected == Parse::complete) {
        CHECK(got.size == whole.size);
        CHECK(got.method == whole.method);
        CHECK(got.target == whole.target);
        CHECK(got.headers == whole.headers.size());
      }
    }
  }
}

TEST_CASE("proxy::http1 HeadScanner: the work for a head sent a byte at a time is linear") {
  // 60 KiB of fields, one byte per read: the old loop parsed from the start after every read
  // (about 1.8 GB of bytes looked at); now each byte is looked at once and the head parsed twice.
  std::string in = "POST /openai/v1/chat/completions HTTP/1.1\r\n";
  while (in.size() < 60 * 1024) in += "X-Filler: " + std::string(50, 'a') + "\r\n";
  in += "\r\n";
  auto got = feed(in, 1);
  REQUIRE(got.result == Parse::complete);
  CHECK(got.size == in.size());
  CHECK(got.parses <= 3);
  CHECK(got.scanned <= in.size());
  // Leading empty lines and a long request line, byte by byte.
  std::string leading = std::string(4000, '\r') + "\n";  // not empty lines: one bad request line
  auto bad = feed(leading, 1);
  CHECK(bad.result == Parse::error);
  CHECK(bad.parses <= 3);
  std::string crlfs;
  for (int i = 0; i < 10000; ++i) crlfs += "\r\n";
  auto empties = feed(crlfs + "GET / HTTP/1.1\r\n\r\n", 1);
  CHECK(empties.result == Parse::complete);
  CHECK(empties.parses <= 3);
  CHECK(empties.scanned <= crlfs.size() + 18);
}

TEST_CASE("proxy::http1 HeadScanner: reset starts over for the next head") {
  HeadScanner scanner;
  CHECK(scanner.scan("GET / HTTP/1.1\r\n"));
  CHECK_FALSE(scanner.scan("GET / HTTP/1.1\r\nA: b"));
  CHECK(scanner.scan("GET / HTTP/1.1\r\nA: b\r\n\r\n"));
  scanner.reset();
  CHECK(scanner.bytes_scanned() == 0);
  CHECK_FALSE(scanner.scan("GET"));
  CHECK(scanner.scan("GET / HTTP/1.1\r\n"));
}
