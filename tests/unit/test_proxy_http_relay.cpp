#include <catch2/catch.hpp>

#include <string>

#include "proxy/http/relay.hpp"

using namespace tokfence::proxy;

namespace {

// Notes the body bytes it is fed.
class NotingExtractor final : public UsageExtractor {
 public:
  std::string fed;
  void feed(std::string_view bytes) override { fed.append(bytes); }
  Usage finish() override { return {}; }
  std::string response_model() const override { return ""; }
};

http1::ResponseHead head_of(const std::string& text, std::string_view method = "POST") {
  static std::string keep;  // the head's views point into it
  keep = text;
  http1::ResponseHead res;
  REQUIRE(http1::parse_response_head(keep, method, res) == http1::Parse::complete);
  return res;
}

// What the client would get from `pieces`.
std::string bytes_of(const Gather& pieces) {
  std::string out;
  for (const auto& b : pieces.sequence()) out.append(static_cast<const char*>(b.data()), b.size());
  return out;
}

// One take() of `avail`: what goes to the client.
std::string take(BodyFraming& framing, std::string_view avail, NotingExtractor& usage, std::size_t& used) {
  Gather pieces;
  used = framing.take(avail, usage, pieces);
  return bytes_of(pieces);
}

}  // namespace

TEST_CASE("proxy::BodyFraming passes a Content-Length body through as it arrives, and no byte past it") {
  std::string dechunked, chunk_head;
  NotingExtractor usage;
  BodyFraming framing(head_of("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), 1, false, dechunked, chunk_head);
  std::size_t used = 0;
  CHECK(take(framing, "hello", usage, used) == "hello");
  CHECK(used == 5);
  CHECK_FALSE(framing.done());
  CHECK(take(framing, "worldHTTP/1.1 200", usage, used) == "world");
  CHECK(used == 5);
  CHECK(framing.done());
  CHECK(usage.fed == "helloworld");
}

TEST_CASE("proxy::BodyFraming re-chunks a chunked body to HTTP/1.1, decoded to HTTP/1.0") {
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  std::string dechunked, chunk_head;
  std::size_t used = 0;
  {
    NotingExtractor usage;
    BodyFraming framing(head_of(head), 1, false, dechunked, chunk_head);
    CHECK(take(framing, body, usage, used) == "b\r\nhello world\r\n0\r\n\r\n");  // the two as one chunk
    CHECK(used == body.size());
    CHECK(framing.done());
    CHECK(usage.fed == "hello world");
  }
  {
    // One chunk at a time (a stream's events): each sent as it comes, from where it lies.
    NotingExtractor usage;
    BodyFraming framing(head_of(head), 1, false, dechunked, chunk_head);
    CHECK(take(framing, body.substr(0, 10), usage, used) == "5\r\nhello\r\n");
    CHECK(take(framing, body.substr(used, 3), usage, used) == "");  // the size line only
    CHECK(take(framing, body.substr(13), usage, used) == "6\r\n world\r\n0\r\n\r\n");
    CHECK(framing.done());
  }
  {
    NotingExtractor usage;
    BodyFraming framing(head_of(head), 0, false, dechunked, chunk_head);
    CHECK(take(framing, body.substr(0, 12), usage, used) == "hello");
    CHECK_FALSE(framing.done());
    CHECK(take(framing, body.substr(used), usage, used) == " world");
    CHECK(framing.done());
    CHECK(usage.fed == "hello world");
  }
}

TEST_CASE("proxy::BodyFraming chunk-encodes a body that ends with the upstream's close") {
  std::string dechunked, chunk_head;
  NotingExtractor usage;
  BodyFraming framing(head_of("HTTP/1.1 200 OK\r\n\r\n"), 1, true, dechunked, chunk_head);
  REQUIRE(framing.kind() == http1::BodyKind::until_close);
  std::size_t used = 0;
  CHECK(take(framing, "abc", usage, used) == "3\r\nabc\r\n");
  CHECK_FALSE(framing.done());
  framing.end_at_close();
  CHECK(take(framing, "", usage, used) == "0\r\n\r\n");
  CHECK(usage.fed == "abc");
}

TEST_CASE("proxy::BodyFraming stops at malformed chunk framing, and sends nothing for a bodiless reply") {
  std::string dechunked, chunk_head;
  NotingExtractor usage;
  std::size_t used = 0;
  BodyFraming chunked(head_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 1, false, dechunked,
                      chunk_head);
  take(chunked, "zz\r\nhello\r\n", usage, used);
  CHECK(chunked.decoder().failed());
  CHECK_FALSE(chunked.done());
  BodyFraming head(head_of("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "HEAD"), 1, false, dechunked,
                   chunk_head);
  CHECK(head.done());
  CHECK(take(head, "", usage, used).empty());
  CHECK(usage.fed.empty());
}

TEST_CASE("proxy::BodyFraming drops the upstream's chunk extensions and trailers") {
  // A hostile upstream could write a key there: the response scan reads the data only.
  const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string body = "5;k=SECRET\r\nhello\r\n0;k=SECRET\r\nX-Trailer: SECRET\r\n\r\n";
  std::string dechunked, chunk_head;
  std::size_t used = 0;
  NotingExtractor usage;
  BodyFraming framing(head_of(head), 1, false, dechunked, chunk_head);
  CHECK(take(framing, body, usage, used) == "5\r\nhello\r\n0\r\n\r\n");
  CHECK(used == body.size());
  CHECK(framing.done());
  CHECK(usage.fed == "hello");
}
