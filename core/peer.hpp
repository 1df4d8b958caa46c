#pragma once
// Who is calling: the process behind a proxy connection, for the request log's caller columns.
//  - Unix sockets: SO_PEERCRED gives the pid; the name is /proc/<pid>/comm.
//  - Loopback TCP: the peer's socket is looked up by its address pair through NETLINK_SOCK_DIAG
//    (falling back to /proc/net/tcp{,6}), and its inode in some /proc/<pid>/fd of our own user:
//    first in the processes found most recently, then in all of them. That can cost a walk over
//    /proc, so callers batch the connections' look-ups and run them off the I/O threads.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

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
// descriptors: resolve_socket_holders() for one inode, with a generous deadline (10 s). Can walk
// /proc: run it off the I/O threads.
std::optional<Caller> find_socket_holder(std::uint64_t inode);

// What one resolve_socket_holders() call did, for tests and the daemon's counters.
struct HolderScanStats {
  std::size_t tables_scanned = 0;  // /proc/<pid>/fd directories read (each process at most once a call)
  std::size_t links_read = 0;      // readlink() calls
  std::size_t from_cache = 0;      // inodes answered without reading any descriptor table
  std::vector<int> scanned_pids;   // the processes whose table was read, in order
};

struct HolderLookup {
  std::unordered_map<std::uint64_t, Caller> found;
  // Inodes not searched for everywhere before `deadline`. An inode in neither list was looked for
  // in every process and is held by none (the client is gone, or is not ours to see).
  std::vector<std::uint64_t> timed_out;
  HolderScanStats stats;
};

// The processes holding the sockets `inodes` (loopback TCP clients), in one pass over each
// candidate process's descriptor table however many inodes are asked for: the table is read once
// into an inode -> pid map. A process found holding one is remembered by (pid, start time) with
// every socket it held when read, so its next connections, already open then, are answered with
// no read at all, and it is read again only for inodes it did not hold before. Processes are
// asked in this order: the remembered ones (most recent first), then the rest of the daemon
// user's processes (all, as root), newest first. Stops reading at `deadline`: what is left is
// `timed_out`. Thread-safe; meant for one look-up thread (it walks /proc).
HolderLookup resolve_socket_holders(std::span<const std::uint64_t> inodes,
                                    std::chrono::steady_clock::time_point deadline);

// Forgets the remembered processes (tests).
void forget_socket_holders();

// Parses one data line of /proc/net/tcp or tcp6; exposed for tests. Returns the inode of the
// socket whose local address is (`ip_hex`, `port`) and remote port is `remote_port`, or 0.
std::uint64_t match_proc_net_tcp_line(const std::string& line, const std::string& local_hex, std::uint16_t local_port,
                                      std::uint16_t remote_port);

}  // namespace tokfence
