// tokfence-probe: a small static test program run inside sandboxes and containers to find out
// what they can reach. Each subcommand prints one result line ("ok: ..." or "fail: ...") and exits
// 0 when the attempt succeeded, 1 when it failed, 2 on bad usage. Numeric addresses only: name
// resolution is what `resolve` tests, so nothing else depends on it.
//
//   http-get URL [HEADER...]    GET http://IP:PORT/path; ok when a 2xx arrives (prints status, body)
//   connect HOST PORT           TCP connect
//   connect-unix PATH           connect to a Unix socket (@name = abstract)
//   unix-send PATH TEXT         connect, send TEXT (\n escapes allowed), print what comes back
//                               until the server closes or 3 s pass
//   resolve NAME                DNS A query to every nameserver in /etc/resolv.conf (UDP); exits
//                               2 without sending anything when a non-loopback interface is up,
//                               so a broken sandbox can never send a query off this machine
//   write PATH                  create/append to a file
//   read PATH                   read a file
//   env                         print the environment
//   dbus-session [ADDRESS]      connect + authenticate to the D-Bus session bus (ADDRESS, else
//                               $DBUS_SESSION_BUS_ADDRESS, else /run/user/<uid>/bus)
//   tcp-send HOST PORT TEXT     like unix-send, over TCP
//   udp-send HOST PORT TEXT     send one datagram (ok when sendto accepted it)
//   socket DOMAIN [PROTO]       create a socket: unix, inet, inet6, netlink (PROTO: route=0, or a
//                               number), packet, vsock
//   socketpair                  socketpair(AF_UNIX)
//   io-uring                    io_uring_setup
//   ping ADDR                   ICMP echo over a ping socket; same interface guard as resolve
//   ptrace PID                  PTRACE_ATTACH (then detach)
//   vm-read PID                 process_vm_readv of 8 bytes (ok when permitted, even if EFAULT)
//   proc-mem PID                open /proc/PID/mem read-write
//   shm-create TEXT             a new mode-0600 SysV shared memory segment holding TEXT (left in
//                               place); prints its id
//   shm-read ID                 attach segment ID and print its text
//   shm-write ID TEXT           attach segment ID and overwrite its text
//   shm-rm ID                   remove segment ID
//   deny-seccomp CMD [ARGS...]  run CMD where seccomp()/prctl(PR_SET_SECCOMP) fail with EPERM, to
//                               prove a filter that cannot be installed stops what needed it
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr int kTimeoutMs = 3000;

int ok(const std::string& what) {
  std::cout << "ok: " << what << std::endl;
  return 0;
}
int failed(const std::string& what) {
  std::cout << "fail: " << what << std::endl;
  return 1;
}
std::string err() { return std::strerror(errno); }

// Non-blocking connect with a timeout; returns the connected fd or -1 (errno set).
int connect_with_timeout(int fd, const sockaddr* addr, socklen_t len) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, addr, len) < 0) {
    if (errno != EINPROGRESS) return -1;
    pollfd p{fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, kTimeoutMs);
    if (rc == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    int so_error = 0;
    socklen_t l = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &l);
    if (so_error != 0) {
      errno = so_error;
      return -1;
    }
  }
  ::fcntl(fd, F_SETFL, flags);
  timeval tv{kTimeoutMs / 1000, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

int tcp_connect(const std::string& host, int port, std::string& error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    error = "not a numeric address: " + host;
    return -1;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    error = err();
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

int unix_connect(const std::string& path, std::string& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socklen_t len;
  if (path.size() >= sizeof addr.sun_path) {
    error = "path too long";
    return -1;
  }
  if (!path.empty() && path[0] == '@') {
    std::memcpy(addr.sun_path + 1, path.data() + 1, path.size() - 1);
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    std::memcpy(addr.sun_path, path.data(), path.size());
    len = sizeof addr;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&addr), len) < 0) {
    error = err();
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string read_all(int fd, std::size_t limit = 1 << 20) {
  std::string out;
  char buf[8192];
  while (out.size() < limit) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'n' ? '\n' : c == 'r' ? '\r' : c == '0' ? '\0' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

int http_get(const std::string& url, const std::vector<std::string>& headers) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return failed("http-get: only http:// URLs: " + url);
  std::string rest = url.substr(prefix.size());
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  if (colon == std::string::npos) return failed("http-get: URL needs a port: " + url);
  std::string host = hostport.substr(0, colon);
  int port = std::atoi(hostport.substr(colon + 1).c_str());
  std::string error;
  int fd = tcp_connect(host, port, error);
  if (fd < 0) return failed("http-get " + url + ": connect: " + error);
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + hostport + "\r\nConnection: close\r\n";
  for (const auto& h : headers) request += h + "\r\n";
  request += "\r\n";
  if (!send_all(fd, request)) {
    ::close(fd);
    return failed("http-get " + url + ": send: " + err());
  }
  std::string response = read_all(fd);
  ::close(fd);
  if (response.rfind("HTTP/1.", 0) != 0) return failed("http-get " + url + ": no HTTP response");
  std::string status = response.substr(9, 3);
  auto body_at = response.find("\r\n\r\n");
  std::string body = body_at == std::string::npos ? "" : response.substr(body_at + 4);
  std::cout << body << "\n";
  if (status[0] == '2') return ok("http-get " + url + ": status " + status);
  return failed("http-get " + url + ": status " + status);
}

// A minimal DNS query: the point is whether any nameserver answers at all.
int resolve(const std::string& name) {
  std::ifstream conf("/etc/resolv.conf");
  std::vector<std::string> servers;
  std::string line;
  while (std::getline(conf, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == "nameserver") servers.push_back(value);
  }
  if (servers.empty()) return failed("resolve " + name + ": no nameserver in /etc/resolv.conf");
  // Tests may only send traffic to loopback or to networks they created. Inside a sandbox only
  // `lo` exists, so the query cannot leave; anywhere else, refuse instead of querying a real
  // resolver (the calling test then fails, which is what a broken sandbox deserves).
  if (ifaddrs* list = nullptr; ::getifaddrs(&list) == 0) {
    std::string up;
    for (ifaddrs* i = list; i; i = i->ifa_next)
      if ((i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK) && up.empty()) up = i->ifa_name;
    ::freeifaddrs(list);
    if (!up.empty()) {
      std::cout << "refused: resolve " << name << ": interface " << up
                << " is up, a query could leave this machine\n";
      return 2;
    }
  }
  std::string query("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  std::istringstream labels(name);
  std::string label;
  while (std::getline(labels, label, '.')) {
    if (label.empty() || label.size() > 63) return failed("resolve: bad name: " + name);
    query += static_cast<char>(label.size());
    query += label;
  }
  query += std::string("\x00\x00\x01\x00\x01", 5);
  std::string errors;
  for (const auto& server : servers) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(53);
    if (::inet_pton(AF_INET, server.c_str(), &addr.sin_addr) != 1) continue;
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
      errors += " " + server + ": " + err() + ";";
      ::close(fd);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) == 1) {
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ::close(fd);
      if (n >= 12 && buf[0] == 0x12 && buf[1] == 0x34) return ok("resolve " + name + ": answered by " + server);
      errors += " " + server + ": " + (n < 0 ? err() : "bad reply") + ";";
      continue;
    }
    errors += " " + server + ": no answer;";
    ::close(fd);
  }
  return failed("resolve " + name + ":" + errors);
}

int dbus_session(std::string address) {
  if (address.empty()) {
    if (const char* a = std::getenv("DBUS_SESSION_BUS_ADDRESS")) address = a;
  }
  if (address.empty()) address = "unix:path=/run/user/" + std::to_string(::getuid()) + "/bus";
  // unix:path=/x,guid=... | unix:abstract=/x,guid=... (first address of a ;-list)
  address = address.substr(0, address.find(';'));
  std::string path;
  for (const char* key : {"path=", "abstract="}) {
    auto at = address.find(key);
    if (at == std::string::npos) continue;
    std::string value = address.substr(at + std::strlen(key));
    value = value.substr(0, value.find(','));
    path = (std::string(key) == "abstract=" ? "@" : "") + value;
  }
  if (path.empty()) return failed("dbus-session: unsupported address: " + address);
  std::string error;
  int fd = unix_connect(path, error);
  if (fd < 0) return failed("dbus-session " + path + ": connect: " + error);
  std::string uid = std::to_string(::geteuid()), hex;
  char b[3];
  for (char c : uid) {
    std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
    hex += b;
  }
  send_all(fd, std::string("\0", 1) + "AUTH EXTERNAL " + hex + "\r\n");
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  std::string reply = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
  if (reply.rfind("OK ", 0) == 0) return ok("dbus-session " + path + ": authenticated");
  return failed("dbus-session " + path + ": not authenticated: " + reply.substr(0, reply.find('\r')));
}

// Refuses to send anywhere but loopback unless only `lo` is up (see resolve): empty if fine.
std::string non_loopback_interface_up() {
  std::string up;
  if (ifaddrs* list = nullptr; ::getifaddrs(&list) == 0) {
    for (ifaddrs* i = list; i; i = i->ifa_next)
      if ((i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK) && up.empty()) up = i->ifa_name;
    ::freeifaddrs(list);
  }
  return up;
}

bool fill_address(const std::string& host, int port, sockaddr_storage& ss, socklen_t& len) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
    return true;
  }
  return false;
}

int make_socket(const std::string& domain, const std::string& proto) {
  int d = domain == "unix" ? AF_UNIX : domain == "inet" ? AF_INET : domain == "inet6" ? AF_INET6
        : domain == "netlink" ? AF_NETLINK : domain == "packet" ? AF_PACKET : domain == "vsock" ? AF_VSOCK : -1;
  if (d < 0) return failed("socket: unknown domain: " + domain);
  int type = d == AF_NETLINK ? SOCK_RAW : d == AF_PACKET ? SOCK_DGRAM : SOCK_STREAM;
  int protocol = proto.empty() || proto == "route" ? 0 : std::atoi(proto.c_str());
  int fd = ::socket(d, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) return failed("socket " + domain + ": " + err());
  ::close(fd);
  return ok("socket " + domain);
}

int ping(const std::string& host) {
  if (auto up = non_loopback_interface_up(); !up.empty()) {
    std::cout << "refused: ping " << host << ": interface " << up << " is up, the echo could leave this machine\n";
    return 2;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return failed("ping: not an IPv4 address: " + host);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) return failed("ping " + host + ": socket: " + err());
  icmphdr echo{};
  echo.type = ICMP_ECHO;
  echo.un.echo.sequence = htons(1);
  if (::sendto(fd, &echo, sizeof echo, 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    std::string e = err();
    ::close(fd);
    return failed("ping " + host + ": send: " + e);
  }
  pollfd p{fd, POLLIN, 0};
  int rc = ::poll(&p, 1, kTimeoutMs);
  ::close(fd);
  return rc == 1 ? ok("ping " + host + ": echo reply") : failed("ping " + host + ": no reply");
}

int deny_seccomp_then_exec(std::vector<std::string> command) {
#if defined(__x86_64__)
  constexpr std::uint32_t arch = AUDIT_ARCH_X86_64;
#else
  constexpr std::uint32_t arch = AUDIT_ARCH_AARCH64;
#endif
  constexpr std::uint32_t eperm = SECCOMP_RET_ERRNO | EPERM;
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_seccomp, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, eperm),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_prctl, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PR_SET_SECCOMP, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, eperm),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
    return failed("deny-seccomp: " + err());
  std::vector<char*> argv;
  for (auto& a : command) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execvp(argv[0], argv.data());
  return failed("deny-seccomp: exec " + command[0] + ": " + err());
}

int usage() {
  std::cerr << "usage: tokfence-probe http-get URL [HEADER...] | connect HOST PORT | connect-unix PATH |\n"
               "       unix-send PATH TEXT | resolve NAME | write PATH | read PATH | env | dbus-session [ADDRESS] |\n"
               "       tcp-send HOST PORT TEXT | udp-send HOST PORT TEXT | socket DOMAIN [PROTO] | socketpair |\n"
               "       io-uring | ping ADDR | ptrace PID | vm-read PID | proc-mem PID | shm-create TEXT | shm-read ID |\n"
               "       shm-write ID TEXT | shm-rm ID | deny-seccomp CMD [ARGS...]\n";
  return 2;
}

// SysV shared memory (shm-create, shm-read, shm-write, shm-rm): what an IPC namespace separates.
int shm(const std::string& cmd, const std::vector<std::string>& args) {
  constexpr std::size_t kSize = 4096;
  if (cmd == "shm-create") {
    int id = ::shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
    if (id < 0) return failed("shm-create: shmget: " + err());
    void* p = ::shmat(id, nullptr, 0);
    if (p == reinterpret_cast<void*>(-1)) return failed("shm-create: shmat: " + err());
    std::strncpy(static_cast<char*>(p), args[1].c_str(), kSize - 1);
    ::shmdt(p);
    std::cout << id << std::endl;
    return 0;
  }
  const int id = std::atoi(args[1].c_str());
  if (cmd == "shm-rm" && args.size() == 2)
    return ::shmctl(id, IPC_RMID, nullptr) == 0 ? ok("shm-rm " + args[1]) : failed("shm-rm " + args[1] + ": " + err());
  if ((cmd != "shm-read" || args.size() != 2) && (cmd != "shm-write" || args.size() != 3)) return usage();
  void* p = ::shmat(id, nullptr, 0);
  if (p == reinterpret_cast<void*>(-1)) return failed(cmd + " " + args[1] + ": shmat: " + err());
  auto* text = static_cast<char*>(p);
  std::string what = cmd + " " + args[1];
  if (cmd == "shm-write") {
    std::strncpy(text, args[2].c_str(), kSize - 1);
  } else {
    what += ": " + std::string(text, ::strnlen(text, kSize));
  }
  ::shmdt(p);
  return ok(what);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage();
  const std::string& cmd = args[0];
  std::string error;
  if (cmd == "http-get" && args.size() >= 2) {
    return http_get(args[1], {args.begin() + 2, args.end()});
  } else if (cmd == "connect" && args.size() == 3) {
    int fd = tcp_connect(args[1], std::atoi(args[2].c_str()), error);
    if (fd < 0) return failed("connect " + args[1] + ":" + args[2] + ": " + error);
    ::close(fd);
    return ok("connect " + args[1] + ":" + args[2]);
  } else if (cmd == "connect-unix" && args.size() == 2) {
    int fd = unix_connect(args[1], error);
    if (fd < 0) return failed("connect-unix " + args[1] + ": " + error);
    ::close(fd);
    return ok("connect-unix " + args[1]);
  } else if (cmd == "unix-send" && args.size() == 3) {
    int fd = unix_connect(args[1], error);
    if (fd < 0) return failed("unix-send " + args[1] + ": connect: " + error);
    // No half-close: an HTTP server may take it for a client that left. The reply ends when the
    // server closes, or after the receive timeout.
    send_all(fd, unescape(args[2]));
    std::string reply = read_all(fd, 64 * 1024);
    ::close(fd);
    std::cout << reply << "\n";
    return ok("unix-send " + args[1] + ": " + std::to_string(reply.size()) + " bytes back");
  } else if (cmd == "resolve" && args.size() == 2) {
    return resolve(args[1]);
  } else if (cmd == "write" && args.size() == 2) {
    int fd = ::open(args[1].c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return failed("write " + args[1] + ": " + err());
    bool written = ::write(fd, "probe\n", 6) == 6;
    ::close(fd);
    return written ? ok("write " + args[1]) : failed("write " + args[1] + ": " + err());
  } else if (cmd == "read" && args.size() == 2) {
    int fd = ::open(args[1].c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failed("read " + args[1] + ": " + err());
    std::size_t total = 0;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) total += static_cast<std::size_t>(n);
    int e = errno;
    ::close(fd);
    if (n < 0) return failed("read " + args[1] + ": " + std::strerror(e));
    return ok("read " + args[1] + ": " + std::to_string(total) + " bytes");
  } else if (cmd == "env" && args.size() == 1) {
    for (char** e = environ; e && *e; ++e) std::cout << *e << "\n";
    return ok("env");
  } else if (cmd == "dbus-session" && args.size() <= 2) {
    return dbus_session(args.size() == 2 ? args[1] : "");
  } else if (cmd == "tcp-send" && args.size() == 4) {
    int fd = tcp_connect(args[1], std::atoi(args[2].c_str()), error);
    if (fd < 0) return failed("tcp-send " + args[1] + ":" + args[2] + ": connect: " + error);
    send_all(fd, unescape(args[3]));
    std::string reply = read_all(fd, 64 * 1024);
    ::close(fd);
    std::cout << reply << "\n";
    return ok("tcp-send " + args[1] + ":" + args[2] + ": " + std::to_string(reply.size()) + " bytes back");
  } else if (cmd == "udp-send" && args.size() == 4) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!fill_address(args[1], std::atoi(args[2].c_str()), ss, len)) return failed("udp-send: not a numeric address");
    int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return failed("udp-send: socket: " + err());
    std::string text = unescape(args[3]);
    ssize_t n = ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&ss), len);
    std::string e = err();
    ::close(fd);
    if (n < 0) return failed("udp-send " + args[1] + ":" + args[2] + ": " + e);
    return ok("udp-send " + args[1] + ":" + args[2]);
  } else if (cmd == "socket" && (args.size() == 2 || args.size() == 3)) {
    return make_socket(args[1], args.size() == 3 ? args[2] : "");
  } else if (cmd == "socketpair" && args.size() == 1) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return failed("socketpair: " + err());
    ::close(fds[0]);
    ::close(fds[1]);
    return ok("socketpair");
  } else if (cmd == "io-uring" && args.size() == 1) {
    unsigned char params[120] = {};  // struct io_uring_params, zeroed
    long fd = ::syscall(425 /* io_uring_setup */, 4, params);
    if (fd < 0) return failed("io-uring: " + err());
    ::close(static_cast<int>(fd));
    return ok("io-uring");
  } else if (cmd == "ping" && args.size() == 2) {
    return ping(args[1]);
  } else if (cmd == "ptrace" && args.size() == 2) {
    pid_t pid = std::atoi(args[1].c_str());
    if (::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr) < 0) return failed("ptrace " + args[1] + ": " + err());
    int status;
    ::waitpid(pid, &status, __WALL);
    ::ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    return ok("ptrace " + args[1] + ": attached");
  } else if (cmd == "vm-read" && args.size() == 2) {
    char buf[8];
    iovec local{buf, sizeof buf}, remote{reinterpret_cast<void*>(0x10000), sizeof buf};
    if (::process_vm_readv(std::atoi(args[1].c_str()), &local, 1, &remote, 1, 0) < 0 && errno != EFAULT)
      return failed("vm-read " + args[1] + ": " + err());
    return ok("vm-read " + args[1] + ": permitted");
  } else if (cmd == "proc-mem" && args.size() == 2) {
    int fd = ::open(("/proc/" + args[1] + "/mem").c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return failed("proc-mem " + args[1] + ": " + err());
    ::close(fd);
    return ok("proc-mem " + args[1] + ": opened read-write");
  } else if (cmd.starts_with("shm-") && args.size() >= 2) {
    return shm(cmd, args);
  } else if (cmd == "deny-seccomp" && args.size() >= 2) {
    return deny_seccomp_then_exec({args.begin() + 1, args.end()});
  }
  return usage();
}
