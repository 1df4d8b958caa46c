#include "core/unix_socket.hpp"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <vector>

#include "core/file.hpp"

namespace tokfence {
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

// A missing parent is created (ancestors normally, the parent itself 0700: tokfence made it, so it may
// set its mode); an existing one is never chmodded.
Result<void> create_missing_parent(const fs::path& parent) {
  struct stat st{};
  if (::stat(parent.c_str(), &st) == 0) return {};
  std::error_code ec;
  if (parent.has_parent_path()) fs::create_directories(parent.parent_path(), ec);
  if (ec) return fail("socket: cannot create directory: " + parent.parent_path().string() + ": " + ec.message());
  if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST)
    return fail("socket: cannot create directory: " + parent.string() + ": " + errno_text(errno));
  return {};
}

// What is at `name` now: nothing, a stale socket or a link (replaced by the rename later) is fine; a live
// socket or any other file is refused, so a wrong path never destroys anything.
Result<void> check_target(int dir_fd, const std::string& name, const fs::path& path) {
  struct stat st{};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return fail("socket: cannot check: " + path.string() + ": " + errno_text(errno));
  }
  if (S_ISLNK(st.st_mode)) return {};
  if (S_ISDIR(st.st_mode)) return fail("socket: path exists and is a directory: " + path.string());
  if (!S_ISSOCK(st.st_mode)) return fail("socket: path exists and is not a socket: " + path.string());
  if (auto probe = file::connect_unix_at(dir_fd, name); probe)
    return fail("socket: already in use by a running process: " + path.string());
  return {};
}

// A fresh 0700 directory next to the target, created and opened by us; removed (rmdir: only if empty,
// never following a link) when this goes out of scope.
struct PrivateDir {
  int parent_fd = -1;
  std::string name;
  file::Fd fd;
  PrivateDir() = default;
  PrivateDir(PrivateDir&&) = default;
  ~PrivateDir() {
    if (!fd) return;
    // Whatever is left inside (a socket after a failure) is ours: remove it through the descriptor.
    if (auto list = ::fdopendir(::dup(fd.get()))) {
      std::vector<std::string> names;
      while (dirent* e = ::readdir(list))
        if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") names.emplace_back(e->d_name);
      ::closedir(list);
      for (const auto& n : names) ::unlinkat(fd.get(), n.c_str(), 0);
    }
    ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR);
  }
};

Result<PrivateDir> make_private_subdir(int dir_fd, const fs::path& parent) {
  PrivateDir out;
  out.parent_fd = dir_fd;
  for (int attempt = 0; attempt < 8; ++attempt) {
    std::string name = ".tokfence-bind-" + file::random_hex(16);
    if (::mkdirat(dir_fd, name.c_str(), 0700) == 0) {
      out.name = name;
      break;
    }
    if (errno != EEXIST)
      return fail("socket: cannot create a private directory in " + parent.string() + ": " + errno_text(errno));
  }
  if (out.name.empty()) return fail("socket: cannot create a private directory in " + parent.string());
  auto opened = file::open_dir_at(dir_fd, out.name);
  if (!opened) {
    ::unlinkat(dir_fd, out.name.c_str(), AT_REMOVEDIR);
    return fail("socket: private directory in " + parent.string() + " was tampered with: " + opened.error().message);
  }
  out.fd = std::move(*opened);
  // Exactly 0700 whatever the umask, set through the descriptor.
  if (::fchmod(out.fd.get(), 0700) != 0) return fail("socket: cannot set mode 0700: " + errno_text(errno));
  return out;
}

// A socket's mode can only be set by name: look the name up without following it (O_PATH|O_NOFOLLOW),
// make sure it is a socket, and chmod the inode through /proc/self/fd of that descriptor.
Result<void> chmod_socket_at(int dir_fd, const std::string& name, mode_t mode) {
  file::Fd path_fd(::openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!path_fd) return fail(errno_text(errno));
  struct stat st{};
  if (::fstat(path_fd.get(), &st) != 0) return fail(errno_text(errno));
  if (!S_ISSOCK(st.st_mode)) return fail("not a socket");
  std::string self = "/proc/self/fd/" + std::to_string(path_fd.get());
  if (::chmod(self.c_str(), mode) != 0) return fail(errno_text(errno));
  return {};
}

}  // namespace

void set_cloexec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

void remove_socket_file(const fs::path& path) {
  // The parent may be writable by a container: open it without following a link at its name, then look at
  // and unlink the entry relative to it (unlinkat never follows a link; a non-socket is left alone).
  std::string name = path.filename().string();
  if (!file::is_single_component(name)) return;
  auto dir = file::open_dir_nofollow_any_owner(path.parent_path());
  if (!dir) return;
  struct stat st{};
  if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode))
    ::unlinkat(dir->get(), name.c_str(), 0);
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
  const std::string name = path.filename().string();
  if (!file::is_single_component(name)) return fail("socket: not a file path: " + path.string());
  fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (auto made = create_missing_parent(parent); !made) return std::unexpected(made.error());
  // The target directory may be writable by a container or another user: it is used only through this
  // descriptor (its own name not followed), never by name again.
  auto dir = file::open_dir_nofollow_any_owner(parent);
  if (!dir) return fail("socket: " + dir.error().message);
  if (auto ok = check_target(dir->get(), name, path); !ok) return std::unexpected(ok.error());

  // Bind and set the mode inside a private directory that only we can write, so nothing can swap the
  // socket for a link between bind and chmod; then move the finished socket into place.
  auto priv = make_private_subdir(dir->get(), parent);
  if (!priv) return std::unexpected(priv.error());
  PrivateDir& p = *priv;
  std::string alias = "/proc/self/fd/" + std::to_string(p.fd.get()) + "/" + name;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (alias.size() >= sizeof(addr.sun_path)) return fail("socket: file name too long (max 90 bytes): " + name);
  std::memcpy(addr.sun_path, alias.c_str(), alias.size() + 1);
  Fd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.fd < 0) return fail("socket: cannot create: " + errno_text(errno));
  if (::bind(sock.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(sockaddr_un)) != 0)
    return fail("socket: cannot bind: " + path.string() + ": " + errno_text(errno));
  if (auto ok = chmod_socket_at(p.fd.get(), name, mode); !ok)
    return fail("socket: cannot set mode: " + path.string() + ": " + ok.error().message);
  if (::listen(sock.fd, backlog) != 0) return fail("socket: cannot listen: " + path.string() + ": " + errno_text(errno));
  // renameat replaces a stale socket (or a link planted at the name) atomically; over a directory it
  // fails, and the directory is left as it is.
  if (::renameat(p.fd.get(), name.c_str(), dir->get(), name.c_str()) != 0) {
    int e = errno;
    if (e == EISDIR || e == ENOTEMPTY || e == EEXIST)
      return fail("socket: path exists and is a directory: " + path.string());
    return fail("socket: cannot move into place: " + path.string() + ": " + errno_text(e));
  }
  return sock.release();
}

}  // namespace tokfence
