#include "proxy/caller.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

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
  bool v6 = false;
  auto hex = proc_hex(peer_ip, &v6);
  if (!hex) return std::nullopt;
  std::uint64_t inode = find_inode(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", *hex, peer_port, local_port);
  if (!inode) return std::nullopt;
  std::string want = "socket:[" + std::to_string(inode) + "]";
  uid_t me = ::getuid();
  DIR* proc = ::opendir("/proc");
  if (!proc) return std::nullopt;
  std::optional<Caller> found;
  int self = ::getpid();
  while (!found) {
    dirent* e = ::readdir(proc);
    if (!e) break;
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int pid = std::atoi(e->d_name);
    if (pid == self) continue;
    std::string dir = std::string("/proc/") + e->d_name;
    struct stat st{};
    if (::stat(dir.c_str(), &st) != 0 || (me != 0 && st.st_uid != me)) continue;
    std::string fd_dir = dir + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (!fds) continue;
    char target[64];
    while (dirent* f = ::readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      std::string link = fd_dir + "/" + f->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      if (static_cast<std::size_t>(n) == want.size() && std::memcmp(target, want.data(), want.size()) == 0) {
        found = Caller{pid, process_name(pid)};
        break;
      }
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  return found;
}

}  // namespace tokfence::proxy
