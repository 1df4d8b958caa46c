#pragma once
// Loopback TCP listeners that hold both names of `localhost`: 127.0.0.1:<port> and [::1]:<port>
// (the "IPv6 twin"). Clients that resolve localhost (Python's urllib and httpx, Node's fetch,
// Chromium) try ::1 first; a listener on 127.0.0.1 alone leaves [::1]:<port> to any other local
// user, who then gets the requests (prompts, session tokens, the launch UI) meant for tokfence
// (review 14a F1/F2). So the daemon's proxy port, the web dashboard and tokfence-relay
// --check-host bind both, with the same checks on either socket, and refuse to start when another
// program holds the twin.
//
// libc and the standard library only: tokfence-relay (static, no tokfence_core) compiles this in.
#include <cstdint>
#include <optional>
#include <string>

namespace tokfence {

// Two listening sockets on one port, or why there are none.
struct LoopbackPair {
  int v4 = -1;             // 127.0.0.1:port
  int v6 = -1;             // [::1]:port (IPV6_V6ONLY); -1 when ::1 does not exist here (IPv6 off)
  std::uint16_t port = 0;  // the port both listen on
  // Set on failure (v4 and v6 then -1): names the address and why, for a message's middle
  // ("cannot listen on 127.0.0.1:9471: Address already in use", "[::1]:9471 is in use by uid ...").
  std::string error;
  bool twin_busy = false;  // the failure is another program on [::1]:port (127.0.0.1 was free)
  int error_number = 0;    // errno of the failure
};

// Binds and listens on 127.0.0.1:`port` and [::1]:`port` (SO_REUSEADDR, close-on-exec, and
// `socket_flags` such as SOCK_NONBLOCK). Port 0: the kernel picks the IPv4 port and the twin takes
// the same one; when another program holds that port on ::1, both are closed and another port is
// tried (16 times at most). A fixed port whose twin is held fails closed (twin_busy, the holder
// named). ::1 absent (EADDRNOTAVAIL, EAFNOSUPPORT): the IPv4 socket alone, since nobody can listen
// on ::1 either.
LoopbackPair listen_loopback_pair(std::uint16_t port, int backlog, int socket_flags = 0);

// The uid of a socket listening on [::1]:`port` or [::]:`port` (/proc/net/tcp6), if any.
std::optional<unsigned> ipv6_loopback_listener_uid(std::uint16_t port);

// "[::1]:<port> is in use by uid U (name): clients that try localhost at ::1 first would reach that
// program instead of tokfence" (the uid when /proc/net/tcp6 shows it).
std::string twin_busy_text(std::uint16_t port);

// "127.0.0.1:P" and, when `has_twin`, "[::1]:P": the addresses a pair listens on, for status lines.
std::string loopback_pair_text(std::uint16_t port, bool has_twin);

}  // namespace tokfence
