#include "core/loopback_listen.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tokfence {
namespace {

// A listening socket on `addr`, or -errno.
int listen_on(const sockaddr* addr, socklen_t len, int backlog, int socket_flags) {
  const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | socket_flags, 0);
  if (fd < 0) return -errno;
  int one = 1;
  // The daemon's own earlier connections in TIME_WAIT must not keep it from starting again.
  // Linux still refuses a port another socket listens on, SO_REUSEADDR or not.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Only ::1: a dual-stack socket would claim 127.0.0.1 (or fail on it) too.
  if (addr->sa_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, addr, len) != 0 || ::listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

int listen_v4(std::uint16_t port, int backlog, int flags) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return listen_on(reinterpret_cast<sockaddr*>(&a), sizeof a, backlog, flags);
}

int listen_v6(std::uint16_t port, int backlog, int flags) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_loopback;
  return listen_on(reinterpret_cast<sockaddr*>(&a), sizeof a, backlog, flags);
}

std::uint16_t bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

// No IPv6 loopback on this host (or in this namespace): nobody can squat it either.
bool no_ipv6_loopback(int err) { return err == EADDRNOTAVAIL || err == EAFNOSUPPORT || err == EPROTONOSUPPORT; }

// The user name of `uid` from /etc/passwd, "" when absent. Not getpwuid: tokfence-relay is linked
// statically, where NSS would have to load the system's shared libraries.
std::string passwd_name(unsigned uid) {
  std::FILE* passwd = std::fopen("/etc/passwd", "re");
  if (!passwd) return "";
  std::string name;
  char line[1024];
  for (int i = 0; i < 100000 && name.empty() && std::fgets(line, sizeof line, passwd); ++i) {
    // name:password:uid:...
    char* first = std::strchr(line, ':');
    char* second = first ? std::strchr(first + 1, ':') : nullptr;
    if (!second) continue;
    char* end = nullptr;
    const unsigned long found = std::strtoul(second + 1, &end, 10);
    if (end == second + 1 || *end != ':' || found != uid) continue;
    name.assign(line, first);
  }
  std::fclose(passwd);
  // Printed in an error line: no control characters from a hand-edited file.
  for (char& c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return name;
}

}  // namespace

LoopbackPair listen_loopback_pair(std::uint16_t port, int backlog, int socket_flags) {
  LoopbackPair out;
  constexpr int kTries = 16;  // port 0: new ports while another program holds the twin of the one picked
  for (int attempt = 0; attempt < kTries; ++attempt) {
    const int v4 = listen_v4(port, backlog, socket_flags);
    if (v4 < 0) {
      out.error_number = -v4;
      out.error = "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(-v4);
      return out;
    }
    const std::uint16_t actual = bound_port(v4);
    const int v6 = listen_v6(actual, backlog, socket_flags);
    if (v6 >= 0 || no_ipv6_loopback(-v6)) {
      out.v4 = v4;
      out.v6 = v6 >= 0 ? v6 : -1;
      out.port = actual;
      return out;
    }
    ::close(v4);
    if (port != 0 || -v6 != EADDRINUSE) {
      out.error_number = -v6;
      out.twin_busy = -v6 == EADDRINUSE;
      out.error = out.twin_busy ? twin_busy_text(actual)
                                : "cannot listen on [::1]:" + std::to_string(actual) + ": " + std::strerror(-v6);
      return out;
    }
  }
  out.error_number = EADDRINUSE;
  out.error = "cannot listen on 127.0.0.1 and [::1] at one port: " + std::to_string(kTries) +
              " ports picked were each held on [::1] by another program";
  return out;
}

std::optional<unsigned> ipv6_loopback_listener_uid(std::uint16_t port) {
  std::FILE* table = std::fopen("/proc/net/tcp6", "re");
  if (!table) return std::nullopt;
  // /proc/net/tcp6 prints an address as four 32-bit words in host byte order: ::1 reads
  // 00000000000000000000000001000000 on little-endian machines.
  char loopback_hex[33], any_hex[33] = "00000000000000000000000000000000";
  for (int w = 0; w < 4; ++w) {
    std::uint32_t word;
    std::memcpy(&word, in6addr_loopback.s6_addr + 4 * w, 4);
    std::snprintf(loopback_hex + 8 * w, 9, "%08X", word);
  }
  std::optional<unsigned> uid;
  char line[512];
  std::fgets(line, sizeof line, table);  // header
  while (!uid && std::fgets(line, sizeof line, table)) {
    char local[64], remote[64];
    unsigned state = 0, found_uid = 0, local_port = 0;
    // "sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ..."
    if (std::sscanf(line, " %*s %63s %63s %x %*s %*s %*s %u", local, remote, &state, &found_uid) != 4) continue;
    char* colon = std::strchr(local, ':');
    if (!colon || colon - local != 32 || state != 0x0A) continue;  // 0A: TCP_LISTEN
    *colon = '\0';
    local_port = static_cast<unsigned>(std::strtoul(colon + 1, nullptr, 16));
    if (local_port != port) continue;
    if (std::strcmp(local, loopback_hex) == 0 || std::strcmp(local, any_hex) == 0) uid = found_uid;
  }
  std::fclose(table);
  return uid;
}

std::string twin_busy_text(std::uint16_t port) {
  std::string who = "another program";
  if (auto uid = ipv6_loopback_listener_uid(port)) {
    who = "uid " + std::to_string(*uid);
    if (auto name = passwd_name(*uid); !name.empty()) who += " (" + name + ")";
  }
  return "[::1]:" + std::to_string(port) + " is in use by " + who +
         ": clients that try localhost at ::1 first would reach that program instead of tokfence";
}

std::string loopback_pair_text(std::uint16_t port, bool has_twin) {
  const std::string p = std::to_string(port);
  return has_twin ? "127.0.0.1:" + p + " and [::1]:" + p : "127.0.0.1:" + p;
}

}  // namespace tokfence
