// The agent's seccomp filter (see seccomp.hpp for what it allows and why). Hand-written BPF: the
// program is a straight list of checks on the syscall number, each either returning at once or
// falling through; only socket() and socketpair() look at arguments. No libseccomp: the filter is
// small, and tokfence-relay is linked statically with nothing but libc and Asio.
#include "sandbox/seccomp.hpp"

#include <linux/audit.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace tokfence::sandbox {
namespace {

#if defined(__x86_64__)
constexpr std::uint32_t kArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kArch = AUDIT_ARCH_AARCH64;
#else
#error "seccomp filter: only x86_64 and aarch64 are supported"
#endif

// x32 syscalls are x86_64 syscalls with this bit set in the number.
constexpr std::uint32_t kX32SyscallBit = 0x40000000U;

// io_uring (5.1) may be newer than the build machine's headers; the numbers are the same on
// every architecture.
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#define SYS_io_uring_enter 426
#define SYS_io_uring_register 427
#endif

constexpr std::uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr std::uint32_t kKillProcess = SECCOMP_RET_KILL_PROCESS;
constexpr std::uint32_t refuse(int err) { return SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(err) & SECCOMP_RET_DATA); }

constexpr std::uint32_t kNrOffset = offsetof(seccomp_data, nr);
constexpr std::uint32_t kArchOffset = offsetof(seccomp_data, arch);
// The low 32 bits of argument `i`: domain, type and protocol are ints, the kernel ignores the rest.
constexpr std::uint32_t arg_low(int i) {
  return static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * i +
                                    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 0 : 4));
}

class Program {
 public:
  void load(std::uint32_t offset) { code_.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void ret(std::uint32_t action) { code_.push_back(BPF_STMT(BPF_RET | BPF_K, action)); }
  // if (A == k) return action;
  void ret_if_eq(std::uint32_t k, std::uint32_t action) {
    jump_unless_eq(k, 1);
    ret(action);
  }
  // if (A == k) skip the next `count` instructions.
  void skip_if_eq(std::uint32_t k, std::size_t count) {
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, static_cast<std::uint8_t>(count), 0));
  }
  // if (A < k) skip the next `count` instructions.
  void skip_if_less(std::uint32_t k, std::size_t count) {
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, k, 0, static_cast<std::uint8_t>(count)));
  }
  // if (A != k) skip the next `count` instructions.
  void jump_unless_eq(std::uint32_t k, std::size_t count) {
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, k, 0, static_cast<std::uint8_t>(count)));
  }
  // if (A == syscall) { body } — the body must end in a return (A is reloaded inside it).
  void on_syscall(std::uint32_t nr, const Program& body) {
    jump_unless_eq(nr, body.code_.size());
    code_.insert(code_.end(), body.code_.begin(), body.code_.end());
  }
  std::vector<sock_filter> take() { return std::move(code_); }

 private:
  std::vector<sock_filter> code_;
};

// Reach into other processes (the relay, PID 1, is not filtered: ptrace on it would undo the
// filter) or into the kernel; no agent needs any of them.
constexpr long kRefusedWithEperm[] = {
    SYS_ptrace,     SYS_process_vm_readv, SYS_process_vm_writev, SYS_pidfd_getfd, SYS_kexec_load,
#ifdef SYS_kexec_file_load
    SYS_kexec_file_load,
#endif
    SYS_bpf,        SYS_perf_event_open,  SYS_userfaultfd,       SYS_keyctl,      SYS_add_key,
    SYS_request_key, SYS_open_by_handle_at,
};

Program socket_rules(bool allow_unix) {
  Program p;
  p.load(arg_low(0));  // domain
  p.ret_if_eq(AF_INET, kAllow);
  p.ret_if_eq(AF_INET6, kAllow);
  if (allow_unix) p.ret_if_eq(AF_UNIX, kAllow);
  // AF_NETLINK: route only (what getifaddrs uses). Skips load + ret_if_eq when not netlink.
  p.jump_unless_eq(AF_NETLINK, 3);
  p.load(arg_low(2));  // protocol
  p.ret_if_eq(NETLINK_ROUTE, kAllow);
  p.ret(refuse(EACCES));
  return p;
}

Program socketpair_rules() {
  Program p;
  p.load(arg_low(0));
  p.ret_if_eq(AF_UNIX, kAllow);
  p.ret(refuse(EACCES));
  return p;
}

}  // namespace

std::vector<sock_filter> agent_seccomp_program(const AgentFilterOptions& options) {
  Program p;
  // A syscall number means something only for the architecture it was made for.
  p.load(kArchOffset);
  p.skip_if_eq(kArch, 1);
  p.ret(kKillProcess);
  p.load(kNrOffset);
#if defined(__x86_64__)
  p.skip_if_less(kX32SyscallBit, 1);
  p.ret(refuse(ENOSYS));
#endif
  p.on_syscall(SYS_socket, socket_rules(options.allow_unix_sockets));
  p.on_syscall(SYS_socketpair, socketpair_rules());
  for (std::uint32_t nr : {SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register})
    p.ret_if_eq(nr, refuse(ENOSYS));
  for (long nr : kRefusedWithEperm) p.ret_if_eq(static_cast<std::uint32_t>(nr), refuse(EPERM));
  p.ret(kAllow);
  return p.take();
}

int install_seccomp_program(const std::vector<sock_filter>& program) {
  if (program.empty() || program.size() > BPF_MAXINSNS) return EINVAL;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return errno;
  sock_fprog fprog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0) return errno;
  return 0;
}

}  // namespace tokfence::sandbox
