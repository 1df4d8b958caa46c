// The proxy server end to end in one process: a real ProxyServer on a Unix socket, a stand-in for
// the provider's API on 127.0.0.1 (the only fake: the provider), and Controls and RequestLog that
// note what they are asked. Here: what happens when something on the data path throws.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/config.hpp"
#include "core/home.hpp"
#include "proxy/http/server.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

struct TempHome {
  std::filesystem::path path;
  TempHome() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tokfence-server-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempHome() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Reads from `fd` until `done(bytes so far)` or EOF; every read waits at most 10 s.
std::string read_until(int fd, const std::function<bool(const std::string&)>& done) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string in;
  char buf[4096];
  for (int reads = 0; reads < 1000 && !done(in); ++reads) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  return in;
}

bool has_whole_request(const std::string& in) {
  auto end = in.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  auto at = in.find("Content-Length: ");
  std::size_t length = at == std::string::npos || at > end ? 0 : std::stoul(in.substr(at + 16));
  return in.size() >= end + 4 + length;
}

// The provider's API: every request gets one small chat completion with its usage, then the
// connection is closed.
class FakeProvider {
 public:
  FakeProvider() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeProvider() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  void serve() {
    const std::string body =
        R"({"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","choices":[],)"
        R"("usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})";
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      read_until(c, has_whole_request);
      ++requests_;
      (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Admits every request; settle() or admit() throw on demand. Counts what it is asked.
class ScriptedControls final : public Controls {
 public:
  std::atomic<bool> throw_in_admit{false};
  std::atomic<bool> throw_in_settle{false};
  std::atomic<int> admitted{0};
  std::atomic<int> settled{0};

  std::variant<Reservation, Refusal> admit(const AdmitRequest&) override {
    if (throw_in_admit) throw std::runtime_error("admit failed (test)");
    return Reservation{static_cast<std::uint64_t>(++admitted)};
  }
  void settle(Reservation, std::optional<Picodollars>, std::int64_t) override {
    ++settled;
    if (throw_in_settle) throw std::runtime_error("settle failed (test)");
  }
  bool budget_applies(std::string_view) const override { return false; }
  bool killed() const override { return false; }
  void register_ops(ControlRouter&) override {}
  nlohmann::json status() const override { return nlohmann::json::object(); }
};

class NotingLog final : public RequestLog {
 public:
  void record(RequestRecord record) override {
    std::lock_guard lock(mutex_);
    rows_.push_back(std::move(record));
  }
  void record_egress(EgressRecord) override {}
  void flush() override {}
  Stats stats() const override { return {}; }
  // The row with `id`, waiting up to 5 s for it.
  std::optional<RequestRecord> row(const std::string& id) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mutex_);
        for (const auto& r : rows_)
          if (r.id == id) return r;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

 private:
  std::mutex mutex_;
  std::vector<RequestRecord> rows_;
};

struct Proxy {
  TempHome home;
  FakeProvider provider;
  std::shared_ptr<ScriptedControls> controls = std::make_shared<ScriptedControls>();
  std::shared_ptr<NotingLog> log = std::make_shared<NotingLog>();
  std::shared_ptr<std::vector<std::string>> warnings = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::mutex> warnings_mutex = std::make_shared<std::mutex>();
  std::unique_ptr<ProxyServer> server;
  std::string socket_path;

  Proxy() {
    const std::string toml = "[daemon]\nio_threads = 1\n[providers.openai]\nupstream = \"http://127.0.0.1:" +
                             std::to_string(provider.port()) + "\"\n";
    auto load = parse_config(toml, "config.toml", Home(home.path));
    REQUIRE(load);
    ServerDeps deps;
    deps.config = load->config;
    deps.keys = std::make_shared<KeyStore>();
    KeyStore::Map keys;
    keys.emplace("openai", SecretString("sk-unit-test-not-a-real-key"));
    deps.keys->replace(std::move(keys));
    deps.log = log;
    deps.controls = controls;
    deps.pricing = std::make_shared<LivePricing>(std::make_shared<const PricingTable>(deps.config));
    deps.warn = [w = warnings, m = warnings_mutex](const std::string& line) {
      std::lock_guard lock(*m);
      w->push_back(line);
    };
    auto created = ProxyServer::create(std::move(deps));
    REQUIRE(created);
    server = std::move(*created);
    server->start();
    socket_path = (home.path / "proxy.sock").string();
    REQUIRE(server->listen_unix(ProxySocketInfo{socket_path, "unit-test", 0600, false, {}, {}}));
  }
  ~Proxy() { server->shutdown(std::chrono::seconds(0)); }

  // One chat request on a fresh connection; returns everything the proxy sent until it closed.
  std::string chat() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    REQUIRE(socket_path.size() < sizeof a.sun_path);
    std::copy(socket_path.begin(), socket_path.end(), a.sun_path);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    const std::string body = R"({"model":"gpt-4o","max_tokens":8,"messages":[{"role":"user","content":"hi"}]})";
    const std::string request = "POST /openai/v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                                "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    std::string reply = read_until(fd, [](const std::string&) { return false; });
    ::close(fd);
    return reply;
  }
  std::vector<std::string> warned() {
    std::lock_guard lock(*warnings_mutex);
    return *warnings;
  }
};

std::string request_id_of(const std::string& reply) {
  auto at = reply.find("X-Tokfence-Request-Id: ");
  REQUIRE(at != std::string::npos);
  return reply.substr(at + 23, reply.find("\r\n", at) - at - 23);
}

}  // namespace

TEST_CASE("proxy::ProxyServer a normal request: relayed, one row, its reservation settled once") {
  Proxy proxy;
  std::string reply = proxy.chat();
  CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  auto row = proxy.log->row(request_id_of(reply));
  REQUIRE(row);
  CHECK(row->status == 200);
  CHECK(row->error.empty());
  CHECK(row->usage.total() == 15);
  CHECK(proxy.controls->admitted == 1);
  CHECK(proxy.controls->settled == 1);
  CHECK(proxy.warned().empty());
}

TEST_CASE("proxy::ProxyServer an exception after the response: logged with the request id, row kept, settled once") {
  Proxy proxy;
  proxy.controls->throw_in_settle = true;
  std::string reply = proxy.chat();
  // The client had its whole response before the exception; the connection is then closed.
  CHECK(reply.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(reply.find(R"("total_tokens":15)") != std::string::npos);
  const std::string id = request_id_of(reply);
  auto row = proxy.log->row(id);
  REQUIRE(row);
  CHECK(row->status == 200);
  CHECK(row->error == "proxy: internal error: settle failed (test)");
  // The guard's settle() was the one that threw: it is not tried again when the guard goes.
  CHECK(proxy.controls->settled == 1);
  auto warned = proxy.warned();
  REQUIRE(warned.size() == 1);
  CHECK(warned[0] == "request " + id + ": unexpected exception: settle failed (test)");
}

TEST_CASE("proxy::ProxyServer an exception before any response: a 500 naming the request, and its row") {
  Proxy proxy;
  proxy.controls->throw_in_admit = true;
  std::string reply = proxy.chat();
  CHECK(reply.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  CHECK(reply.find(R"("type":"tokfence_internal_error")") != std::string::npos);
  const std::string id = request_id_of(reply);
  CHECK(reply.find("request " + id) != std::string::npos);
  auto row = proxy.log->row(id);
  REQUIRE(row);
  CHECK(row->status == 500);
  CHECK(row->error == "proxy: internal error: admit failed (test)");
  CHECK(proxy.provider.requests() == 0);
  auto warned = proxy.warned();
  REQUIRE(warned.size() == 1);
  CHECK(warned[0] == "request " + id + ": unexpected exception: admit failed (test)");
}
