#pragma once
// Runs a child to completion the way a terminal user expects:
//  - when our stdin is a terminal, the child gets a pseudo-terminal of its own (same termios and
//    window size); our terminal goes to raw mode for the run and is restored afterwards, and
//    window-size changes are passed on;
//  - SIGINT, SIGTERM, SIGHUP and SIGQUIT received by us are forwarded to the child;
//  - the result is the child's exit code, or 128+signal when it was killed.
// The child must set itself up as a session leader (it receives the terminal's slave fd and
// makes it its controlling terminal); both spawners in this folder do.
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace tokfence::sandbox {

// Starts the child. `tty_fd` is the pseudo-terminal's slave end, or -1 to inherit stdio.
using Spawner = std::function<Result<pid_t>(int tty_fd)>;

enum class Terminal { automatic, never };

// Returns the exit status, or an error when the child could not be started.
// After the child is gone, its process group is sent SIGKILL, so helpers it left behind in it die too.
Result<int> supervise(const Spawner& spawn, Terminal terminal = Terminal::automatic);

// Spawner for the unsandboxed case: fork, new session, exec `argv` (absolute path) with `envp` in
// `workdir`; dies with us (PR_SET_PDEATHSIG); inherits no descriptor above stderr.
Spawner plain_spawner(std::vector<std::string> argv, std::vector<std::string> envp, std::string workdir);

}  // namespace tokfence::sandbox
