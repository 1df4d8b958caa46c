#pragma once
// How bytes go out on the data path, apart from the sockets: Gather, one write of up to five
// pieces offered to the kernel at once, and BodyFraming, which turns what the upstream sent of a
// response body into what goes to the client (and to the usage extractor). Used by the sessions
// and exchanges in server.cpp; BodyFraming is unit-tested with no socket at all
// (tests/unit/test_proxy_http_relay.cpp).
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

#include "proxy/http/http1.hpp"
#include "proxy/metering/usage.hpp"

namespace tokfence::proxy {

// What one write sends: the response head, body bytes, chunk framing (at most five pieces). A
// fixed array, because Asio copies a vector buffer sequence into every write operation.
//
// write_now() offers everything to the kernel at once, without waiting: a reply or a request
// normally fits the socket buffer, and then the coroutine neither suspends nor allocates an
// operation (an asynchronous write costs an operation object, a coroutine frame for its
// initiation and a trip through the scheduler, for a send that has already happened). What the
// kernel did not take is left for an asynchronous write. Sockets are put in non-blocking mode
// when opened, so this never blocks a thread.
class Gather {
 public:
  void add(boost::asio::const_buffer b) {
    if (b.size() > 0) pieces_[count_++] = b;
  }
  bool empty() const { return first_ == count_; }
  std::span<const boost::asio::const_buffer> sequence() const { return {pieces_.data() + first_, count_ - first_}; }

  // true when all was written; false with `ec` clear when the rest must be written
  // asynchronously (sequence()), false with `ec` set on an error.
  template <class Socket>
  bool write_now(Socket& socket, boost::system::error_code& ec) {
    std::size_t n = socket.write_some(sequence(), ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) ec = {};
    consume(n);
    return !ec && empty();
  }

 private:
  void consume(std::size_t n) {
    while (n > 0 && first_ < count_) {
      boost::asio::const_buffer& b = pieces_[first_];
      if (n < b.size()) {
        b += n;
        return;
      }
      n -= b.size();
      ++first_;
    }
  }
  std::array<boost::asio::const_buffer, 5> pieces_;
  std::size_t first_ = 0;
  std::size_t count_ = 0;
};

// How a response body goes from the upstream's framing to the client's (the client's response
// head, built first, chose it): a Content-Length body passes through as it is; a chunked one is
// decoded and, to an HTTP/1.1 client, chunk-encoded again (the upstream's chunk extensions and
// trailers are dropped: they could carry what the response scan, which reads data, never sees);
// a body that ends with the upstream's close is chunk-encoded here for an HTTP/1.1 client. Every
// body byte is fed to the usage extractor.
class BodyFraming {
 public:
  // `res`: the upstream's response head; `encode`: chunk-encode a body that ends with the
  // upstream's close. `dechunked` and `chunk_head` are scratch buffers the caller keeps between
  // responses; the pieces take() adds may point into them until the next take().
  BodyFraming(const http1::ResponseHead& res, int client_minor, bool encode, std::string& dechunked,
              std::string& chunk_head);

  http1::BodyKind kind() const { return kind_; }
  // The whole body has been taken (for until_close: once end_at_close() was called).
  bool done() const { return done_; }
  // The upstream closed the connection, which ends a body of kind until_close.
  void end_at_close() { done_ = true; }
  // A chunked body's decoder: failed() when the upstream's chunk framing is malformed.
  const http1::ChunkedDecoder& decoder() const { return decoder_; }

  // Adds to `pieces` what of `avail` (the upstream's bytes at hand) goes to the client now, and
  // feeds `usage` the body bytes among them; returns how many bytes of `avail` that used. Adds at
  // most four pieces (a chunk's size line, its data, its CRLF and the last chunk).
  std::size_t take(std::string_view avail, UsageExtractor& usage, Gather& pieces);

 private:
  std::size_t take_chunks(std::string_view avail, UsageExtractor& usage, Gather& pieces);

  http1::BodyKind kind_;
  bool relay_chunks_;  // chunked, to an HTTP/1.1 client: re-chunked
  bool encode_;
  std::uint64_t remaining_;  // of a Content-Length body
  http1::ChunkedDecoder decoder_;
  bool done_;
  std::string& dechunked_;
  std::string& chunk_head_;
};

}  // namespace tokfence::proxy
