#pragma once
// Who is calling: the process behind a proxy connection, for the request log's caller columns.
//  - Unix sockets: SO_PEERCRED gives the pid; the name is /proc/<pid>/comm.
//  - Loopback TCP: the peer's socket is looked up by its address pair through NETLINK_SOCK_DIAG
//    (falling back to /proc/net/tcp{,6}), and its inode in some /proc/<pid>/fd of our own user:
//    first in the processes found most recently, then in all of them. That can cost a walk over
//    /proc, so callers run it once per connection, off the I/O threads.
#include <cstdint>
#include <optional>
#include <string>

namespace tokfence {

struct Caller {
  int pid = 0;
  std::string name;
};

// The name of process `pid` (/proc/<pid>/comm), "" when gone.
std::string process_name(int pid);

// SO_PEERCRED of a connected Unix socket.
struct PeerCred {
  int pid = 0;
  unsigned uid = 0;
  unsigned gid = 0;
};
std::optional<PeerCred> peer_credentials(int fd);

// The socket at the client end of a loopback TCP connection: its inode and owner uid.
struct SocketOwner {
  std::uint64_t inode = 0;
  unsigned uid = 0;
};

// The owner of the client socket of the accepted TCP connection `fd`, found by the kernel's exact
// look-up (NETLINK_SOCK_DIAG, one round trip on a netlink socket kept per thread: about as cheap
// as a getsockopt), or, without sock_diag, in /proc/net/tcp{,6}. nullopt when the peer is not a
// socket of this machine (or namespace). Cheap enough for the accept path: the proxy refuses
// connections of other users with it (admission.hpp).
std::optional<SocketOwner> tcp_peer_owner(int fd);

// The process of the daemon's user (any process, as root) that holds socket `inode` among its
// descriptors: the recent callers first, then every process, newest first. Can walk /proc: run
// it off the I/O threads.
std::optional<Caller> find_socket_holder(std::uint64_t inode);

// Parses one data line of /proc/net/tcp or tcp6; exposed for tests. Returns the inode of the
// socket whose local address is (`ip_hex`, `port`) and remote port is `remote_port`, or 0.
std::uint64_t match_proc_net_tcp_line(const std::string& line, const std::string& local_hex, std::uint16_t local_port,
                                      std::uint16_t remote_port);

}  // namespace tokfence
