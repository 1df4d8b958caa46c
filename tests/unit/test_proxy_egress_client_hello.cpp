#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proxy/egress/client_hello.hpp"

using namespace tokfence::proxy::egress;

namespace {

std::string be(std::size_t value, int width) {
  std::string out;
  for (int i = width - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  return out;
}
std::string with_length(const std::string& body, int width) { return be(body.size(), width) + body; }

std::string extension(unsigned type, const std::string& data) { return be(type, 2) + with_length(data, 2); }
std::string server_name(const std::string& name) {
  return extension(0, with_length(std::string(1, '\0') + with_length(name, 2), 2));
}

// A ClientHello handshake message (header included) with these extensions.
std::string hello_message(const std::vector<std::string>& extensions, bool with_extensions = true) {
  std::string body = be(0x0303, 2) + std::string(32, 'r') + with_length(std::string(32, 's'), 1) +
                     with_length(be(0x1301, 2) + be(0x1302, 2), 2) + with_length(std::string(1, '\0'), 1);
  if (with_extensions) {
    std::string all;
    for (const auto& e : extensions) all += e;
    body += with_length(all, 2);
  }
  return std::string(1, '\x01') + with_length(body, 3);
}

// The message in TLS handshake records of at most `piece` bytes each.
std::string records(const std::string& message, std::size_t piece = 16384) {
  std::string out;
  for (std::size_t at = 0; at < message.size(); at += piece) {
    const std::string part = message.substr(at, piece);
    out += std::string("\x16\x03\x01", 3) + with_length(part, 2);
  }
  return out;
}

}  // namespace

TEST_CASE("egress::read_client_hello finds the server name, lower-cased, without a trailing dot") {
  const auto hello = read_client_hello(records(hello_message({extension(10, "xx"), server_name("API.Example.COM.")})));
  REQUIRE(hello.status == ClientHello::complete);
  CHECK(hello.server_name == "api.example.com");
  CHECK_FALSE(hello.encrypted);
}

TEST_CASE("egress::read_client_hello joins a ClientHello split over records and asks for more until whole") {
  const std::string padding = extension(21, std::string(3000, '\0'));
  const std::string wire = records(hello_message({padding, server_name("site.example")}), 700);
  for (std::size_t cut : {std::size_t{1}, std::size_t{5}, std::size_t{700}, wire.size() - 1}) {
    INFO(cut);
    CHECK(read_client_hello(wire.substr(0, cut)).status == ClientHello::need_more);
  }
  const auto whole = read_client_hello(wire);
  REQUIRE(whole.status == ClientHello::complete);
  CHECK(whole.server_name == "site.example");
}

TEST_CASE("egress::read_client_hello reports ECH, a missing name, and refuses what is not a ClientHello") {
  const auto ech = read_client_hello(records(hello_message({server_name("public.example"), extension(0xfe0d, "enc")})));
  REQUIRE(ech.status == ClientHello::complete);
  CHECK(ech.encrypted);
  CHECK(read_client_hello(records(hello_message({extension(10, "xx")}))).server_name.empty());
  CHECK(read_client_hello(records(hello_message({}, false))).status == ClientHello::complete);

  CHECK(read_client_hello("GET / HTTP/1.1\r\n\r\n").status == ClientHello::malformed);
  CHECK(read_client_hello(std::string("\x16\x03\x01\x00\x00", 5)).status == ClientHello::malformed);  // empty record
  std::string server_hello = hello_message({server_name("a.example")});
  server_hello[0] = 2;
  CHECK(read_client_hello(records(server_hello)).status == ClientHello::malformed);
  // Two server_name extensions, two host names in one, an empty or non-ASCII name: malformed.
  CHECK(read_client_hello(records(hello_message({server_name("a.example"), server_name("b.example")}))).status ==
        ClientHello::malformed);
  const std::string two = with_length(std::string(1, '\0') + with_length("a.example", 2) + std::string(1, '\0') +
                                          with_length("b.example", 2), 2);
  CHECK(read_client_hello(records(hello_message({extension(0, two)}))).status == ClientHello::malformed);
  CHECK(read_client_hello(records(hello_message({server_name("")}))).status == ClientHello::malformed);
  CHECK(read_client_hello(records(hello_message({server_name("a\x01.example")}))).status == ClientHello::malformed);
  // A length that runs past its field.
  std::string cut = records(hello_message({server_name("a.example")}));
  cut[cut.size() - 11] = '\x7f';  // the host name's length, past the end
  CHECK(read_client_hello(cut).status == ClientHello::malformed);
}

TEST_CASE("egress::read_client_hello refuses a ClientHello larger than it reads") {
  const std::string huge = records(hello_message({extension(21, std::string(kMaxClientHelloBytes, '\0'))}));
  CHECK(read_client_hello(huge).status == ClientHello::malformed);
  CHECK(read_client_hello(huge.substr(0, 5 + 16384)).status == ClientHello::malformed);  // known from its header
}

namespace {

std::string record(unsigned type, const std::string& payload) {
  return std::string(1, static_cast<char>(type)) + std::string("\x03\x03", 2) + with_length(payload, 2);
}
const std::string kCcs = record(20, "\x01");
std::string app_data(std::size_t n) { return record(23, std::string(n, 'e')); }
using Verdict = ClientFlightWatch::Verdict;

// Feeds `bytes` in pieces of `piece`, as reads of a socket may cut them; the last verdict.
Verdict feed_in_pieces(ClientFlightWatch& watch, const std::string& bytes, std::size_t piece) {
  Verdict v = Verdict::watching;
  for (std::size_t at = 0; at < bytes.size() && v == Verdict::watching; at += piece)
    v = watch.feed(std::string_view(bytes).substr(at, piece));
  return v;
}

}  // namespace

TEST_CASE("egress::ClientFlightWatch: a TLS 1.3 handshake ends the watch at the first application data") {
  const std::string first = records(hello_message({server_name("allowed.example")}));
  for (std::size_t piece : {1u, 3u, 7u, 4096u}) {
    ClientFlightWatch watch("allowed.example");
    CHECK(feed_in_pieces(watch, first + kCcs, piece) == Verdict::watching);
    CHECK(feed_in_pieces(watch, app_data(60), piece) == Verdict::done);
  }
}

// Review 13a O1: after a HelloRetryRequest the server reads the second ClientHello's name.
TEST_CASE("egress::ClientFlightWatch refuses a second ClientHello for another site, with or without a CCS before it") {
  const std::string first = records(hello_message({server_name("allowed.example")}));
  const std::string other = records(hello_message({server_name("other.example")}));
  for (std::size_t piece : {1u, 5u, 4096u}) {
    ClientFlightWatch plain("allowed.example");
    CHECK(feed_in_pieces(plain, first + other, piece) == Verdict::refused);
    CHECK(plain.why().find("other.example") != std::string::npos);
    ClientFlightWatch after_ccs("allowed.example");
    CHECK(feed_in_pieces(after_ccs, first + kCcs + other, piece) == Verdict::refused);
  }
  // Review 13d E1: after the CCS, the second hello split over two records; a warning alert first.
  const std::string other_split = records(hello_message({server_name("other.example")}), 40);
  ClientFlightWatch split_after_ccs("allowed.example");
  CHECK(split_after_ccs.feed(first + kCcs + other_split) == Verdict::refused);
  ClientFlightWatch after_warning("allowed.example");
  CHECK(after_warning.feed(first + record(21, "\x01\x5a") + kCcs + other) == Verdict::refused);
  // The same site again (a real retry) goes on; one split over records too.
  ClientFlightWatch same("allowed.example");
  CHECK(same.feed(first + kCcs + records(hello_message({server_name("ALLOWED.example.")}))) == Verdict::watching);
  ClientFlightWatch split("allowed.example");
  CHECK(split.feed(first + records(hello_message({server_name("allowed.example")}), 50)) == Verdict::watching);
  // No name where the first had one, or an encrypted one: refused.
  ClientFlightWatch none("allowed.example");
  CHECK(none.feed(first + records(hello_message({}))) == Verdict::refused);
  ClientFlightWatch ech("allowed.example");
  CHECK(ech.feed(first + records(hello_message({server_name("allowed.example"), extension(0xfe0d, "x")}))) ==
        Verdict::refused);
}

TEST_CASE("egress::ClientFlightWatch: a TLS 1.2 client's messages and encrypted Finished end the watch, not refuse it") {
  const std::string first = records(hello_message({server_name("allowed.example")}));
  // ClientKeyExchange (16), a certificate (11) across two records, the CCS, then the encrypted
  // Finished in a handshake record whose bytes happen to start like a ClientHello.
  const std::string cke = record(22, std::string("\x10", 1) + with_length(std::string(66, 'k'), 3));
  const std::string cert_message = std::string("\x0b", 1) + with_length(std::string(3000, 'c'), 3);
  const std::string cert = record(22, cert_message.substr(0, 1000)) + record(22, cert_message.substr(1000));
  const std::string finished = record(22, std::string("\x01\x00\x00\x30", 4) + std::string(36, 'f'));
  ClientFlightWatch watch("allowed.example");
  CHECK(feed_in_pieces(watch, first + cert + cke + kCcs, 9) == Verdict::watching);
  CHECK(watch.feed(finished) == Verdict::watching);  // begins like a hello: read on, nothing refused
  CHECK(watch.feed(app_data(30)) == Verdict::done);
  ClientFlightWatch plain_finished("allowed.example");
  CHECK(plain_finished.feed(first + cke + kCcs + record(22, std::string("\x14\x00\x00\x0c", 4) + std::string(36, 'f'))) ==
        Verdict::done);
  ClientFlightWatch looks_huge("allowed.example");
  CHECK(looks_huge.feed(first + cke + kCcs + record(22, std::string("\x01\xff\x00\x00", 4) + std::string(36, 'f'))) ==
        Verdict::done);

}

TEST_CASE("egress::ClientFlightWatch refuses what a handshake never sends") {
  const std::string first = records(hello_message({server_name("allowed.example")}));
  ClientFlightWatch bad_version("allowed.example");
  CHECK(bad_version.feed(first + std::string("\x16\x09\x09\x00\x01\x00", 6)) == Verdict::refused);
  ClientFlightWatch endless("allowed.example");
  std::string many = first;
  for (int i = 0; i < 70; ++i) many += kCcs;
  CHECK(endless.feed(many) == Verdict::refused);
  ClientFlightWatch alert("allowed.example");
  CHECK(alert.feed(first + record(21, "\x02\x28")) == Verdict::done);  // fatal: the connection ends
}
