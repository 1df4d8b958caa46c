#pragma once
// Runs a child to completion the way a terminal user expects:
//  - when our stdin is a terminal, the child gets a pseudo-terminal of its own (same termios and
//    window size); our terminal goes to raw mode for the run and is restored afterwards, and
//    window-size changes are passed on;
//  - SIGINT, SIGTERM, SIGHUP and SIGQUIT received by us are forwarded to the child;
//  - the result is the child's exit code, or 128+signal when it was killed.
// The pseudo-terminal is made by the spawner, not here: the sandbox's comes from its own devpts
// instance (linux_sandbox.hpp), so no pty of the host is reachable by path from inside. The
// spawner hands back the master end; the child makes the slave its controlling terminal.
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace tokfence::sandbox {

// The pseudo-terminal a child asks for: our terminal's settings and window size, when known.
struct TerminalSettings {
  termios attrs{};
  bool has_attrs = false;
  winsize size{};
  bool has_size = false;
};

// A started child. `master`: its pseudo-terminal's master end (close-on-exec, owned by the
// caller), or -1 when it inherited stdio.
struct Spawned {
  pid_t pid = -1;
  int master = -1;
};

// Starts the child. `terminal` non-null: the child gets a new pseudo-terminal with those settings
// as stdin/stdout/stderr and controlling terminal, and its master end comes back; null: the child
// inherits stdio.
using Spawner = std::function<Result<Spawned>(const TerminalSettings* terminal)>;

// A new pseudo-terminal of the host's (posix_openpt) with `settings` applied: {master, slave},
// both close-on-exec and O_NOCTTY. For the unsandboxed spawner.
Result<std::pair<int, int>> open_pseudo_terminal(const TerminalSettings& settings);

enum class Terminal { automatic, never };

// Returns the exit status, or an error when the child could not be started.
// After the child is gone, its process group is sent SIGKILL, so helpers it left behind in it die too.
Result<int> supervise(const Spawner& spawn, Terminal terminal = Terminal::automatic);

// Spawner for the unsandboxed case: fork, new session, exec `argv` (absolute path) with `envp` in
// `workdir`; dies with us (PR_SET_PDEATHSIG); inherits no descriptor above stderr.
Spawner plain_spawner(std::vector<std::string> argv, std::vector<std::string> envp, std::string workdir);

}  // namespace tokfence::sandbox
