#include "proxy/http/relay.hpp"

#include <algorithm>

namespace tokfence::proxy {

namespace net = boost::asio;

BodyFraming::BodyFraming(const http1::ResponseHead& res, int client_minor, bool encode, std::string& dechunked,
                         std::string& chunk_head)
    : kind_(res.body),
      relay_chunks_(res.body == http1::BodyKind::chunked && client_minor >= 1),
      encode_(encode),
      remaining_(res.content_length),
      done_(res.body == http1::BodyKind::none || (res.body == http1::BodyKind::length && res.content_length == 0)),
      dechunked_(dechunked),
      chunk_head_(chunk_head) {}

std::size_t BodyFraming::take(std::string_view avail, UsageExtractor& usage, Gather& pieces) {
  std::size_t used = 0;
  switch (kind_) {
    case http1::BodyKind::none:
      break;
    case http1::BodyKind::length:
      used = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, avail.size()));
      remaining_ -= used;
      done_ = remaining_ == 0;
      if (used > 0) {
        usage.feed(avail.substr(0, used));
        pieces.add(net::buffer(avail.data(), used));
      }
      break;
    case http1::BodyKind::chunked:
      used = take_chunks(avail, usage, pieces);
      break;
    case http1::BodyKind::until_close:
      used = avail.size();
      if (used > 0) {
        usage.feed(avail);
        if (encode_) {
          chunk_head_ = http1::chunk_header(used);
          pieces.add(net::buffer(chunk_head_));
          pieces.add(net::buffer(avail.data(), used));
          pieces.add(net::buffer("\r\n", 2));
        } else {
          pieces.add(net::buffer(avail.data(), used));
        }
      }
      break;
  }
  if (done_ && encode_) pieces.add(net::buffer(http1::last_chunk.data(), http1::last_chunk.size()));
  return used;
}

std::size_t BodyFraming::take_chunks(std::string_view avail, UsageExtractor& usage, Gather& pieces) {
  // The data of the chunks at hand, without the upstream's framing: chunk extensions and trailers
  // are not relayed (the response scan reads data only, and a hostile upstream could write the
  // key there). One chunk's data, the usual case for a stream's event, is sent from where it
  // lies; the data of several is gathered in dechunked_.
  std::size_t used = 0;
  std::string_view data;
  dechunked_.clear();
  while (used < avail.size() && !decoder_.done() && !decoder_.failed()) {
    auto step = decoder_.step(avail.substr(used));
    if (step.consumed == 0) break;
    used += step.consumed;
    if (step.data.empty()) continue;
    usage.feed(step.data);
    if (data.empty()) {
      data = step.data;
      continue;
    }
    if (dechunked_.empty()) dechunked_.assign(data);
    dechunked_.append(step.data);
    data = dechunked_;
  }
  done_ = decoder_.done();
  if (!relay_chunks_) {  // an HTTP/1.0 client (rare): the data alone, the close ends it
    if (!data.empty()) pieces.add(net::buffer(data.data(), data.size()));
    return used;
  }
  if (!data.empty()) {  // one chunk of the proxy's own
    chunk_head_ = http1::chunk_header(data.size());
    pieces.add(net::buffer(chunk_head_));
    pieces.add(net::buffer(data.data(), data.size()));
    pieces.add(net::buffer("\r\n", 2));
  }
  if (done_) pieces.add(net::buffer(http1::last_chunk.data(), http1::last_chunk.size()));
  return used;
}

}  // namespace tokfence::proxy
