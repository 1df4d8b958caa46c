#pragma once
// The seccomp-BPF filter tokfence-relay puts on the agent it starts inside the Linux sandbox.
//
// Why: Landlock does not mediate connect() on path-based Unix sockets, and the mount view can only
// hide sockets someone thought of. Refusing to *create* AF_UNIX sockets closes every path socket on
// the host at once (those created later included). The relay itself is not filtered: it must
// connect to the proxy socket.
//
// What the filter does (x86_64; aarch64 when built there):
//  - any other architecture (i386 via int 0x80, ...) kills the process; x32 syscall numbers
//    return ENOSYS (a second numbering the checks below would not see);
//  - socket(): an allow-list of domains: AF_INET, AF_INET6 (the network namespace has only `lo`,
//    the relay is the way out) and AF_NETLINK with NETLINK_ROUTE (getifaddrs in Node and Rust);
//    AF_UNIX only with `allow_unix_sockets`; everything else (packet, vsock, bluetooth...) EACCES;
//  - socketpair(): AF_UNIX only (an unnamed connected pair reaches nothing; Node's child
//    processes need it), else EACCES;
//  - io_uring_setup/enter/register: ENOSYS (io_uring creates sockets without the socket syscall);
//  - EPERM for what reaches into other processes or the kernel and no agent needs: ptrace,
//    process_vm_readv/writev, pidfd_getfd, kexec_load/kexec_file_load, bpf, perf_event_open,
//    userfaultfd, keyctl/add_key/request_key, open_by_handle_at.
// Namespace and mount syscalls stay allowed on purpose: codex runs its commands under its own
// bubblewrap sandbox (a nested user namespace), and mounts made there cannot undo ours (the kernel
// locks inherited mounts in a less privileged mount namespace).
//
// The program is built in the parent (it allocates) and installed in the forked child just before
// exec (no allocation there).
#include <linux/filter.h>

#include <vector>

namespace tokfence::sandbox {

struct AgentFilterOptions {
  // --allow-socket mode: AF_UNIX sockets may be created; the sandbox hides every other path socket
  // it finds by mounts instead (weaker: sockets created after the start stay reachable).
  bool allow_unix_sockets = false;
};

std::vector<sock_filter> agent_seccomp_program(const AgentFilterOptions& options);

// Installs `program` on the calling thread (and what it execs). Sets no_new_privs first (needed
// without CAP_SYS_ADMIN; it is already set inside the sandbox). Returns 0 or an errno value.
// Async-signal-safe: fine between fork and exec.
int install_seccomp_program(const std::vector<sock_filter>& program);

}  // namespace tokfence::sandbox
