#include "proxy/server_sockets.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace tokfence::proxy {
namespace {

namespace fs = std::filesystem;

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

std::string errno_text(int e) { return std::strerror(e); }

// The short alias of `path` through an O_PATH descriptor of its parent; `dir` keeps it alive.
Result<sockaddr_un> short_address(const fs::path& path, Fd& dir) {
  fs::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  std::string name = path.filename().string();
  if (name.empty()) return fail("socket: not a file path: " + path.string());
  dir.fd = ::open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd < 0) return fail("socket: cannot open directory: " + parent.string() + ": " + errno_text(errno));
  std::string alias = "/proc/self/fd/" + std::to_string(dir.fd) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (alias.size() >= sizeof(addr.sun_path))
    return fail("socket: file name too long (max 90 bytes): " + name);
  std::memcpy(addr.sun_path, alias.c_str(), alias.size() + 1);
  return addr;
}

}  // namespace

void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

void remove_socket_file(const fs::path& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

Result<int> connect_unix(const fs::path& path, int timeout_ms, int* err_no) {
  if (err_no) *err_no = 0;
  Fd dir;
  auto addr = short_address(path, dir);
  if (!addr) {
    if (err_no) *err_no = ENOENT;
    return std::unexpected(addr.error());
  }
  Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (sock.fd < 0) return fail("socket: cannot create: " + errno_text(errno));
  // A full listen queue reports EAGAIN on Unix sockets: retry briefly rather than failing.
  for (int attempt = 0;; ++attempt) {
    if (::connect(sock.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un)) == 0) break;
    int e = errno;
    if (e == EAGAIN && attempt < 50) {
      ::poll(nullptr, 0, 10);
      continue;
    }
    if (e == EINPROGRESS) {
      pollfd p{sock.fd, POLLOUT, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) {
        if (err_no) *err_no = ETIMEDOUT;
        return fail("socket: connect timed out: " + path.string());
      }
      int so = 0;
      socklen_t len = sizeof(so);
      ::getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &so, &len);
      if (so == 0) break;
      e = so;
    }
    if (err_no) *err_no = e;
    return fail("socket: cannot connect: " + path.string() + ": " + errno_text(e));
  }
  int flags = ::fcntl(sock.fd, F_GETFL);
  ::fcntl(sock.fd, F_SETFL, flags & ~O_NONBLOCK);
  return sock.release();
}

Result<int> bind_unix_listener(const fs::path& path, mode_t mode, int backlog) {
  fs::path parent = path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    if (!fs::exists(parent, ec)) {
      fs::create_directories(parent, ec);
      if (ec) return fail("socket: cannot create directory: " + parent.string() + ": " + ec.message());
      ::chmod(parent.c_str(), 0700);
    }
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("socket: path exists and is not a socket: " + path.string());
    int e = 0;
    auto probe = connect_unix(path, 500, &e);
    if (probe) {
      ::close(*probe);
      return fail("socket: already in use by a running process: " + path.string());
    }
    ::unlink(path.c_str());
  }
  Fd dir;
  auto addr = short_address(path, dir);
  if (!addr) return std::unexpected(addr.error());
  Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.fd < 0) return fail("socket: cannot create: " + errno_text(errno));
  if (::bind(sock.fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un)) != 0)
    return fail("socket: cannot bind: " + path.string() + ": " + errno_text(errno));
  std::string name = path.filename().string();
  if (::fchmodat(dir.fd, name.c_str(), mode, 0) != 0 && ::chmod(path.c_str(), mode) != 0) {
    int e = errno;
    ::unlink(path.c_str());
    return fail("socket: cannot set mode: " + path.string() + ": " + errno_text(e));
  }
  if (::listen(sock.fd, backlog) != 0) {
    int e = errno;
    ::unlink(path.c_str());
    return fail("socket: cannot listen: " + path.string() + ": " + errno_text(e));
  }
  return sock.release();
}

}  // namespace tokfence::proxy
