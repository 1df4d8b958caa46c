#include "proxy/egress/client_hello.hpp"

#include <cctype>
#include <cstdint>
#include <optional>

namespace tokfence::proxy::egress {

namespace {

constexpr unsigned kHandshakeRecord = 22;
constexpr unsigned kClientHelloMessage = 1;
constexpr std::size_t kRecordHeader = 5;
constexpr std::size_t kMaxRecordPayload = 16384 + 256;  // TLSPlaintext limit, with slack for old clients
constexpr unsigned kServerNameExtension = 0;
constexpr unsigned kEncryptedClientHelloExtension = 0xfe0d;

// A cursor over one ClientHello body: every read checks the bounds.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  std::optional<unsigned> u8() { return take_uint(1); }
  std::optional<unsigned> u16() { return take_uint(2); }
  std::optional<std::string_view> bytes(std::size_t n) {
    if (data_.size() - at_ < n) return std::nullopt;
    std::string_view out = data_.substr(at_, n);
    at_ += n;
    return out;
  }
  // A field with a length prefix of `width` bytes.
  std::optional<std::string_view> vector(std::size_t width) {
    auto n = take_uint(width);
    if (!n) return std::nullopt;
    return bytes(*n);
  }
  bool done() const { return at_ == data_.size(); }

 private:
  std::optional<unsigned> take_uint(std::size_t width) {
    if (data_.size() - at_ < width) return std::nullopt;
    unsigned v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(data_[at_ + i]);
    at_ += width;
    return v;
  }
  std::string_view data_;
  std::size_t at_ = 0;
};

ClientHello broken(std::string why) {
  ClientHello out;
  out.status = ClientHello::malformed;
  out.why = std::move(why);
  return out;
}

// The server_name extension's body: a list holding one host_name.
std::optional<std::string> host_name(std::string_view body) {
  Reader r(body);
  auto list = r.vector(2);
  if (!list || !r.done()) return std::nullopt;
  Reader names(*list);
  std::optional<std::string> found;
  while (!names.done()) {
    auto type = names.u8();
    auto name = names.vector(2);
    if (!type || !name) return std::nullopt;
    if (*type != 0) continue;           // only host_name (0) is defined
    if (found || name->empty()) return std::nullopt;  // one host_name, never empty
    std::string lower;
    for (char c : *name) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) return std::nullopt;  // a DNS name in ASCII (A-labels)
      lower.push_back(static_cast<char>(std::tolower(u)));
    }
    if (lower.back() == '.') lower.pop_back();
    if (lower.empty()) return std::nullopt;
    found = std::move(lower);
  }
  return found.value_or(std::string());
}

// The ClientHello body (after the 4-byte handshake header).
ClientHello read_body(std::string_view body) {
  Reader r(body);
  if (!r.u16() || !r.bytes(32)) return broken("ClientHello too short");
  auto session_id = r.vector(1);
  auto suites = r.vector(2);
  auto compression = r.vector(1);
  if (!session_id || session_id->size() > 32 || !suites || !compression) return broken("ClientHello fields cut short");
  ClientHello out;
  out.status = ClientHello::complete;
  if (r.done()) return out;  // no extensions at all (and so no server name)
  auto extensions = r.vector(2);
  if (!extensions || !r.done()) return broken("ClientHello extensions malformed");
  Reader ext(*extensions);
  bool seen_name = false;
  while (!ext.done()) {
    auto type = ext.u16();
    auto data = ext.vector(2);
    if (!type || !data) return broken("ClientHello extension cut short");
    if (*type == kEncryptedClientHelloExtension) out.encrypted = true;
    if (*type != kServerNameExtension) continue;
    if (seen_name) return broken("two server_name extensions");
    seen_name = true;
    auto name = host_name(*data);
    if (!name) return broken("server_name extension malformed");
    out.server_name = std::move(*name);
  }
  return out;
}

}  // namespace

ClientHello read_client_hello(std::string_view bytes) {
  // The handshake message may span several records: join their payloads first.
  std::string handshake;
  std::size_t at = 0;
  for (;;) {
    if (handshake.size() >= 4) {
      if (static_cast<unsigned char>(handshake[0]) != kClientHelloMessage)
        return broken("the first handshake message is not a ClientHello");
      const std::size_t length = (std::size_t{static_cast<unsigned char>(handshake[1])} << 16) |
                                 (std::size_t{static_cast<unsigned char>(handshake[2])} << 8) |
                                 static_cast<unsigned char>(handshake[3]);
      if (length + 4 > kMaxClientHelloBytes) return broken("ClientHello larger than tokfence reads");
      if (handshake.size() >= length + 4) return read_body(std::string_view(handshake).substr(4, length));
    }
    if (bytes.size() - at < kRecordHeader) break;
    if (static_cast<unsigned char>(bytes[at]) != kHandshakeRecord) return broken("not a TLS handshake record");
    if (static_cast<unsigned char>(bytes[at + 1]) != 3) return broken("not a TLS record version");
    const std::size_t payload = (std::size_t{static_cast<unsigned char>(bytes[at + 3])} << 8) |
                                static_cast<unsigned char>(bytes[at + 4]);
    if (payload == 0 || payload > kMaxRecordPayload) return broken("TLS record length out of range");
    if (bytes.size() - at - kRecordHeader < payload) break;
    handshake.append(bytes.substr(at + kRecordHeader, payload));
    at += kRecordHeader + payload;
  }
  // Only the first byte(s) so far: each present byte must still fit a handshake record.
  if (at < bytes.size() && static_cast<unsigned char>(bytes[at]) != kHandshakeRecord)
    return broken("not a TLS handshake record");
  if (bytes.size() > kMaxClientHelloBytes + 64) return broken("ClientHello larger than tokfence reads");
  return ClientHello{};
}

}  // namespace tokfence::proxy::egress
