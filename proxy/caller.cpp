#include "proxy/caller.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace tokfence::proxy {
namespace {

// The address as /proc/net/tcp prints it: the raw bytes as 32-bit words in host byte order, hex.
std::optional<std::string> proc_hex(const std::string& ip, bool* v6) {
  in_addr a4{};
  in6_addr a6{};
  char buf[40];
  if (::inet_pton(AF_INET, ip.c_str(), &a4) == 1) {
    std::snprintf(buf, sizeof buf, "%08X", a4.s_addr);
    *v6 = false;
    return std::string(buf);
  }
  if (::inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
    std::string out;
    for (int w = 0; w < 4; ++w) {
      std::uint32_t word;
      std::memcpy(&word, a6.s6_addr + 4 * w, 4);
      std::snprintf(buf, sizeof buf, "%08X", word);
      out += buf;
    }
    *v6 = true;
    return out;
  }
  return std::nullopt;
}

struct SocketOwner {
  std::uint64_t inode = 0;
  uid_t uid = 0;
};

// The kernel's exact look-up of one TCP socket by its address pair (NETLINK_SOCK_DIAG, as `ss`
// uses): a hash look-up, where reading /proc/net/tcp makes the kernel print every socket of the
// host, TIME_WAIT included (milliseconds on a busy machine, for each new connection).
// The socket wanted is the client's: local = peer_ip:peer_port, remote = local_ip:local_port.
std::optional<SocketOwner> diag_lookup(const std::string& peer_ip, std::uint16_t peer_port, const std::string& local_ip,
                                       std::uint16_t local_port) {
  struct Request {
    nlmsghdr header;
    inet_diag_req_v2 body;
  } request{};
  std::uint8_t family = AF_INET;
  if (::inet_pton(AF_INET, peer_ip.c_str(), request.body.id.idiag_src) != 1 ||
      ::inet_pton(AF_INET, local_ip.c_str(), request.body.id.idiag_dst) != 1) {
    request.body = {};
    family = AF_INET6;
    if (::inet_pton(AF_INET6, peer_ip.c_str(), request.body.id.idiag_src) != 1 ||
        ::inet_pton(AF_INET6, local_ip.c_str(), request.body.id.idiag_dst) != 1)
      return std::nullopt;
  }
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: exact match
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0u;
  request.body.id.idiag_sport = htons(peer_port);
  request.body.id.idiag_dport = htons(local_port);
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return std::nullopt;
  std::optional<SocketOwner> found;
  timeval timeout{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &request, sizeof request, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof request)) {
    alignas(nlmsghdr) char reply[8192];
    ssize_t n = ::recv(fd, reply, sizeof reply, 0);
    auto* h = reinterpret_cast<nlmsghdr*>(reply);
    if (n > 0 && NLMSG_OK(h, static_cast<unsigned>(n)) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
        h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
      auto* msg = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (msg->idiag_inode != 0) found = SocketOwner{msg->idiag_inode, msg->idiag_uid};
    }
  }
  ::close(fd);
  return found;
}

// Whether process `pid` holds the socket `want` ("socket:[<inode>]") among its descriptors.
bool holds_socket(int pid, const std::string& want) {
  std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* fds = ::opendir(fd_dir.c_str());
  if (!fds) return false;
  bool found = false;
  char target[64];
  while (dirent* f = ::readdir(fds)) {
    if (f->d_name[0] == '.') continue;
    std::string link = fd_dir + "/" + f->d_name;
    ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0 && static_cast<std::size_t>(n) == want.size() && std::memcmp(target, want.data(), want.size()) == 0) {
      found = true;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

// The processes found most recently, asked first: an agent opens its connections from one process,
// and a look at its descriptors is far cheaper than a walk over every process of the user.
class RecentCallers {
 public:
  std::vector<int> list() {
    std::lock_guard lock(mutex_);
    return pids_;
  }
  void remember(int pid) {
    std::lock_guard lock(mutex_);
    std::erase(pids_, pid);
    pids_.insert(pids_.begin(), pid);
    if (pids_.size() > kKeep) pids_.pop_back();
  }

 private:
  static constexpr std::size_t kKeep = 8;
  std::mutex mutex_;
  std::vector<int> pids_;
};
RecentCallers recent_callers;

std::uint64_t find_inode(const char* table, const std::string& hex, std::uint16_t port, std::uint16_t remote_port) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line))
    if (auto inode = match_proc_net_tcp_line(line, hex, port, remote_port)) return inode;
  return 0;
}

}  // namespace

std::string process_name(int pid) {
  if (pid <= 0) return "";
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

std::optional<PeerCred> peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return std::nullopt;
  return PeerCred{cred.pid, cred.uid, cred.gid};
}

std::uint64_t match_proc_net_tcp_line(const std::string& line, const std::string& local_hex, std::uint16_t local_port,
                                      std::uint16_t remote_port) {
  // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
  std::istringstream in(line);
  std::string sl, local, remote, st, queues, tr, retr, uid, timeout;
  std::uint64_t inode = 0;
  if (!(in >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode)) return 0;
  auto colon = local.find(':');
  auto rcolon = remote.find(':');
  if (colon == std::string::npos || rcolon == std::string::npos) return 0;
  if (local.substr(0, colon) != local_hex) return 0;
  if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != local_port) return 0;
  if (std::strtoul(remote.c_str() + rcolon + 1, nullptr, 16) != remote_port) return 0;
  return inode;
}

std::optional<Caller> find_tcp_caller(const std::string& peer_ip, std::uint16_t peer_port, const std::string& local_ip,
                                      std::uint16_t local_port) {
  uid_t me = ::getuid();
  std::uint64_t inode = 0;
  if (auto owner = diag_lookup(peer_ip, peer_port, local_ip, local_port)) {
    // Another user's process: its descriptors are not ours to read (unless we are root).
    if (me != 0 && owner->uid != me) return std::nullopt;
    inode = owner->inode;
  } else {
    // No sock_diag (a kernel without it, or netlink filtered): the slow way.
    bool v6 = false;
    auto hex = proc_hex(peer_ip, &v6);
    if (!hex) return std::nullopt;
    inode = find_inode(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", *hex, peer_port, local_port);
  }
  if (!inode) return std::nullopt;
  std::string want = "socket:[" + std::to_string(inode) + "]";
  for (int pid : recent_callers.list()) {
    if (holds_socket(pid, want)) {
      recent_callers.remember(pid);
      return Caller{pid, process_name(pid)};
    }
  }
  // Newest processes first: a caller not seen before is most likely one just started (curl, a
  // script), which also tends to be gone soonest, so the walk must reach it early. Pids are
  // handed out upwards from the last one and wrap at pid_max, so "newest" is the distance below
  // the last pid given out, modulo pid_max.
  std::vector<int> pids;
  if (DIR* proc = ::opendir("/proc")) {
    while (dirent* e = ::readdir(proc))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') pids.push_back(std::atoi(e->d_name));
    ::closedir(proc);
  }
  auto read_number = [](const char* path, long fallback) {
    std::ifstream in(path);
    long v = fallback;
    in >> v;
    return v > 0 ? v : fallback;
  };
  const long pid_max = read_number("/proc/sys/kernel/pid_max", 4194304);
  const long last = read_number("/proc/sys/kernel/ns_last_pid", pid_max);
  auto age = [&](int pid) { return ((last - pid) % pid_max + pid_max) % pid_max; };
  std::sort(pids.begin(), pids.end(), [&](int a, int b) { return age(a) < age(b); });
  const int self = ::getpid();
  for (int pid : pids) {
    if (pid == self) continue;
    std::string dir = "/proc/" + std::to_string(pid);
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0 || (me != 0 && st.st_uid != me)) continue;
    if (holds_socket(pid, want)) {
      recent_callers.remember(pid);
      return Caller{pid, process_name(pid)};
    }
  }
  return std::nullopt;
}

}  // namespace tokfence::proxy
