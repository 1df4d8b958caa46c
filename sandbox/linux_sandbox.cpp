// How the Linux sandbox is put together (see linux_sandbox.hpp for the guarantees).
//
// Everything that allocates or can fail on bad input is computed first, in the parent, into a
// Plan. Then one raw clone(2) creates the child directly in new user, network, mount, PID, IPC,
// UTS and cgroup namespaces, so the child is the namespace's PID 1 and there is no intermediate
// process to supervise. The child, still holding full capabilities inside its new user namespace:
//   1. maps its own uid/gid (setgroups denied first; root maps 0 -> 0);
//   2. brings up `lo`;
//   3. makes every mount private, takes detached copies (open_tree) of what must stay visible
//      below a hidden path (the proxy socket's directory, the harness home, the workdir...), and
//      replaces /dev with a tmpfs of its own holding only null, zero, full, random, urandom and
//      tty (bound from the host's), the links fd, stdin, stdout, stderr and ptmx, pts and shm;
//   4. walks hides and re-exposures in path order: a hidden directory becomes a small tmpfs (made
//      read-only at the end), a hidden file or socket is covered with a read-only /dev/null; the
//      workdir's .git/hooks and .git/config come back read-only over themselves (git runs what
//      they name, unconfined, the next time the user runs git there);
//   5. mounts a devpts instance of its own on /dev/pts (/dev/ptmx links to its ptmx), so no
//      pseudo-terminal of the host (the user's other terminals) is reachable by path, and a fresh
//      /proc for the PID namespace;
//   6. with a terminal asked for: opens a pseudo-terminal in that instance, sends its master end
//      to the parent (SCM_RIGHTS) and makes the slave its controlling terminal and stdio;
//   7. no_new_privs, drops every capability (bounding set included, securebits locked), applies
//      Landlock, marks every inherited descriptor close-on-exec, and execs tokfence-relay from an
//      fd opened before the mounts changed. The relay starts the program under the seccomp filter
//      of seccomp.hpp (`--agent-seccomp`), or not at all.
// As root, the clone happens with no supplementary groups (dropped on the calling thread only and
// restored after): a user namespace cannot drop them later, and group-owned files would stay
// readable. An ordinary user cannot drop them; group-owned sockets are still covered by seccomp.
// Mounts created here cannot be undone from inside: the child has no capabilities, and any user
// namespace it creates itself sees them locked.
// Failures before the exec are written to a close-on-exec pipe, which the parent reads: EOF means
// the relay is running.
#include "sandbox/linux_sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <utility>

#include "core/file.hpp"
#include "sandbox/git_settings.hpp"
#include "sandbox/landlock.hpp"

namespace tokfence::sandbox {
namespace fs = std::filesystem;
namespace {

// One byte carrying one descriptor (SCM_RIGHTS): the message both ends of the terminal's master
// hand-over use (make_terminal sends, receive_master receives). No allocation: the sender runs in
// the cloned child.
struct FdMessage {
  char byte = 't';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
  msghdr msg{};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;
  FdMessage& operator=(const FdMessage&) = delete;
};

struct Op {
  // synth_dir: a tmpfs over a real directory on the way to a planted file; its real entries come
  // back as `expose` (may_vanish) and `symlink` ops. plant: a file written into a tmpfs.
  enum Kind { hide_dir, hide_file, private_tmp, expose, synth_dir, symlink, plant } kind;
  std::string target;  // path inside
  std::string source;  // expose: host path (cloned before any hiding); symlink: the link's text; plant: content
  int tree_fd = -1;    // expose: the detached copy
  int mounted_fd = -1; // hide_dir, synth_dir: O_PATH fd of the new mount, made read-only at the end
  bool read_only = false;  // expose: the copy is made read-only before it is attached
  bool file = false;       // expose: a missing mount point is created as a file (a socket)
  bool may_vanish = false; // expose: an entry listed by the parent that is gone by now is skipped
  mode_t mode = 0755;      // synth_dir: the real directory's mode
};

// The namespaces the child is cloned into (and missing_linux_features probes for, so a kernel that
// refuses one fails the run instead of leaving it shared). IPC: SysV shared memory, semaphores and
// message queues need no path, so no mount or Landlock rule covers them; a shared IPC namespace
// let the agent attach (read, overwrite) the user's own 0600 segments (X11 MIT-SHM buffers,
// databases) and remove or hold root services' semaphores. UTS and cgroup: the host's hostname
// stays unchangeable from outside, and /proc/self/cgroup shows no host cgroup path.
constexpr int kNamespaces =
    CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

// More entries to re-expose in tmpfs-covered directories than this is refused rather than slow.
constexpr std::size_t kMaxSynthEntries = 4096;

// More covered sockets than this (--allow-socket mode) is refused rather than slow.
constexpr std::size_t kMaxCoveredSockets = 4096;

struct Plan {
  int max_processes = 0;
  std::vector<std::string> relay_argv;
  std::vector<std::string> env;
  std::string workdir;
  std::vector<Op> ops;  // sorted by target; parents first, a hide before an expose of the same path
  LandlockRules landlock;
  int relay_fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
  std::optional<TerminalSettings> terminal;
  int terminal_sock = -1;  // the child's end of the socket the master end goes back through
};

bool is_under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

std::string canonical_or_empty(const fs::path& p) {
  std::error_code ec;
  auto c = fs::canonical(p, ec);
  return ec ? std::string() : c.string();
}

// ---- child side: only syscalls and preallocated data from here to the exec ----

[[noreturn]] void child_fail(int err_fd, const std::string& step, int err) {
  std::string msg = step + ": " + std::strerror(err);
  [[maybe_unused]] auto n = ::write(err_fd, msg.data(), msg.size());
  ::_exit(126);
}

bool write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

void mkdir_p(const std::string& path, mode_t mode = 0755) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), mode);
  }
}

// A planted file: its missing directories (0700) and the file itself are created in a tmpfs of
// ours (plan: every directory on the way that exists on the host is covered), O_EXCL|O_NOFOLLOW.
int plant_file(const std::string& target, const std::string& content) {
  mkdir_p(target.substr(0, target.rfind('/')), 0700);
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return err;
    }
    done += static_cast<std::size_t>(n);
  }
  int err = ::fchmod(fd, 0600) < 0 ? errno : 0;
  ::close(fd);
  return err;
}

int bring_up_loopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  int err = 0;
  if (::ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
    err = errno;
  } else {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (::ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) err = errno;
  }
  ::close(fd);
  return err;
}

int make_read_only(int mount_fd, unsigned flags = 0) {
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH | flags, &attr, sizeof attr) < 0) return errno;
  return 0;
}

// The mount point for an expose: a directory, or for a file (an allowed socket below a hidden
// directory) an empty file in that directory's tmpfs. Existing targets are left as they are.
void make_mount_point(const std::string& target, bool file) {
  if (!file) return mkdir_p(target);
  struct stat st{};
  if (::lstat(target.c_str(), &st) == 0) return;
  mkdir_p(target.substr(0, target.rfind('/')));
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
}

int drop_capabilities() {
  if (::prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED) < 0)
    return errno;
  for (int cap = 0; cap <= 63; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      return errno;
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return errno;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capset, &header, data) < 0) return errno;
  return 0;
}

// The device nodes the sandbox's /dev keeps, bound from the host's (a user namespace may bind a
// node, never mknod one). Everything else there (raw disks, text consoles, /dev/kmsg, /dev/mem,
// /dev/input, /dev/fuse, /dev/net/tun...) is absent: as root, the sandbox's root is the host's.
constexpr const char* kDevNodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
constexpr const char* kDevLinks[][2] = {{"fd", "/proc/self/fd"},         {"stdin", "/proc/self/fd/0"},
                                        {"stdout", "/proc/self/fd/1"},   {"stderr", "/proc/self/fd/2"},
                                        {"ptmx", "pts/ptmx"}};

// A /dev of the sandbox's own: a tmpfs holding the allowed nodes (detached copies taken before it
// covers the host's), the links above and the empty pts and shm where devpts and the private shm
// go. Returns an O_PATH fd of the tmpfs, made read-only once everything below it is mounted.
int mount_private_dev(int err_fd) {
  constexpr std::size_t n = sizeof kDevNodes / sizeof kDevNodes[0];
  int trees[n];
  char path[64];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(path, sizeof path, "/dev/%s", kDevNodes[i]);
    trees[i] = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, path,
                                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW));
    if (trees[i] < 0) child_fail(err_fd, std::string("mount namespace: clone ") + path, errno);
    struct stat st{};
    if (::fstat(trees[i], &st) < 0 || !S_ISCHR(st.st_mode))
      child_fail(err_fd, std::string("mount namespace: ") + path + " on the host is not a character device", EINVAL);
  }
  if (::mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m") < 0)
    child_fail(err_fd, "mount namespace: tmpfs on /dev", errno);
  int dev_fd = ::open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dev_fd < 0) child_fail(err_fd, "mount namespace: open /dev", errno);
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(path, sizeof path, "/dev/%s", kDevNodes[i]);
    int fd = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) child_fail(err_fd, std::string("mount namespace: mount point ") + path, errno);
    ::close(fd);
    if (::syscall(SYS_move_mount, trees[i], "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
      child_fail(err_fd, std::string("mount namespace: bind the host's ") + path, errno);
    ::close(trees[i]);
  }
  for (const auto& link : kDevLinks) {
    std::snprintf(path, sizeof path, "/dev/%s", link[0]);
    if (::symlink(link[1], path) < 0) child_fail(err_fd, std::string("mount namespace: symlink ") + path, errno);
  }
  for (const char* dir : {"/dev/pts", "/dev/shm"})
    if (::mkdir(dir, 0755) < 0) child_fail(err_fd, std::string("mount namespace: mkdir ") + dir, errno);
  return dev_fd;
}

// The sandbox's own devpts instance: host ptys are owned by the user's uid, and the agent could
// otherwise read what is typed in (and write to) every other terminal of the user. /dev/ptmx is a
// symbolic link into it (mount_private_dev), as in containers.
void mount_private_devpts(int err_fd) {
  if (::mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
    child_fail(err_fd, "mount namespace: a devpts of its own on /dev/pts", errno);
}

// A pseudo-terminal from the private instance: the master end goes to the parent through `sock`,
// the slave becomes the controlling terminal and stdin/stdout/stderr (setsid came first).
void make_terminal(const TerminalSettings& settings, int sock, int err_fd) {
  int master = ::open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) child_fail(err_fd, "terminal: open /dev/pts/ptmx", errno);
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) < 0) child_fail(err_fd, "terminal: unlock", errno);
  // By the master's descriptor, not by a name someone could have replaced.
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) child_fail(err_fd, "terminal: open the slave end", errno);
  if (settings.has_attrs) ::tcsetattr(slave, TCSANOW, &settings.attrs);
  if (settings.has_size) ::ioctl(master, TIOCSWINSZ, &settings.size);

  FdMessage out;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&out.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &master, sizeof(int));
  ssize_t sent;
  while ((sent = ::sendmsg(sock, &out.msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  if (sent != 1) child_fail(err_fd, "terminal: send the master end", sent < 0 ? errno : EIO);
  ::close(master);
  ::close(sock);

  if (::ioctl(slave, TIOCSCTTY, 0) < 0) child_fail(err_fd, "terminal: set controlling terminal", errno);
  for (int fd = 0; fd < 3; ++fd)
    if (::dup2(slave, fd) < 0) child_fail(err_fd, "terminal: dup2", errno);
  if (slave > 2) ::close(slave);
}

[[noreturn]] void child_main(Plan& plan, int err_fd) {
  // Dies with the tokfence process that supervises it; everything in the namespace dies with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setsid() < 0) child_fail(err_fd, "setsid", errno);

  if (!write_file("/proc/self/setgroups", "deny")) child_fail(err_fd, "user namespace: setgroups", errno);
  if (!write_file("/proc/self/uid_map", std::to_string(plan.uid) + " " + std::to_string(plan.uid) + " 1\n"))
    child_fail(err_fd, "user namespace: uid_map", errno);
  if (!write_file("/proc/self/gid_map", std::to_string(plan.gid) + " " + std::to_string(plan.gid) + " 1\n"))
    child_fail(err_fd, "user namespace: gid_map", errno);

  if (int err = bring_up_loopback()) child_fail(err_fd, "network namespace: bring up lo", err);

  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    child_fail(err_fd, "mount namespace: make mounts private", errno);
  for (auto& op : plan.ops) {
    if (op.kind != Op::expose) continue;
    op.tree_fd = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, op.source.c_str(),
                                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW));
    if (op.tree_fd < 0 && op.may_vanish && errno == ENOENT) continue;
    if (op.tree_fd < 0) child_fail(err_fd, "mount namespace: clone " + op.source, errno);
  }
  // Before the ops: /dev/shm (the private shm) and exposes below /dev (an allowed socket such as
  // /dev/log, a writable path below /dev/shm) land in the sandbox's /dev, not the host's.
  const int dev_fd = mount_private_dev(err_fd);
  for (auto& op : plan.ops) {
    const char* target = op.target.c_str();
    struct stat st{};
    switch (op.kind) {
      case Op::hide_dir:
      case Op::private_tmp: {
        if (::lstat(target, &st) < 0 || !S_ISDIR(st.st_mode)) break;  // gone below an earlier hide
        // A quarter of RAM each (tmpfs's default is half each): their pages are the host's shared
        // memory, outside the agent's own, so two unbounded ones could take all of it and the
        // OOM killer would pick host processes (review 14d M1).
        const char* options = op.kind == Op::private_tmp ? "mode=1777,size=25%" : "mode=0755,size=1m";
        if (::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options) < 0)
          child_fail(err_fd, "mount namespace: tmpfs on " + op.target, errno);
        if (op.kind == Op::hide_dir) op.mounted_fd = ::open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        break;
      }
      case Op::hide_file: {
        if (::lstat(target, &st) < 0 || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) break;
        if (::mount("/dev/null", target, nullptr, MS_BIND, nullptr) < 0)
          child_fail(err_fd, "mount namespace: cover " + op.target, errno);
        // Read-only at once (nothing is mounted below a file), so thousands of covered sockets
        // do not hold thousands of descriptors.
        int fd = ::open(target, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) child_fail(err_fd, "mount namespace: cover " + op.target, errno);
        if (int err = make_read_only(fd)) child_fail(err_fd, "mount namespace: read-only " + op.target, err);
        ::close(fd);
        break;
      }
      case Op::synth_dir: {
        // The real directory (or a tmpfs above it, where it was not listed) is covered with a
        // tmpfs of its mode; its entries come back by the ops that follow (sorted by path).
        mkdir_p(op.target);
        char options[32];
        std::snprintf(options, sizeof options, "mode=%04o,size=4m", static_cast<unsigned>(op.mode & 07777));
        if (::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options) < 0)
          child_fail(err_fd, "mount namespace: tmpfs on " + op.target, errno);
        op.mounted_fd = ::open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        break;
      }
      case Op::symlink:
        if (::symlink(op.source.c_str(), target) < 0 && errno != EEXIST)
          child_fail(err_fd, "mount namespace: symlink " + op.target, errno);
        break;
      case Op::plant:
        if (int err = plant_file(op.target, op.source)) child_fail(err_fd, "plant " + op.target, err);
        break;
      case Op::expose: {
        if (op.tree_fd < 0) break;  // may_vanish, and it did
        if (op.read_only)
          if (int err = make_read_only(op.tree_fd, AT_RECURSIVE))
            child_fail(err_fd, "mount namespace: read-only " + op.source, err);
        make_mount_point(op.target, op.file);
        if (::syscall(SYS_move_mount, op.tree_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
          child_fail(err_fd, "mount namespace: mount " + op.source + " on " + op.target, errno);
        ::close(op.tree_fd);
        break;
      }
    }
  }
  for (auto& op : plan.ops) {
    if (op.mounted_fd < 0) continue;
    if (int err = make_read_only(op.mounted_fd)) child_fail(err_fd, "mount namespace: read-only " + op.target, err);
    ::close(op.mounted_fd);
  }
  mount_private_devpts(err_fd);
  if (int err = make_read_only(dev_fd)) child_fail(err_fd, "mount namespace: read-only /dev", err);
  ::close(dev_fd);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    child_fail(err_fd, "mount namespace: mount /proc", errno);
  if (plan.terminal) make_terminal(*plan.terminal, plan.terminal_sock, err_fd);

  {
    // Entered through what it is now, and only when that is what the caller checked.
    int fd = ::open(plan.workdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st{};
    if (fd < 0 || ::fstat(fd, &st) != 0) child_fail(err_fd, "workdir: " + plan.workdir, errno);
    if (plan.landlock.checked &&
        (st.st_dev != plan.landlock.checked->second.first || st.st_ino != plan.landlock.checked->second.second))
      child_fail(err_fd, "workdir: " + plan.workdir + " is not the directory that was checked: it was replaced since", EXDEV);
    if (::fchdir(fd) < 0) child_fail(err_fd, "workdir: " + plan.workdir, errno);
    ::close(fd);
  }
  if (plan.max_processes > 0) {
    const rlimit limit{static_cast<rlim_t>(plan.max_processes), static_cast<rlim_t>(plan.max_processes)};
    if (::setrlimit(RLIMIT_NPROC, &limit) < 0) child_fail(err_fd, "process limit", errno);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(err_fd, "no_new_privs", errno);
  if (int err = drop_capabilities()) child_fail(err_fd, "drop capabilities", err);
  if (auto r = apply_landlock(plan.landlock); !r) {
    std::string msg = r.error().message;
    [[maybe_unused]] auto n = ::write(err_fd, msg.data(), msg.size());
    ::_exit(126);
  }

  // Nothing the user's shell left open (`exec 7<file`) reaches the relay or the program; the
  // error pipe and the relay's fd are close-on-exec already and stay usable until the exec.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) child_fail(err_fd, "close inherited descriptors", errno);

  std::vector<char*> argv, envp;
  for (auto& a : plan.relay_argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : plan.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::syscall(SYS_execveat, plan.relay_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
  child_fail(err_fd, "exec tokfence-relay", errno);
}

// The workdir (and every writable path) may be written, but a repository's .git/hooks and
// .git/config decide what git runs, unconfined, the next time the user runs git there (hooks,
// core.hooksPath, core.fsmonitor, core.pager...). They come back read-only over themselves (with
// those of submodules and worktrees: sandbox/git_settings.hpp), and .git and every directory on the
// way to them are bound over themselves so they are mount points: the agent can neither rename
// .git away and put a .git of its own in its place, nor rename or replace the protected entries or
// a directory leading to them. A repository the agent creates is its own: run looks at those after
// the run (sandbox/git_settings.hpp).
Result<void> protect_git_metadata(const std::string& dir, std::vector<Op>& ops) {
  const std::string git = dir + "/.git";
  struct stat st{};
  if (::lstat(git.c_str(), &st) < 0) return {};
  if (S_ISLNK(st.st_mode))
    return fail("sandbox: " + git + " is a symbolic link: refusing to run, its hooks could not be protected");
  if (!S_ISDIR(st.st_mode)) return {};  // a .git file (worktree, submodule): see docs/SANDBOX.md
  ops.push_back(Op{Op::expose, git, git});
  file::Fd git_fd(::open(git.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!git_fd) return fail("sandbox: cannot open " + git + ": " + std::strerror(errno));
  auto entries = git_settings_entries(git_fd.get());
  if (!entries) return fail("sandbox: " + dir + "/.git: " + entries.error().message + ": refusing to run, it could not be protected");
  // The directories on the way first, read-write over themselves, so none can be renamed aside
  // and replaced (git_settings_parents).
  for (const auto& between : git_settings_parents(*entries))
    ops.push_back(Op{Op::expose, git + "/" + between, git + "/" + between});
  for (const auto& entry : *entries) {
    Op op{Op::expose, git + "/" + entry.path, git + "/" + entry.path};
    op.read_only = true;
    op.file = !entry.directory;
    ops.push_back(op);
  }
  return {};
}

// Every path socket bound in this network namespace, from /proc/net/unix (the path is whatever
// follows the seventh field; abstract and unnamed sockets have none or start with '@').
std::set<std::string> bound_socket_paths() {
  std::set<std::string> paths;
  std::ifstream in("/proc/net/unix");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::size_t at = 0;
    for (int field = 0; field < 7 && at != std::string::npos; ++field) {
      at = line.find_first_not_of(' ', at);
      at = at == std::string::npos ? at : line.find(' ', at);
    }
    if (at == std::string::npos || at + 1 >= line.size() || line[at + 1] != '/') continue;
    paths.insert(line.substr(at + 1));
  }
  return paths;
}

// Where each planted file goes, and which real directories must be covered for it: walking from
// the home towards the file, a directory that exists on the host is covered by a tmpfs (`synth`)
// unless it is hidden or below /tmp or /dev/shm (a tmpfs already, or gone: created in the parent's
// tmpfs); the first missing one and everything below it is created in that tmpfs. So a planted
// file never touches the host's disk, and nothing on the way is a directory the program could have
// written (the home is not writable in the sandbox; the walk stops at anything writable).
Result<void> plan_planted(const Policy& policy, const std::vector<std::string>& writable,
                          const std::vector<std::string>& readable, const std::vector<std::string>& hidden,
                          std::set<std::string>& synth, std::vector<Op>& plants) {
  if (policy.planted.empty()) return {};
  const std::string home = canonical_or_empty(policy.plant_home);
  if (home.empty() || home == "/" || !fs::is_directory(home))
    return fail("sandbox: cannot plant files: home is not an existing directory: " + policy.plant_home.string());
  for (const auto& w : writable)
    if (is_under(home, w))
      return fail("sandbox: cannot plant files in " + home + ": it is writable in the sandbox (" + w + ")");
  auto covered = [&](const std::string& p) {
    return std::any_of(hidden.begin(), hidden.end(), [&](const std::string& h) { return is_under(p, h); }) ||
           is_under(p, "/tmp") || is_under(p, "/dev/shm");
  };
  const bool home_covered = covered(home);
  for (const auto& f : policy.planted) {
    std::vector<std::string> parts;
    for (std::size_t at = 0; at <= f.path.size();) {
      std::size_t end = std::min(f.path.find('/', at), f.path.size());
      parts.push_back(f.path.substr(at, end - at));
      at = end + 1;
    }
    if (f.path.empty() || f.path.front() == '/' ||
        std::any_of(parts.begin(), parts.end(), [](const std::string& c) { return !file::is_single_component(c); }))
      return fail("sandbox: cannot plant a file at a path that is not plainly relative to the home");
    std::string dir = home, why;
    bool walking = !home_covered;
    for (std::size_t i = 0; i < parts.size() && why.empty(); ++i) {
      const std::string next = dir + "/" + parts[i];
      if (std::any_of(writable.begin(), writable.end(), [&](const std::string& w) { return is_under(next, w); })) {
        why = next + " is writable in the sandbox";
        break;
      }
      if (std::any_of(readable.begin(), readable.end(), [&](const std::string& r) { return is_under(next, r); })) {
        why = next + " is a read-only view of the host's";
        break;
      }
      if (walking && i + 1 < parts.size()) {
        struct stat st{};
        if (covered(next) || ::lstat(next.c_str(), &st) < 0) {
          walking = false;  // created in the tmpfs above it
        } else if (S_ISDIR(st.st_mode)) {
          synth.insert(next);
        } else {
          why = next + (S_ISLNK(st.st_mode) ? " is a symbolic link" : " is not a directory");
        }
      }
      dir = next;
    }
    if (!why.empty()) {
      std::fprintf(stderr, "tokfence: note: sandbox: decoy ~/%s not planted: %s\n", f.path.c_str(), why.c_str());
      continue;
    }
    Op op{Op::plant, dir, f.content};
    plants.push_back(op);
  }
  if (!plants.empty() && !home_covered) synth.insert(home);
  return {};
}

// The ops that cover each `synth` directory with a tmpfs and bring its real entries back: bind
// mounts of directories and files, symbolic links recreated with the same text. Left out: hidden
// entries, planted names, directories that are covered themselves, writable paths (they have
// their own expose), and sockets, FIFOs and devices.
Result<void> synth_ops(const std::set<std::string>& synth, const std::vector<Op>& plants,
                       const std::vector<std::string>& writable, const std::vector<std::string>& hidden,
                       std::vector<Op>& ops) {
  std::size_t entries = 0;
  for (const auto& dir : synth) {
    struct stat dst{};
    if (::lstat(dir.c_str(), &dst) < 0 || !S_ISDIR(dst.st_mode)) return fail("sandbox: cannot cover " + dir + ": not a directory");
    Op cover{Op::synth_dir, dir, {}};
    cover.mode = dst.st_mode & 07777;
    ops.push_back(cover);
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string p = it->path().string();
      if (synth.count(p) || std::find(hidden.begin(), hidden.end(), p) != hidden.end() ||
          std::find(writable.begin(), writable.end(), p) != writable.end() ||
          std::any_of(plants.begin(), plants.end(), [&](const Op& o) { return o.target == p; }))
        continue;
      if (++entries > kMaxSynthEntries)
        return fail("sandbox: more than " + std::to_string(kMaxSynthEntries) + " entries to keep visible in " + dir +
                    ": refusing to run");
      struct stat st{};
      if (::lstat(p.c_str(), &st) < 0) continue;
      if (S_ISLNK(st.st_mode)) {
        std::error_code lec;
        auto text = fs::read_symlink(p, lec);
        if (!lec) ops.push_back(Op{Op::symlink, p, text.string()});
      } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
        Op op{Op::expose, p, p};
        op.file = S_ISREG(st.st_mode);
        op.may_vanish = true;
        ops.push_back(op);
      }
    }
    if (ec) return fail("sandbox: cannot list " + dir + ": " + ec.message());
  }
  return {};
}

Result<Plan> make_plan(const Policy& policy, const TerminalSettings* terminal) {
  Plan plan;
  plan.uid = ::geteuid();
  plan.gid = ::getegid();
  if (terminal) plan.terminal = *terminal;
  plan.env = policy.env;
  if (policy.argv.empty() || policy.argv[0].empty() || policy.argv[0][0] != '/')
    return fail("sandbox: command must be an absolute path");
  if (policy.proxy_port <= 0 || policy.proxy_port > 65535) return fail("sandbox: bad proxy port");

  plan.workdir = canonical_or_empty(policy.workdir);
  plan.max_processes = policy.max_processes;
  if (plan.workdir.empty()) return fail("sandbox: workdir does not exist: " + policy.workdir.string());
  std::string socket_dir = canonical_or_empty(policy.proxy_socket.parent_path());
  if (socket_dir.empty()) return fail("sandbox: proxy socket directory missing: " + policy.proxy_socket.string());

  std::vector<std::string> writable{plan.workdir};
  for (const auto& w : policy.writable) {
    auto c = canonical_or_empty(w);
    if (c.empty()) return fail("sandbox: writable path does not exist: " + w.string());
    writable.push_back(c);
  }

  std::vector<std::string> allowed_sockets;
  for (const auto& a : policy.allowed_sockets) {
    auto c = canonical_or_empty(a);
    struct stat st{};
    if (c.empty() || ::stat(c.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode))
      return fail("sandbox: allowed socket is not an existing socket: " + a.string());
    allowed_sockets.push_back(c);
  }
  auto is_allowed_socket = [&](const std::string& p) {
    return std::find(allowed_sockets.begin(), allowed_sockets.end(), p) != allowed_sockets.end();
  };

  std::vector<std::string> hidden;
  // /dev is the sandbox's own (mount_private_dev): nothing below it needs hiding, and nothing there
  // but the private shm may be writable (a device node would come back by its expose).
  for (const auto& h : policy.hidden) {
    auto c = canonical_or_empty(h);
    if (!c.empty() && c != "/" && !is_allowed_socket(c) && !is_under(c, "/dev")) hidden.push_back(c);
  }
  for (const auto& w : writable)
    if (is_under(w, "/dev") && !is_under(w, "/dev/shm"))
      return fail("sandbox: writable path is below /dev, which the sandbox replaces with its own: " + w);
  // The proxy socket is re-exposed at a fixed path below /run, which is always hidden.
  hidden.push_back("/run");
  // Read-only re-exposures: only below a hide (anything else is visible already) and never a hidden
  // path itself (its hide would be undone); hides below one are applied after it (path order).
  std::vector<std::string> readable;
  for (const auto& r : policy.readable) {
    auto c = canonical_or_empty(r);
    if (c.empty()) return fail("sandbox: readable path does not exist: " + r.string());
    if (std::find(hidden.begin(), hidden.end(), c) != hidden.end())
      return fail("sandbox: readable path is hidden in the sandbox: " + c);
    if (std::any_of(hidden.begin(), hidden.end(), [&](const std::string& h) { return is_under(c, h); }))
      readable.push_back(c);
  }
  for (const auto& w : writable)
    for (const auto& h : hidden)
      if (is_under(w, h) && (h == w || w == "/run"))
        return fail("sandbox: writable path is hidden in the sandbox: " + w);

  std::set<std::string> synth;
  std::vector<Op> plants;
  if (auto r = plan_planted(policy, writable, readable, hidden, synth, plants); !r) return std::unexpected(r.error());

  auto under_a_hide = [&](const std::string& p) {
    return std::any_of(hidden.begin(), hidden.end(), [&](const std::string& h) { return is_under(p, h); }) ||
           std::any_of(synth.begin(), synth.end(), [&](const std::string& d) { return is_under(p, d); }) ||
           is_under(p, "/tmp") || is_under(p, "/dev");
  };
  for (const auto& h : hidden) {
    std::error_code ec;
    bool dir = fs::is_directory(fs::symlink_status(h, ec));
    plan.ops.push_back(Op{dir ? Op::hide_dir : Op::hide_file, h, {}});
  }
  plan.ops.push_back(Op{Op::private_tmp, "/tmp", {}});
  plan.ops.push_back(Op{Op::private_tmp, "/dev/shm", {}});
  for (const auto& w : writable)
    if (under_a_hide(w)) plan.ops.push_back(Op{Op::expose, w, w});
  for (const auto& r : readable) {
    Op op{Op::expose, r, r};
    op.read_only = true;
    op.file = !fs::is_directory(r);
    plan.ops.push_back(op);
  }
  for (const auto& w : std::set<std::string>(writable.begin(), writable.end()))
    if (auto r = protect_git_metadata(w, plan.ops); !r) return std::unexpected(r.error());
  {
    // Read-only: the relay's connect() to the socket works through it, and the local CA files
    // beside the socket (the fence's trust, run.cpp) cannot be replaced even were Landlock absent.
    Op op{Op::expose, kInnerProxyDir.string(), socket_dir};
    op.read_only = true;
    plan.ops.push_back(op);
  }
  if (!allowed_sockets.empty()) {
    // The program may create Unix sockets: cover every other path socket that exists now.
    // Sockets below hidden directories or the private /tmp are skipped in the child (gone by
    // then); sockets bound after this point stay reachable (docs/SANDBOX.md).
    std::size_t covered = 0;
    for (const auto& path : bound_socket_paths()) {
      struct stat st{};
      if (::lstat(path.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode)) continue;
      if (is_allowed_socket(canonical_or_empty(path))) continue;
      if (++covered > kMaxCoveredSockets)
        return fail("sandbox: --allow-socket: more than " + std::to_string(kMaxCoveredSockets) +
                    " sockets on this host to cover: refusing to run");
      plan.ops.push_back(Op{Op::hide_file, path, {}});
    }
    for (const auto& a : allowed_sockets) {
      if (!under_a_hide(a)) continue;
      Op op{Op::expose, a, a};
      op.file = true;
      plan.ops.push_back(op);
    }
  }
  if (auto r = synth_ops(synth, plants, writable, hidden, plan.ops); !r) return std::unexpected(r.error());
  plan.ops.insert(plan.ops.end(), plants.begin(), plants.end());
  std::stable_sort(plan.ops.begin(), plan.ops.end(), [](const Op& a, const Op& b) {
    if (a.target != b.target) return a.target < b.target;
    return a.kind != Op::expose && b.kind == Op::expose;
  });

  // The relay binary and the command must stay reachable after the mounts change: the relay is
  // exec'd from an fd; the command must not live below a hidden path.
  plan.relay_fd = ::open(policy.relay.c_str(), O_PATH | O_CLOEXEC);
  if (plan.relay_fd < 0) return fail("sandbox: tokfence-relay: " + policy.relay.string() + ": " + std::strerror(errno));
  std::string command = canonical_or_empty(policy.argv[0]);
  if (command.empty()) return fail("sandbox: command not found: " + policy.argv[0]);
  for (const auto& h : hidden)
    if (is_under(command, h) && std::none_of(writable.begin(), writable.end(), [&](auto& w) { return is_under(command, w); }) &&
        std::none_of(readable.begin(), readable.end(), [&](auto& r) { return is_under(command, r) && is_under(r, h); }))
      return fail("sandbox: command lives below a hidden path: " + command + " (in " + h + ")");

  plan.relay_argv = {"tokfence-relay", "--forward",
                     "tcp:127.0.0.1:" + std::to_string(policy.proxy_port) + "=unix:" +
                         (kInnerProxyDir / policy.proxy_socket.filename()).string(),
                     "--agent-seccomp"};
  if (!allowed_sockets.empty()) plan.relay_argv.push_back("--agent-allow-unix-sockets");
  plan.relay_argv.push_back("--");
  plan.relay_argv.insert(plan.relay_argv.end(), policy.argv.begin(), policy.argv.end());

  plan.landlock.readable = {"/"};
  plan.landlock.writable = {writable.begin(), writable.end()};
  if (policy.workdir_identity) plan.landlock.checked = {plan.workdir, *policy.workdir_identity};
  plan.landlock.writable.push_back("/tmp");
  plan.landlock.writable.push_back("/dev/shm");
  // Opened after the mounts: the nodes are the sandbox's /dev's binds, /dev/pts and /dev/ptmx (a
  // link into it) the private devpts instance, not the host's.
  plan.landlock.devices = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                           "/dev/tty",  "/dev/ptmx", "/dev/pts"};
  return plan;
}

}  // namespace

std::vector<std::string> missing_linux_features() {
  std::vector<std::string> missing;
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = ::unshare(kNamespaces) == 0 ? 0 : 1;
    ::_exit(rc);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    missing.push_back("user namespaces (unshare of new user, network, mount, PID, IPC, UTS and cgroup namespaces "
                      "failed)");
  if (landlock_abi() < 1) missing.push_back("landlock (not enabled in this kernel: add it to the lsm= boot option)");
  return missing;
}

namespace {

// The master end the child sends (make_terminal); -1 if it died or exec'd without sending one.
int receive_master(int sock) {
  FdMessage in;
  msghdr& msg = in.msg;
  ssize_t n;
  while ((n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  int fd = -1;
  if (n == 1)
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
        std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

}  // namespace

Result<Spawned> spawn_sandboxed(const Policy& policy, const TerminalSettings* terminal) {
  auto plan = make_plan(policy, terminal);
  if (!plan) return std::unexpected(plan.error());
  int term_fds[2] = {-1, -1};
  if (terminal && ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, term_fds) < 0) {
    int err = errno;
    ::close(plan->relay_fd);
    return fail(std::string("sandbox: terminal: socketpair: ") + std::strerror(err));
  }
  plan->terminal_sock = term_fds[1];
  auto close_term_fds = [&] {
    for (int& fd : term_fds)
      if (fd >= 0) ::close(std::exchange(fd, -1));
  };
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
    int err = errno;
    close_term_fds();
    ::close(plan->relay_fd);
    return fail(std::string("sandbox: pipe: ") + std::strerror(err));
  }
  // As root, the child starts with no supplementary groups: inside the user namespace they can
  // no longer be dropped (setgroups is denied there), and a group of root's (docker, disk, adm...)
  // would keep opening group-owned files. The raw syscall changes this thread only (glibc's
  // setgroups would change every thread); clone copies this thread's credentials.
  std::vector<gid_t> groups(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  groups.resize(static_cast<std::size_t>(std::max(::getgroups(static_cast<int>(groups.size()), groups.data()), 0)));
  const gid_t egid = ::getegid();
  const bool drop_groups = ::geteuid() == 0 && std::any_of(groups.begin(), groups.end(), [&](gid_t g) { return g != egid; });
  if (drop_groups && ::syscall(SYS_setgroups, 0, nullptr) < 0) {
    int err = errno;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    close_term_fds();
    ::close(plan->relay_fd);
    return fail(std::string("sandbox: drop supplementary groups: ") + std::strerror(err));
  }
  // No handler of ours may run in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old);
  long pid = ::syscall(SYS_clone, SIGCHLD | kNamespaces, nullptr, nullptr, nullptr, nullptr);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    if (term_fds[0] >= 0) ::close(term_fds[0]);
    child_main(*plan, pipe_fds[1]);
  }
  int clone_errno = errno;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (drop_groups && ::syscall(SYS_setgroups, groups.size(), groups.data()) < 0) {
    // Only this process lost groups it had; the sandbox is fine. Say so rather than fail the run.
    std::fprintf(stderr, "tokfence: warning: sandbox: could not restore supplementary groups: %s\n",
                 std::strerror(errno));
  }
  ::close(pipe_fds[1]);
  ::close(plan->relay_fd);
  if (term_fds[1] >= 0) ::close(std::exchange(term_fds[1], -1));
  if (pid < 0) {
    ::close(pipe_fds[0]);
    close_term_fds();
    return fail(std::string("sandbox: clone with new namespaces: ") + std::strerror(clone_errno));
  }
  // Before the error pipe: the child sends the master end before it execs (or dies, which ends
  // this read too).
  int master = term_fds[0] >= 0 ? receive_master(term_fds[0]) : -1;
  close_term_fds();
  std::string message;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n > 0) {
      message.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(pipe_fds[0]);
  if (message.empty() && terminal && master < 0) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    message = "terminal: no pseudo-terminal came back from the sandbox";
  }
  if (!message.empty()) {
    if (master >= 0) ::close(master);
    int status;
    while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    return fail("sandbox: " + message);
  }
  return Spawned{static_cast<pid_t>(pid), master};
}

}  // namespace tokfence::sandbox
