// The control server's connection threads: none outlives stop(), and a runaway client cannot pile
// them up. (The protocol and the ops are tested through the CLI in tests/integration.)
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "core/unix_socket.hpp"
#include "proxy/control/server.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using namespace std::chrono_literals;

namespace {

// Sends one request line and reads the answer line; "" when the server closed the connection
// first. A refused connection may be closed before the request is sent: its answer is read anyway.
std::string ask(int fd, const std::string& line) {
  std::string out = line + "\n";
  [[maybe_unused]] auto sent = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  std::string answer;
  char c = 0;
  for (int i = 0; i < 4096; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 15000) <= 0) break;
    if (::read(fd, &c, 1) != 1 || c == '\n') break;
    answer.push_back(c);
  }
  return answer;
}

// True when the server closed `fd` with nothing (more) to say: EOF, or a reset when what we
// sent was left unread, within 5 s.
bool closed_by_server(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 5000) <= 0) return false;
  char c = 0;
  return ::read(fd, &c, 1) <= 0;
}

}  // namespace

TEST_CASE("control server: stop() waits for an op still running, however long it takes", "[control]") {
  test::TempDir dir("tokfence-control");
  proxy::ControlRouter router;
  std::atomic<bool> entered{false}, finished{false};
  // Longer than the 1 s + 5 s the server once waited before returning with the thread still
  // running (then using the router and the daemon behind it after they were gone).
  router.add("slow", [&](const proxy::json&) -> Result<proxy::json> {
    entered = true;
    std::this_thread::sleep_for(6500ms);
    finished = true;
    return proxy::json{{"slept", true}};
  });
  auto server = proxy::ControlServer::start(dir.path / "control.sock", router);
  REQUIRE(server);
  auto fd = connect_unix(dir.path / "control.sock", 2000);
  REQUIRE(fd);
  std::string out = "{\"op\":\"slow\"}\n";
  REQUIRE(::send(*fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size()));
  for (int i = 0; i < 200 && !entered; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(entered);
  (*server)->stop();
  CHECK(finished);
  ::close(*fd);
}

TEST_CASE("control server: more than 64 open connections are refused, and served again once closed", "[control]") {
  test::TempDir dir("tokfence-control");
  proxy::ControlRouter router;
  router.add("ping", [](const proxy::json&) -> Result<proxy::json> { return proxy::json{{"pong", true}}; });
  auto server = proxy::ControlServer::start(dir.path / "control.sock", router);
  REQUIRE(server);
  std::vector<int> held;
  for (int i = 0; i < 64; ++i) {
    auto fd = connect_unix(dir.path / "control.sock", 2000);
    REQUIRE(fd);
    // Each is served (a thread of its own) before the next connects, so the count is exact.
    REQUIRE(ask(*fd, "{\"op\":\"ping\"}").find("\"pong\":true") != std::string::npos);
    held.push_back(*fd);
  }
  auto extra = connect_unix(dir.path / "control.sock", 2000);
  REQUIRE(extra);
  // Told why, then closed (review 15c C1: `tokfence stop` then falls back to a signal).
  CHECK(ask(*extra, "{\"op\":\"ping\"}").find("control: busy: 64 connections are open") != std::string::npos);
  CHECK(closed_by_server(*extra));
  ::close(*extra);

  ::close(held.back());
  held.pop_back();
  std::string answer;
  for (int i = 0; i < 100 && answer.find("pong") == std::string::npos; ++i) {  // the closed one's thread ends shortly
    auto fd = connect_unix(dir.path / "control.sock", 2000);
    REQUIRE(fd);
    answer = ask(*fd, "{\"op\":\"ping\"}");
    ::close(*fd);
    if (answer.find("pong") == std::string::npos) std::this_thread::sleep_for(20ms);
  }
  CHECK(answer.find("\"pong\":true") != std::string::npos);
  (*server)->stop();  // cuts the 63 idle ones
  for (int fd : held) {
    CHECK(closed_by_server(fd));
    ::close(fd);
  }
}
