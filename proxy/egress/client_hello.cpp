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

// The big-endian number in the first `width` bytes of `b`: TLS lengths (2 bytes for a record's
// payload, 3 for a handshake message's body).
std::size_t big_endian(std::string_view b, std::size_t width) {
  std::size_t v = 0;
  for (std::size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

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
      const std::size_t length = big_endian(std::string_view(handshake).substr(1), 3);
      if (length + 4 > kMaxClientHelloBytes) return broken("ClientHello larger than tokfence reads");
      if (handshake.size() >= length + 4) return read_body(std::string_view(handshake).substr(4, length));
    }
    if (bytes.size() - at < kRecordHeader) break;
    if (static_cast<unsigned char>(bytes[at]) != kHandshakeRecord) return broken("not a TLS handshake record");
    if (static_cast<unsigned char>(bytes[at + 1]) != 3) return broken("not a TLS record version");
    const std::size_t payload = big_endian(bytes.substr(at + 3), 2);
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

namespace {
constexpr unsigned kChangeCipherSpecRecord = 20;
constexpr unsigned kAlertRecord = 21;
// Records a client sends before its first application data: a handful (a TLS 1.2 client with a
// certificate sends five). Past this many, the tunnel is refused rather than left unwatched.
constexpr std::size_t kMaxWatchedRecords = 64;
}  // namespace

ClientFlightWatch::Verdict ClientFlightWatch::feed(std::string_view bytes) {
  while (state_ == Verdict::watching && !bytes.empty()) {
    // Complete the record header, then the record.
    auto declared = [&] { return big_endian(std::string_view(record_).substr(3), 2); };
    const std::size_t want = kRecordHeader + (record_.size() >= kRecordHeader ? declared() : 0);
    const std::size_t take = std::min(bytes.size(), want - record_.size());
    record_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (record_.size() < kRecordHeader) continue;
    if (record_.size() == kRecordHeader &&
        (static_cast<unsigned char>(record_[1]) != 3 || declared() > kMaxRecordPayload + 2048)) {
      why_ = "a TLS record the handshake does not send";
      return state_ = Verdict::refused;
    }
    if (record_.size() < kRecordHeader + declared()) continue;
    if (++records_ > kMaxWatchedRecords) {
      why_ = "more than " + std::to_string(kMaxWatchedRecords) + " TLS records before any application data";
      return state_ = Verdict::refused;
    }
    const unsigned type = static_cast<unsigned char>(record_[0]);
    state_ = record(type, std::string_view(record_).substr(kRecordHeader));
    record_.clear();
  }
  return state_;
}

ClientFlightWatch::Verdict ClientFlightWatch::record(unsigned type, std::string_view payload) {
  if (type == kChangeCipherSpecRecord) {
    after_ccs_ = true;
    return Verdict::watching;
  }
  // A warning alert (level 1: user_canceled, ...) leaves the handshake going: servers read on, so
  // the watch does too (review 13d E1). A fatal one ends the connection.
  if (type == kAlertRecord) return payload.size() >= 1 && static_cast<unsigned char>(payload[0]) == 1 ? Verdict::watching : Verdict::done;
  if (type != kHandshakeRecord) return Verdict::done;  // application data: the handshake is over
  return handshake_bytes(payload);
}

// The plain handshake messages before the client's CCS, joined across records: ClientHellos are
// read, every other message skipped by its length.
ClientFlightWatch::Verdict ClientFlightWatch::handshake_bytes(std::string_view payload) {
  while (!payload.empty()) {
    if (skip_ > 0) {
      const std::size_t n = std::min(skip_, payload.size());
      skip_ -= n;
      payload.remove_prefix(n);
      continue;
    }
    const std::size_t need_header = message_.size() < 4 ? 4 - message_.size() : 0;
    if (need_header > 0) {
      const std::size_t n = std::min(need_header, payload.size());
      message_.append(payload.substr(0, n));
      payload.remove_prefix(n);
      if (message_.size() < 4) break;
      const std::size_t length = big_endian(std::string_view(message_).substr(1), 3);
      if (static_cast<unsigned char>(message_[0]) != kClientHelloMessage) {
        // After the client's CCS, a TLS 1.2 client's records are encrypted (its Finished): the
        // handshake's plain part is over. A TLS 1.3 client sends only a second ClientHello there,
        // joined across records like the first (review 13d E1: one split in two records).
        if (after_ccs_) return Verdict::done;
        message_.clear();
        skip_ = length;
        continue;
      }
      if (length + 4 > kMaxClientHelloBytes) {
        if (after_ccs_) return Verdict::done;  // encrypted bytes that begin like one (TLS 1.2)
        why_ = "a ClientHello larger than tokfence reads";
        return Verdict::refused;
      }
    }
    const std::size_t length = big_endian(std::string_view(message_).substr(1), 3);
    const std::size_t n = std::min(length + 4 - message_.size(), payload.size());
    message_.append(payload.substr(0, n));
    payload.remove_prefix(n);
    if (message_.size() < length + 4) break;
    const Verdict v = ++hellos_ == 1 ? Verdict::watching : check(std::string_view(message_).substr(4));
    message_.clear();
    if (v != Verdict::watching) return v;
  }
  return Verdict::watching;
}

ClientFlightWatch::Verdict ClientFlightWatch::check(std::string_view hello_body) {
  const ClientHello hello = read_body(hello_body);
  if (hello.status != ClientHello::complete) {
    why_ = "a second ClientHello that cannot be read (" + hello.why + ")";
    return Verdict::refused;
  }
  if (hello.encrypted) {
    why_ = "a second ClientHello is encrypted (ECH)";
    return Verdict::refused;
  }
  if (hello.server_name != name_) {
    why_ = "a second ClientHello asks for '" + hello.server_name + "', the first for '" + name_ + "'";
    return Verdict::refused;
  }
  return Verdict::watching;
}

}  // namespace tokfence::proxy::egress
