#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "core/loopback_listen.hpp"
#include "core/peer.hpp"

using namespace tokfence;

namespace {

// Whether this host has ::1 (IPv6 on): a socket bound there, or nothing to test.
bool has_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

int connect_to(int family, std::uint16_t port) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  int rc;
  if (family == AF_INET6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_loopback;
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  REQUIRE(rc == 0);
  return fd;
}

// A socket of ours listening on [::1]:0 (IPV6_V6ONLY): a twin held by "another program".
int listen_v6_any_port(std::uint16_t& port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  port = ntohs(a.sin6_port);
  return fd;
}

}  // namespace

TEST_CASE("core::listen_loopback_pair listens on 127.0.0.1 and [::1] at one port") {
  LoopbackPair pair = listen_loopback_pair(0, 4);
  REQUIRE(pair.error.empty());
  REQUIRE(pair.v4 >= 0);
  REQUIRE(pair.port != 0);
  if (!has_ipv6_loopback()) {
    CHECK(pair.v6 == -1);  // no ::1 here: the IPv4 listener alone, nobody can squat the twin
    ::close(pair.v4);
    return;
  }
  REQUIRE(pair.v6 >= 0);
  for (int family : {AF_INET, AF_INET6}) {
    const int client = connect_to(family, pair.port);
    const int accepted = ::accept4(family == AF_INET ? pair.v4 : pair.v6, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(accepted >= 0);
    ::close(accepted);
    ::close(client);
  }
  CHECK(ipv6_loopback_listener_uid(pair.port) == ::geteuid());
  CHECK(loopback_pair_text(pair.port, true) ==
        "127.0.0.1:" + std::to_string(pair.port) + " and [::1]:" + std::to_string(pair.port));
  ::close(pair.v4);
  ::close(pair.v6);
}

TEST_CASE("core::listen_loopback_pair fails closed on a fixed port whose [::1] twin is held, naming the holder") {
  if (!has_ipv6_loopback()) {
    WARN("no ::1 on this host: nothing to test");
    return;
  }
  std::uint16_t port = 0;
  const int squatter = listen_v6_any_port(port);
  LoopbackPair pair = listen_loopback_pair(port, 4);
  CHECK(pair.v4 == -1);
  CHECK(pair.v6 == -1);
  CHECK(pair.twin_busy);
  CHECK_THAT(pair.error, Catch::StartsWith("[::1]:" + std::to_string(port) + " is in use by uid " +
                                           std::to_string(::geteuid())));
  CHECK_THAT(pair.error, Catch::Contains("clients that try localhost at ::1 first"));
  // Nothing was left on 127.0.0.1:<port>: a fresh pair there fails only on the twin again.
  LoopbackPair again = listen_loopback_pair(port, 4);
  CHECK(again.twin_busy);
  ::close(squatter);
  LoopbackPair freed = listen_loopback_pair(port, 4);
  CHECK(freed.error.empty());
  CHECK(freed.port == port);
  ::close(freed.v4);
  ::close(freed.v6);
}

TEST_CASE("core::ipv6_loopback_listener_uid is empty for a port nobody listens on at ::1") {
  LoopbackPair v4_only_probe = listen_loopback_pair(0, 4);
  REQUIRE(v4_only_probe.error.empty());
  const std::uint16_t port = v4_only_probe.port;
  ::close(v4_only_probe.v4);
  if (v4_only_probe.v6 >= 0) ::close(v4_only_probe.v6);
  CHECK(!ipv6_loopback_listener_uid(port));
  CHECK_THAT(twin_busy_text(port), Catch::Contains("in use by another program"));
}

TEST_CASE("core::tcp_peer_owner and find_socket_holder name the client of a connection on [::1]") {
  if (!has_ipv6_loopback()) {
    WARN("no ::1 on this host: nothing to test");
    return;
  }
  LoopbackPair pair = listen_loopback_pair(0, 4);
  REQUIRE(pair.v6 >= 0);
  // The client in another process (find_socket_holder never names the daemon itself), holding
  // its connection until the pipe closes.
  int hold[2], ready[2];
  REQUIRE(::pipe(hold) == 0);
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(hold[1]);
    ::close(ready[0]);
    const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(pair.port);
    a.sin6_addr = in6addr_loopback;
    std::uint64_t ino = 0;
    struct stat st{};
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::fstat(fd, &st) == 0) ino = st.st_ino;
    if (::write(ready[1], &ino, sizeof ino) != sizeof ino) ::_exit(1);
    char c;
    [[maybe_unused]] auto n = ::read(hold[0], &c, 1);
    ::_exit(0);
  }
  ::close(hold[0]);
  ::close(ready[1]);
  std::uint64_t client_inode = 0;
  REQUIRE(::read(ready[0], &client_inode, sizeof client_inode) == sizeof client_inode);
  REQUIRE(client_inode != 0);
  const int accepted = ::accept4(pair.v6, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(accepted >= 0);
  auto owner = tcp_peer_owner(accepted);
  REQUIRE(owner);
  CHECK(owner->uid == ::geteuid());
  CHECK(owner->inode == client_inode);
  auto holder = find_socket_holder(owner->inode);
  REQUIRE(holder);
  CHECK(holder->pid == child);
  ::close(accepted);
  ::close(hold[1]);
  ::close(ready[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(pair.v4);
  ::close(pair.v6);
}
