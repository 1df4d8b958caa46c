#include <catch2/catch.hpp>

#include <linux/netlink.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include "sandbox/seccomp.hpp"

using namespace tokfence::sandbox;

namespace {
// Runs `body` in a forked child under the agent filter; the child's exit code is what `body`
// returns (0 = every expectation held, else the number of the first that did not).
int under_filter(const AgentFilterOptions& options, const std::function<int()>& body) {
  auto program = agent_seccomp_program(options);
  pid_t pid = ::fork();
  if (pid == 0) {
    if (install_seccomp_program(program) != 0) ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200 + WTERMSIG(status);
}

// 0 when socket(domain, type, protocol) fails with `err` (or succeeds when err == 0).
bool socket_gives(int domain, int type, int protocol, int err) {
  int fd = ::socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd >= 0) ::close(fd);
  return err == 0 ? fd >= 0 : fd < 0 && errno == err;
}
}  // namespace

TEST_CASE("sandbox::agent_seccomp_program refuses Unix sockets and keeps network and socketpair") {
  CHECK(under_filter({}, [] {
          if (!socket_gives(AF_UNIX, SOCK_STREAM, 0, EACCES)) return 1;
          if (!socket_gives(AF_UNIX, SOCK_DGRAM, 0, EACCES)) return 2;
          if (!socket_gives(AF_INET, SOCK_STREAM, 0, 0)) return 3;
          if (!socket_gives(AF_INET6, SOCK_DGRAM, 0, 0) && errno != EAFNOSUPPORT) return 4;
          if (!socket_gives(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, 0)) return 5;
          if (!socket_gives(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT, EACCES)) return 6;
          if (!socket_gives(AF_PACKET, SOCK_DGRAM, 0, EACCES)) return 7;
          if (!socket_gives(AF_VSOCK, SOCK_STREAM, 0, EACCES)) return 8;
          // The domain is an int: garbage in the upper half of the register must not sneak AF_UNIX by.
          long fd = ::syscall(SYS_socket, 0x100000000L | AF_UNIX, SOCK_STREAM, 0);
          if (fd >= 0 || errno != EACCES) return 9;
          int pair[2];
          if (::socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0) return 10;
          return 0;
        }) == 0);
}

TEST_CASE("sandbox::agent_seccomp_program allows AF_UNIX sockets in --allow-socket mode") {
  CHECK(under_filter({.allow_unix_sockets = true}, [] {
          if (!socket_gives(AF_UNIX, SOCK_STREAM, 0, 0)) return 1;
          if (!socket_gives(AF_PACKET, SOCK_DGRAM, 0, EACCES)) return 2;
          return 0;
        }) == 0);
}

TEST_CASE("sandbox::agent_seccomp_program refuses io_uring, ptrace, process_vm_readv, bpf, keyctl, x32") {
  pid_t parent = ::getpid();
  CHECK(under_filter({}, [parent] {
          unsigned char params[120] = {};
          if (::syscall(425, 4, params) >= 0 || errno != ENOSYS) return 1;
          if (::ptrace(PTRACE_ATTACH, parent, nullptr, nullptr) >= 0 || errno != EPERM) return 2;
          char buf[8];
          iovec local{buf, sizeof buf}, remote{buf, sizeof buf};
          if (::process_vm_readv(parent, &local, 1, &remote, 1, 0) >= 0 || errno != EPERM) return 3;
          if (::syscall(SYS_bpf, 0, nullptr, 0) >= 0 || errno != EPERM) return 4;
          if (::syscall(SYS_keyctl, 0, 0, 0, 0, 0) >= 0 || errno != EPERM) return 5;
          if (::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0) >= 0 || errno != EPERM) return 6;
#if defined(__x86_64__)
          // x32 getpid: a second numbering that the checks above would not see.
          if (::syscall(0x40000000L | SYS_getpid) >= 0 || errno != ENOSYS) return 7;
#endif
          if (::getpid() <= 0) return 8;  // everything else still works
          return 0;
        }) == 0);
}
