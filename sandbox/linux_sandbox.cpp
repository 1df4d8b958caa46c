// How the Linux sandbox is put together (see linux_sandbox.hpp for the guarantees).
//
// Everything that allocates or can fail on bad input is computed first, in the parent, into a
// Plan. Then one raw clone(2) creates the child directly in new user, network, mount and PID
// namespaces, so the child is the namespace's PID 1 and there is no intermediate process to
// supervise. The child, still holding full capabilities inside its new user namespace:
//   1. maps its own uid/gid (setgroups denied first; root maps 0 -> 0);
//   2. brings up `lo`;
//   3. makes every mount private, takes detached copies (open_tree) of what must stay visible
//      below a hidden path (the proxy socket's directory, the harness home, the workdir...);
//   4. walks hides and re-exposures in path order: a hidden directory becomes a small tmpfs (made
//      read-only at the end), a hidden file or socket is covered with a read-only /dev/null;
//   5. mounts a fresh /proc for the PID namespace;
//   6. no_new_privs, drops every capability (bounding set included, securebits locked), applies
//      Landlock, and execs tokfence-relay from an fd opened before the mounts changed.
// Mounts created here cannot be undone from inside: the child has no capabilities, and any user
// namespace it creates itself sees them locked.
// Failures before the exec are written to a close-on-exec pipe, which the parent reads: EOF means
// the relay is running.
#include "sandbox/linux_sandbox.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "sandbox/landlock.hpp"

namespace tokfence::sandbox {
namespace fs = std::filesystem;
namespace {

struct Op {
  enum Kind { hide_dir, hide_file, private_tmp, expose } kind;
  std::string target;  // path inside
  std::string source;  // expose: host path (cloned before any hiding)
  int tree_fd = -1;    // expose: the detached copy
  int mounted_fd = -1; // hides: O_PATH fd of the new mount, made read-only at the end
};

struct Plan {
  std::vector<std::string> relay_argv;
  std::vector<std::string> env;
  std::string workdir;
  std::vector<Op> ops;  // sorted by target; parents first, a hide before an expose of the same path
  LandlockRules landlock;
  int relay_fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
  int tty_fd = -1;
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

void mkdir_p(const std::string& path) {
  for (std::size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
  }
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

int make_read_only(int mount_fd) {
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) return errno;
  return 0;
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

[[noreturn]] void child_main(Plan& plan, int err_fd) {
  // Dies with the tokfence process that supervises it; everything in the namespace dies with it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setsid() < 0) child_fail(err_fd, "setsid", errno);
  if (plan.tty_fd >= 0) {
    if (::ioctl(plan.tty_fd, TIOCSCTTY, 0) < 0) child_fail(err_fd, "terminal: set controlling terminal", errno);
    for (int fd = 0; fd < 3; ++fd)
      if (::dup2(plan.tty_fd, fd) < 0) child_fail(err_fd, "terminal: dup2", errno);
    if (plan.tty_fd > 2) ::close(plan.tty_fd);
  }

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
                                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    if (op.tree_fd < 0) child_fail(err_fd, "mount namespace: clone " + op.source, errno);
  }
  for (auto& op : plan.ops) {
    const char* target = op.target.c_str();
    struct stat st{};
    switch (op.kind) {
      case Op::hide_dir:
      case Op::private_tmp: {
        if (::lstat(target, &st) < 0 || !S_ISDIR(st.st_mode)) break;  // gone below an earlier hide
        const char* options = op.kind == Op::private_tmp ? "mode=1777" : "mode=0755,size=1m";
        if (::mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options) < 0)
          child_fail(err_fd, "mount namespace: tmpfs on " + op.target, errno);
        if (op.kind == Op::hide_dir) op.mounted_fd = ::open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
        break;
      }
      case Op::hide_file: {
        if (::lstat(target, &st) < 0 || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) break;
        if (::mount("/dev/null", target, nullptr, MS_BIND, nullptr) < 0)
          child_fail(err_fd, "mount namespace: cover " + op.target, errno);
        op.mounted_fd = ::open(target, O_PATH | O_CLOEXEC);
        break;
      }
      case Op::expose: {
        mkdir_p(op.target);
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
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    child_fail(err_fd, "mount namespace: mount /proc", errno);

  if (::chdir(plan.workdir.c_str()) < 0) child_fail(err_fd, "workdir: " + plan.workdir, errno);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(err_fd, "no_new_privs", errno);
  if (int err = drop_capabilities()) child_fail(err_fd, "drop capabilities", err);
  if (auto r = apply_landlock(plan.landlock); !r) {
    std::string msg = r.error().message;
    [[maybe_unused]] auto n = ::write(err_fd, msg.data(), msg.size());
    ::_exit(126);
  }

  std::vector<char*> argv, envp;
  for (auto& a : plan.relay_argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : plan.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::syscall(SYS_execveat, plan.relay_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
  child_fail(err_fd, "exec tokfence-relay", errno);
}

Result<Plan> make_plan(const Policy& policy, int tty_fd) {
  Plan plan;
  plan.uid = ::geteuid();
  plan.gid = ::getegid();
  plan.tty_fd = tty_fd;
  plan.env = policy.env;
  if (policy.argv.empty() || policy.argv[0].empty() || policy.argv[0][0] != '/')
    return fail("sandbox: command must be an absolute path");
  if (policy.proxy_port <= 0 || policy.proxy_port > 65535) return fail("sandbox: bad proxy port");

  plan.workdir = canonical_or_empty(policy.workdir);
  if (plan.workdir.empty()) return fail("sandbox: workdir does not exist: " + policy.workdir.string());
  std::string socket_dir = canonical_or_empty(policy.proxy_socket.parent_path());
  if (socket_dir.empty()) return fail("sandbox: proxy socket directory missing: " + policy.proxy_socket.string());

  std::vector<std::string> writable{plan.workdir};
  for (const auto& w : policy.writable) {
    auto c = canonical_or_empty(w);
    if (c.empty()) return fail("sandbox: writable path does not exist: " + w.string());
    writable.push_back(c);
  }

  std::vector<std::string> hidden;
  for (const auto& h : policy.hidden) {
    auto c = canonical_or_empty(h);
    if (!c.empty() && c != "/") hidden.push_back(c);
  }
  // The proxy socket is re-exposed at a fixed path below /run, which is always hidden.
  hidden.push_back("/run");
  for (const auto& w : writable)
    for (const auto& h : hidden)
      if (is_under(w, h) && (h == w || w == "/run"))
        return fail("sandbox: writable path is hidden in the sandbox: " + w);

  auto under_a_hide = [&](const std::string& p) {
    return std::any_of(hidden.begin(), hidden.end(), [&](const std::string& h) { return is_under(p, h); }) ||
           is_under(p, "/tmp") || is_under(p, "/dev/shm");
  };
  for (const auto& h : hidden) {
    std::error_code ec;
    bool dir = fs::is_directory(fs::symlink_status(h, ec));
    plan.ops.push_back(Op{dir ? Op::hide_dir : Op::hide_file, h, {}});
  }
  plan.ops.push_back(Op{Op::private_tmp, "/tmp", {}});
  if (fs::is_directory("/dev/shm")) plan.ops.push_back(Op{Op::private_tmp, "/dev/shm", {}});
  for (const auto& w : writable)
    if (under_a_hide(w)) plan.ops.push_back(Op{Op::expose, w, w});
  plan.ops.push_back(Op{Op::expose, kInnerProxyDir.string(), socket_dir});
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
    if (is_under(command, h) && std::none_of(writable.begin(), writable.end(), [&](auto& w) { return is_under(command, w); }))
      return fail("sandbox: command lives below a hidden path: " + command + " (in " + h + ")");

  plan.relay_argv = {"tokfence-relay", "--forward",
                     "tcp:127.0.0.1:" + std::to_string(policy.proxy_port) + "=unix:" +
                         (kInnerProxyDir / policy.proxy_socket.filename()).string(),
                     "--"};
  plan.relay_argv.insert(plan.relay_argv.end(), policy.argv.begin(), policy.argv.end());

  plan.landlock.readable = {"/"};
  plan.landlock.writable = {writable.begin(), writable.end()};
  plan.landlock.writable.push_back("/tmp");
  plan.landlock.writable.push_back("/dev/shm");
  plan.landlock.devices = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
                           "/dev/tty",  "/dev/ptmx", "/dev/pts"};
  return plan;
}

}  // namespace

std::vector<std::string> missing_linux_features() {
  std::vector<std::string> missing;
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = ::unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) == 0 ? 0 : 1;
    ::_exit(rc);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    missing.push_back("user namespaces (unshare CLONE_NEWUSER|CLONE_NEWNET|CLONE_NEWNS failed)");
  if (landlock_abi() < 1) missing.push_back("landlock (not enabled in this kernel: add it to the lsm= boot option)");
  return missing;
}

Result<pid_t> spawn_sandboxed(const Policy& policy, int tty_fd) {
  auto plan = make_plan(policy, tty_fd);
  if (!plan) return std::unexpected(plan.error());
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
    ::close(plan->relay_fd);
    return fail(std::string("sandbox: pipe: ") + std::strerror(errno));
  }
  // No handler of ours may run in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &old);
  long pid = ::syscall(SYS_clone, SIGCHLD | CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID, nullptr,
                       nullptr, nullptr, nullptr);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    child_main(*plan, pipe_fds[1]);
  }
  int clone_errno = errno;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  ::close(pipe_fds[1]);
  ::close(plan->relay_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    return fail(std::string("sandbox: clone with new namespaces: ") + std::strerror(clone_errno));
  }
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
  if (!message.empty()) {
    int status;
    while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
    }
    return fail("sandbox: " + message);
  }
  return static_cast<pid_t>(pid);
}

}  // namespace tokfence::sandbox
