#pragma once
// The Linux sandbox: the child runs in new user, network, mount and PID namespaces.
//  - network: only loopback exists; tokfence-relay (the namespace's PID 1) listens on
//    127.0.0.1:<proxy port> and carries each connection to the daemon's proxy-only Unix socket, so
//    the proxy is reachable at the same address as outside and nothing else is (no DNS, no other
//    host, no other port on the host);
//  - mount: Policy::hidden paths (tokfence home, /run, agent socket dirs...) become empty
//    read-only mounts, /tmp and /dev/shm private tmpfs, /dev a tmpfs of its own with only null,
//    zero, full, random, urandom and tty of the host's devices (no disk, console, kmsg...),
//    /dev/pts a devpts instance of its own (no pty of the host is reachable by path), /proc a
//    fresh procfs for the PID namespace; Policy::writable below /dev (but /dev/shm) is refused;
//  - Landlock: writes only below the workdir, Policy::writable, /tmp, /dev/shm and a few devices;
//    abstract Unix sockets and signals scoped to the sandbox (ABI >= 6);
//  - no_new_privs, an empty capability bounding set and no capabilities: running as root maps root
//    to root in the user namespace but leaves it unable to undo any of the above.
// When the sandbox's PID 1 exits, the kernel kills everything else in it; PID 1 also dies with
// the process that spawned it (PR_SET_PDEATHSIG).
#include <sys/types.h>

#include <string>
#include <vector>

#include "core/error.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/supervisor.hpp"

namespace tokfence::sandbox {

// What this kernel lacks for the Linux sandbox ("user namespaces", "landlock"); empty if nothing.
// Probes for real (a throwaway child tries the unshare), so a sysctl or seccomp ban is seen too.
std::vector<std::string> missing_linux_features();

// Starts `policy.argv` in a new sandbox and returns the pid (in the caller's PID namespace) of the
// sandbox's init. `terminal` non-null: a pseudo-terminal from the sandbox's own devpts instance
// (so `tty` inside names it, /dev/pts/0) becomes the child's stdin/stdout/stderr and controlling
// terminal, and its master end is returned; null: stdio is inherited. Signals are left to the
// caller (the init forwards what it receives). Errors from setting up the sandbox (before the
// program starts) are returned here, with the step that failed; nothing is left running then.
Result<Spawned> spawn_sandboxed(const Policy& policy, const TerminalSettings* terminal);

}  // namespace tokfence::sandbox
