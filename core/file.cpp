#include "core/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace tokfence::file {

namespace fs = std::filesystem;

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string child_name(int dir_fd, std::string_view name) {
  std::string base = describe_fd(dir_fd);
  if (!base.empty() && base.back() != '/') base += '/';
  return base + std::string(name);
}

// Why a component could not be opened as a directory, looked at without following it.
std::string why_not_a_directory(int dir_fd, const std::string& name, int open_errno) {
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return "is a symlink (refusing to follow it; remove it)";
    if (!S_ISDIR(st.st_mode)) return "is not a directory";
  }
  return errno_text(open_errno);
}

Result<void> check_owner(const struct stat& st, std::optional<uid_t> expected_owner, const std::string& what) {
  uid_t want = expected_owner.value_or(::geteuid());
  if (st.st_uid != want)
    return fail(what + ": is owned by uid " + std::to_string(st.st_uid) + ", expected uid " +
                std::to_string(want) + " (refusing to use it; remove it)");
  return {};
}

// One component: openat with O_NOFOLLOW|O_DIRECTORY (optionally mkdirat first), then fstat type + owner.
Result<Fd> open_component(int dir_fd, const std::string& name, Create create,
                          std::optional<uid_t> expected_owner) {
  constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::openat(dir_fd, name.c_str(), flags);
  if (fd < 0 && errno == ENOENT && create == Create::yes) {
    if (::mkdirat(dir_fd, name.c_str(), 0700) != 0 && errno != EEXIST)
      return fail(child_name(dir_fd, name) + ": cannot create directory: " + errno_text(errno));
    fd = ::openat(dir_fd, name.c_str(), flags);
  }
  if (fd < 0) {
    int err = errno;
    return fail(child_name(dir_fd, name) + ": " + why_not_a_directory(dir_fd, name, err));
  }
  Fd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(child_name(dir_fd, name) + ": cannot stat: " + errno_text(errno));
  if (!S_ISDIR(st.st_mode)) return fail(child_name(dir_fd, name) + ": is not a directory");
  if (auto ok = check_owner(st, expected_owner, child_name(dir_fd, name)); !ok) return std::unexpected(ok.error());
  return owned;
}

Result<std::vector<std::string>> split_relative(std::string_view name) {
  std::vector<std::string> parts;
  if (!name.empty() && name.front() == '/') return fail(std::string(name) + ": must be a relative path");
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part == "..") return fail(std::string(name) + ": '..' is not allowed here");
    if (part.find('\0') != std::string_view::npos) return fail("path contains a NUL byte");
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

Result<Fd> reopen_self(int dir_fd) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(describe_fd(dir_fd) + ": cannot open directory: " + errno_text(errno));
  return Fd(fd);
}

Result<void> write_all(int fd, std::string_view content) {
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno_text(errno));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return {};
}

// Opens the directory `dir` with O_NOFOLLOW on its last component; no owner check (write_atomic may be
// used for a directory such as a sticky /tmp, where O_EXCL + renameat is still safe).
Result<Fd> open_parent_nofollow(const fs::path& dir) {
  fs::path d = dir.empty() ? fs::path(".") : dir.lexically_normal();
  // A trailing slash would make the kernel follow a symlink at the last component despite O_NOFOLLOW.
  if (d.filename().empty() && d.has_parent_path()) d = d.parent_path();
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat st {};
    std::string why = errno_text(err);
    if (::lstat(d.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) why = "is a symlink (refusing to follow it; remove it)";
      else if (!S_ISDIR(st.st_mode)) why = "is not a directory";
    }
    return fail(d.string() + ": " + why);
  }
  return Fd(fd);
}

constexpr int kMaxTreeDepth = 256;

Result<void> remove_tree_inner(int dir_fd, const std::string& name, int depth) {
  if (depth > kMaxTreeDepth) return fail(child_name(dir_fd, name) + ": directory tree too deep to remove");
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return fail(child_name(dir_fd, name) + ": cannot stat: " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
      return fail(child_name(dir_fd, name) + ": cannot remove: " + errno_text(errno));
    return {};
  }
  // O_PATH first, so a directory we own but cannot read (mode 0) can be fixed through its descriptor.
  int path_fd = ::openat(dir_fd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (path_fd < 0) {
    // Swapped for a symlink or a file since the fstatat: remove that entry itself, never follow it.
    if (errno == ELOOP || errno == ENOTDIR) {
      if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT)
        return fail(child_name(dir_fd, name) + ": cannot remove: " + errno_text(errno));
      return {};
    }
    if (errno == ENOENT) return {};
    return fail(child_name(dir_fd, name) + ": cannot open: " + errno_text(errno));
  }
  Fd path_owned(path_fd);
  int fd = ::openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    struct stat dst {};
    if (::fstat(path_fd, &dst) == 0 && dst.st_uid == ::geteuid()) {
      // chmod through the magic link of the descriptor: acts on the inode we opened, not on a name.
      std::string self = "/proc/self/fd/" + std::to_string(path_fd);
      if (::chmod(self.c_str(), 0700) == 0) fd = ::openat(path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
  }
  if (fd < 0) return fail(child_name(dir_fd, name) + ": cannot open directory: " + errno_text(errno));
  Fd sub(fd);
  int list_fd = ::dup(sub.get());
  if (list_fd < 0) return fail(child_name(dir_fd, name) + ": " + errno_text(errno));
  DIR* dir = ::fdopendir(list_fd);
  if (!dir) {
    ::close(list_fd);
    return fail(child_name(dir_fd, name) + ": cannot list: " + errno_text(errno));
  }
  std::vector<std::string> entries;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view n = entry->d_name;
    if (n == "." || n == "..") continue;
    entries.emplace_back(n);
  }
  ::closedir(dir);
  for (const auto& entry : entries)
    if (auto ok = remove_tree_inner(sub.get(), entry, depth + 1); !ok) return ok;
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return fail(child_name(dir_fd, name) + ": cannot remove directory: " + errno_text(errno));
  return {};
}

}  // namespace

std::string describe_fd(int fd) {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  if (ec) return "fd " + std::to_string(fd);
  return p.string();
}

std::string random_hex(std::size_t n) {
  std::vector<unsigned char> bytes((n + 1) / 2);
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t r = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    got += static_cast<size_t>(r);
  }
  if (got < bytes.size()) {  // no getrandom (old kernel / seccomp): the OS entropy source via random_device
    std::random_device rd;
    for (; got < bytes.size(); ++got) bytes[got] = static_cast<unsigned char>(rd());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n);
  for (size_t i = 0; out.size() < n; ++i) {
    out += kHex[bytes[i / 2] >> ((i % 2) ? 0 : 4) & 0xf];
  }
  return out;
}

bool is_single_component(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && name.size() <= NAME_MAX;
}

Result<Fd> open_dir_at(int dir_fd, std::string_view name, Create create, std::optional<uid_t> expected_owner) {
  auto parts = split_relative(name);
  if (!parts) return std::unexpected(parts.error());
  if (parts->empty()) return reopen_self(dir_fd);
  Fd current;
  int at = dir_fd;
  for (const auto& part : *parts) {
    auto next = open_component(at, part, create, expected_owner);
    if (!next) return std::unexpected(next.error());
    current = std::move(*next);
    at = current.get();
  }
  return current;
}

Result<Fd> open_dir_beneath(const fs::path& trusted_root, const fs::path& path, Create create,
                            std::optional<uid_t> expected_owner) {
  if (!trusted_root.is_absolute() || !path.is_absolute())
    return fail(path.string() + ": internal: open_dir_beneath needs absolute paths");
  fs::path root = trusted_root.lexically_normal();
  fs::path rel = path.lexically_normal().lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..")
    return fail(path.string() + ": is not below " + trusted_root.string());
  // The trusted root (and its ancestors) are resolved normally: they are not writable by the agent.
  int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return fail(root.string() + ": cannot open directory: " + errno_text(errno));
  Fd root_owned(root_fd);
  if (rel == ".") return root_owned;
  return open_dir_at(root_owned.get(), rel.string(), create, expected_owner);
}

Result<Fd> open_dir_nofollow_any_owner(const fs::path& path) { return open_parent_nofollow(path); }

Result<Fd> open_dir_nofollow(const fs::path& path, std::optional<uid_t> expected_owner) {
  auto fd = open_parent_nofollow(path);
  if (!fd) return fd;
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return fail(path.string() + ": cannot stat: " + errno_text(errno));
  if (auto ok = check_owner(st, expected_owner, path.string()); !ok) return std::unexpected(ok.error());
  return fd;
}

Result<void> write_atomic_at(int dir_fd, std::string_view name, std::string_view content,
                             const WriteOptions& options) {
  if (!is_single_component(name)) return fail(std::string(name) + ": not a single file name");
  const std::string target(name);
  // Random, O_EXCL, O_NOFOLLOW: a name planted in advance is never opened, only collided with.
  std::string stem = target.substr(0, std::min<size_t>(target.size(), NAME_MAX - 40));
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
    tmp = "." + stem + ".tmp-" + random_hex(24);
    fd = ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      return fail(child_name(dir_fd, target) + ": cannot create temporary file: " + errno_text(errno));
  }
  if (fd < 0) return fail(child_name(dir_fd, target) + ": cannot create temporary file: name collisions");
  Fd out(fd);
  auto abandon = [&](const std::string& why) -> Result<void> {
    out = Fd();
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    return fail(child_name(dir_fd, target) + ": " + why);
  };
  if (auto ok = write_all(out.get(), content); !ok) return abandon("cannot write: " + ok.error().message);
  if (options.owner && ::fchown(out.get(), options.owner->first, options.owner->second) != 0)
    return abandon("cannot set owner: " + errno_text(errno));
  if (::fchmod(out.get(), options.mode) != 0) return abandon("cannot set mode: " + errno_text(errno));
  if (::fsync(out.get()) != 0) return abandon("cannot sync: " + errno_text(errno));
  if (::close(out.release()) != 0) return abandon("cannot close: " + errno_text(errno));
  if (::renameat(dir_fd, tmp.c_str(), dir_fd, target.c_str()) != 0) {
    int err = errno;
    struct stat st {};
    if (::fstatat(dir_fd, target.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      return abandon("is a directory (refusing to replace it)");
    return abandon("cannot replace: " + errno_text(err));
  }
  // Make the rename durable; a descriptor opened O_PATH cannot fsync, so reopen "." if needed.
  if (::fsync(dir_fd) != 0) {
    if (auto self = reopen_self(dir_fd)) ::fsync(self->get());
  }
  return {};
}

Result<void> write_atomic(const fs::path& path, std::string_view content, const WriteOptions& options) {
  auto dir = open_parent_nofollow(path.parent_path());
  if (!dir) return std::unexpected(dir.error());
  return write_atomic_at(dir->get(), path.filename().string(), content, options);
}

Result<std::string> read_at(int dir_fd, std::string_view name, std::size_t limit) {
  const std::string target(name);
  if (target.empty() || target.find('\0') != std::string::npos) return fail("read: empty file name");
  // O_NONBLOCK: opening a FIFO planted at `name` must not hang the host.
  int fd = ::openat(dir_fd, target.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP) return fail(child_name(dir_fd, target) + ": is a symlink (refusing to follow it)");
    return fail(child_name(dir_fd, target) + ": cannot open: " + errno_text(err));
  }
  Fd in(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(child_name(dir_fd, target) + ": cannot stat: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) return fail(child_name(dir_fd, target) + ": is not a regular file");
  std::string data;
  char buffer[65536];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(child_name(dir_fd, target) + ": cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > limit)
      return fail(child_name(dir_fd, target) + ": larger than " + std::to_string(limit) + " bytes");
    data.append(buffer, static_cast<size_t>(n));
  }
  return data;
}

Result<void> remove_tree_at(int dir_fd, std::string_view name) {
  auto parts = split_relative(name);
  if (!parts) return std::unexpected(parts.error());
  if (!is_single_component(name)) return fail(std::string(name) + ": not a single file name");
  return remove_tree_inner(dir_fd, std::string(name), 0);
}

Result<Fd> connect_unix_at(int dir_fd, std::string_view name, std::optional<uid_t> expected_owner) {
  if (!is_single_component(name)) return fail(std::string(name) + ": not a single socket name");
  const std::string target(name);
  int path_fd = ::openat(dir_fd, target.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (path_fd < 0) return fail(child_name(dir_fd, target) + ": cannot open: " + errno_text(errno));
  Fd path_owned(path_fd);
  struct stat st {};
  if (::fstat(path_fd, &st) != 0) return fail(child_name(dir_fd, target) + ": cannot stat: " + errno_text(errno));
  if (S_ISLNK(st.st_mode)) return fail(child_name(dir_fd, target) + ": is a symlink (refusing to follow it)");
  if (!S_ISSOCK(st.st_mode)) return fail(child_name(dir_fd, target) + ": is not a socket");
  if (expected_owner) {
    if (auto ok = check_owner(st, expected_owner, child_name(dir_fd, target)); !ok)
      return std::unexpected(ok.error());
  }
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return fail("socket: " + errno_text(errno));
  Fd owned(sock);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string self = "/proc/self/fd/" + std::to_string(path_fd);
  std::memcpy(addr.sun_path, self.c_str(), self.size() + 1);
  if (::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail(child_name(dir_fd, target) + ": cannot connect: " + errno_text(errno));
  return owned;
}

fs::path self_exe() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return p;
}

Result<std::filesystem::path> check_trusted_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(dir, ec);
  if (ec) return fail(dir.string() + ": cannot resolve: " + ec.message());
  const uid_t self = ::geteuid();
  std::filesystem::path walked = "/";
  std::vector<std::filesystem::path> chain = {walked};
  for (const auto& part : real.relative_path()) chain.push_back(walked /= part);
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const auto& p = chain[i];
    const bool last = i + 1 == chain.size();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail(p.string() + ": not a directory");
    if (st.st_uid != self && st.st_uid != 0)
      return fail(p.string() + " is owned by uid " + std::to_string(st.st_uid) + ", not by you or root");
    const bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if (others_write && (last || !(st.st_mode & S_ISVTX))) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      return fail(p.string() + " is writable by other users (mode " + mode + ")");
    }
  }
  return real;
}

bool is_same_or_under(const fs::path& path, const fs::path& dir) {
  auto p = path.lexically_normal().string(), d = dir.lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return p == d || d == "/" || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/');
}

namespace {

// Whether the link at `link` (lstat'ed into `st`) can be changed by nobody but root: owned by root,
// in a directory owned by root that no group or other may write.
bool root_only_link(const fs::path& link, const struct stat& st) {
  if (st.st_uid != 0) return false;
  struct stat parent {};
  std::error_code ec;
  const fs::path dir = fs::canonical(link.parent_path(), ec);
  return !ec && ::stat(dir.c_str(), &parent) == 0 && parent.st_uid == 0 && (parent.st_mode & 022) == 0;
}

}  // namespace

Result<FenceDir> fence_dir_as_named(const std::string& what, const fs::path& given, const fs::path& tokfence_home) {
  std::error_code ec;
  fs::path named = fs::absolute(given, ec).lexically_normal();
  while (named.has_relative_path() && named.filename().empty()) named = named.parent_path();  // "dir/" -> "dir"
  const fs::path real = fs::canonical(named, ec);
  if (ec || !fs::is_directory(real)) return fail(what + ": not an existing directory: " + given.string());
  if (real != named) {
    fs::path at = named.root_path();
    for (const auto& part : named.relative_path()) {
      at /= part;
      struct stat st {};
      if (::lstat(at.c_str(), &st) == 0 && S_ISLNK(st.st_mode) && !root_only_link(at, st))
        return fail(what + ": " + named.string() + " is reached through a symbolic link (" +
                    (at == named ? std::string() : at.string() + " on the way; ") + "it is " + real.string() + "): give " +
                    real.string() + " itself, so that what the agent gets is what you named");
      std::error_code step;
      at = fs::canonical(at, step);  // the rest is looked at where a root-only link leads
      if (step) return fail(what + ": not an existing directory: " + given.string());
    }
  }
  const fs::path home = fs::canonical(tokfence_home, ec);
  if (!ec && (is_same_or_under(real, home) || is_same_or_under(home, real)))
    return fail(what + ": " + real.string() + (is_same_or_under(real, home) ? " is inside" : " holds") +
                " the tokfence home " + home.string() + ", which the agent must not see");
  // The real path, opened without following any link: what it is now is what the fence gets.
  Fd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto opened = open_path_nofollow(root.get(), real.relative_path());
  struct stat st {};
  if (!opened || ::fstat(opened->get(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail(what + ": " + real.string() + ": changed while it was checked" +
                (opened ? std::string() : " (" + opened.error().message + ")"));
  return FenceDir{real, st.st_dev, st.st_ino};
}

Result<Fd> open_path_nofollow(int dir_fd, const fs::path& relative) {
  Fd at(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (!at) return fail("cannot duplicate a directory descriptor: " + errno_text(errno));
  if (relative.empty()) return at;
  const auto last = std::prev(relative.end());
  for (auto part = relative.begin(); part != relative.end(); ++part) {
    Fd next(::openat(at.get(), part->c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC | (part == last ? 0 : O_DIRECTORY)));
    struct stat st {};
    if (!next || ::fstat(next.get(), &st) != 0) return fail(part->string() + ": " + errno_text(errno));
    if (S_ISLNK(st.st_mode)) return fail(part->string() + ": is a symbolic link");
    at = std::move(next);
  }
  return at;
}

}  // namespace tokfence::file
