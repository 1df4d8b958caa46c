#include "sandbox/supervisor.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <tuple>
#include <optional>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace tokfence::sandbox {
namespace {

// Signals become bytes on a pipe, so the loop below handles them in order, outside handler context.
int g_signal_pipe_write = -1;
void on_signal(int sig) {
  int saved = errno;
  unsigned char byte = static_cast<unsigned char>(sig);
  [[maybe_unused]] auto n = ::write(g_signal_pipe_write, &byte, 1);
  errno = saved;
}

constexpr std::array kHandled = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGCHLD};

class SignalCapture {
 public:
  SignalCapture() {
    if (::pipe2(fds_, O_CLOEXEC | O_NONBLOCK) < 0) return;
    g_signal_pipe_write = fds_[1];
    for (std::size_t i = 0; i < kHandled.size(); ++i) {
      struct sigaction sa{};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART;
      ::sigaction(kHandled[i], &sa, &old_[i]);
    }
  }
  ~SignalCapture() {
    for (std::size_t i = 0; i < kHandled.size(); ++i) ::sigaction(kHandled[i], &old_[i], nullptr);
    g_signal_pipe_write = -1;
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  bool ok() const { return fds_[0] >= 0; }
  int read_fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
  std::array<struct sigaction, kHandled.size()> old_{};
};

class RawMode {
 public:
  explicit RawMode(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd_, TCSAFLUSH, &raw) == 0;
  }
  ~RawMode() {
    if (active_) ::tcsetattr(fd_, TCSAFLUSH, &saved_);
  }

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        continue;
      }
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

void copy_window_size(int from, int to) {
  winsize ws{};
  if (::ioctl(from, TIOCGWINSZ, &ws) == 0) ::ioctl(to, TIOCSWINSZ, &ws);
}

// While the child is spawned, every stdio descriptor that is a terminal and is not replaced by the
// child's own pseudo-terminal (stdin not a tty: `</dev/null`, a pipe, a background job; or
// Terminal::never) is swapped for something that is not one: stdin for /dev/null, stdout/stderr
// for a pipe that the loop below copies to the terminal. A host terminal descriptor in the child
// would let it read what the user types there (a sudo password) and change its modes, whatever
// the sandbox hides by path. The swap is undone right after the spawn; the child keeps its copies.
class TerminalShield {
 public:
  explicit TerminalShield(bool child_has_pty) {
    if (child_has_pty) return;
    for (int fd = 0; fd < 3; ++fd) {
      if (!::isatty(fd)) continue;
      int replacement = -1;
      if (fd == STDIN_FILENO) {
        replacement = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      } else {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) == 0) {
          replacement = p[1];
          out_[fd] = p[0];
        }
      }
      saved_[fd] = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      // dup2 leaves the new descriptor without close-on-exec: the child inherits it as `fd`.
      if (replacement < 0 || saved_[fd] < 0 || ::dup2(replacement, fd) != fd) failed_ = true;
      if (replacement >= 0) ::close(replacement);
    }
  }
  // Puts the terminals back in our own stdio (the child holds its replacements).
  void restore() {
    for (int fd = 0; fd < 3; ++fd)
      if (saved_[fd] >= 0) {
        ::dup2(saved_[fd], fd);
        ::close(saved_[fd]);
        saved_[fd] = -1;
      }
  }
  ~TerminalShield() {
    restore();
    for (int& fd : out_)
      if (fd >= 0) ::close(std::exchange(fd, -1));
  }
  bool failed() const { return failed_; }
  // The read end of the pipe standing in for stdout (1) or stderr (2); -1 when none.
  int& output(int fd) { return out_[fd]; }

 private:
  std::array<int, 3> saved_{-1, -1, -1};
  std::array<int, 3> out_{-1, -1, -1};
  bool failed_ = false;
};

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

Result<std::pair<int, int>> open_pseudo_terminal(const TerminalSettings& settings) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char name[128];
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0 || ::ptsname_r(master, name, sizeof name) != 0) {
    int err = errno;
    if (master >= 0) ::close(master);
    return fail(std::string("supervisor: pseudo-terminal: ") + std::strerror(err));
  }
  int slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int err = errno;
    ::close(master);
    return fail(std::string("supervisor: pseudo-terminal: ") + name + ": " + std::strerror(err));
  }
  if (settings.has_attrs) ::tcsetattr(slave, TCSANOW, &settings.attrs);
  if (settings.has_size) ::ioctl(master, TIOCSWINSZ, &settings.size);
  return std::pair{master, slave};
}

Result<int> supervise(const Spawner& spawn, Terminal terminal) {
  bool use_tty = terminal == Terminal::automatic && ::isatty(STDIN_FILENO);
  SignalCapture signals;
  if (!signals.ok()) return fail(std::string("supervisor: pipe: ") + std::strerror(errno));

  std::optional<TerminalSettings> settings;
  if (use_tty) {
    settings.emplace();
    settings->has_attrs = ::tcgetattr(STDIN_FILENO, &settings->attrs) == 0;
    settings->has_size = ::ioctl(STDIN_FILENO, TIOCGWINSZ, &settings->size) == 0;
  }
  TerminalShield shield(use_tty);
  if (shield.failed()) {
    shield.restore();
    return fail(std::string("supervisor: cannot keep the terminal from the child: ") + std::strerror(errno));
  }
  auto spawned = spawn(settings ? &*settings : nullptr);
  shield.restore();
  if (!spawned) return std::unexpected(spawned.error());
  pid_t pid = spawned->pid;
  int master = spawned->master;
  if (use_tty && master < 0) {
    ::kill(pid, SIGKILL);
    int ignored = 0;
    while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
    }
    return fail("supervisor: pseudo-terminal: the spawner returned none");
  }

  std::optional<RawMode> raw;
  if (use_tty) raw.emplace(STDIN_FILENO);

  int status = 0;
  bool child_done = false, master_done = !use_tty, stdin_open = use_tty;
  std::array<char, 16384> buf{};
  auto outputs_open = [&] { return shield.output(1) >= 0 || shield.output(2) >= 0; };
  while (!child_done || !master_done || outputs_open()) {
    std::array<pollfd, 5> fds{};
    nfds_t n = 0;
    fds[n++] = {signals.read_fd(), POLLIN, 0};
    int master_index = -1, stdin_index = -1, out_index[3] = {-1, -1, -1};
    if (!master_done) {
      master_index = static_cast<int>(n);
      fds[n++] = {master, POLLIN, 0};
    }
    for (int fd = 1; fd < 3; ++fd)
      if (shield.output(fd) >= 0) {
        out_index[fd] = static_cast<int>(n);
        fds[n++] = {shield.output(fd), POLLIN, 0};
      }
    if (stdin_open && !child_done) {
      stdin_index = static_cast<int>(n);
      fds[n++] = {STDIN_FILENO, POLLIN, 0};
    }
    // Once the child is gone, output still buffered in the terminal is drained; no process is
    // left to write more (its process tree died with it), so a quiet terminal means we are done.
    int rc = ::poll(fds.data(), n, child_done ? 200 : -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (rc == 0 && child_done) break;
    if (fds[0].revents & POLLIN) {
      unsigned char sigs[64];
      ssize_t got = ::read(signals.read_fd(), sigs, sizeof sigs);
      for (ssize_t i = 0; i < got; ++i) {
        int sig = sigs[i];
        if (sig == SIGCHLD) {
          if (!child_done && ::waitpid(pid, &status, WNOHANG) == pid) {
            child_done = true;
            // Helpers the child left in its process group go with it.
            ::kill(-pid, SIGKILL);
          }
        } else if (sig == SIGWINCH) {
          if (use_tty) copy_window_size(STDIN_FILENO, master);
        } else if (!child_done) {
          ::kill(pid, sig);
        }
      }
    }
    if (master_index >= 0 && fds[master_index].revents) {
      ssize_t got = ::read(master, buf.data(), buf.size());
      if (got > 0) {
        write_all(STDOUT_FILENO, buf.data(), static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        master_done = true;  // EIO: every slave end is closed
      }
    }
    for (int fd = 1; fd < 3; ++fd) {
      if (out_index[fd] < 0 || !fds[out_index[fd]].revents) continue;
      ssize_t got = ::read(shield.output(fd), buf.data(), buf.size());
      if (got > 0) {
        write_all(fd, buf.data(), static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        ::close(std::exchange(shield.output(fd), -1));
      }
    }
    if (stdin_index >= 0 && fds[stdin_index].revents) {
      ssize_t got = ::read(STDIN_FILENO, buf.data(), buf.size());
      if (got > 0) {
        write_all(master, buf.data(), static_cast<std::size_t>(got));
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;
      }
    }
  }
  if (!child_done) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (master >= 0) ::close(master);
  return exit_code_of(status);
}

Spawner plain_spawner(std::vector<std::string> argv, std::vector<std::string> envp, std::string workdir) {
  return [argv = std::move(argv), envp = std::move(envp), workdir = std::move(workdir)](
             const TerminalSettings* terminal) -> Result<Spawned> {
    std::vector<std::string> args = argv, env = envp;
    std::vector<char*> cargv, cenv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    int master = -1, tty_fd = -1;
    if (terminal) {
      auto pty = open_pseudo_terminal(*terminal);
      if (!pty) return std::unexpected(pty.error());
      std::tie(master, tty_fd) = *pty;
    }
    auto close_terminal = [&] {
      if (tty_fd >= 0) ::close(tty_fd);
      if (master >= 0) ::close(master);
    };
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0) {
      int err = errno;
      close_terminal();
      return fail(std::string("spawn: pipe: ") + std::strerror(err));
    }
    sigset_t all, old;
    sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      auto die = [&](const char* step) {
        std::string msg = std::string(step) + ": " + std::strerror(errno);
        [[maybe_unused]] auto n = ::write(pipe_fds[1], msg.data(), msg.size());
        ::_exit(126);
      };
      if (::setsid() < 0) die("setsid");
      if (tty_fd >= 0) {
        if (::ioctl(tty_fd, TIOCSCTTY, 0) < 0) die("terminal");
        for (int fd = 0; fd < 3; ++fd) ::dup2(tty_fd, fd);
        if (tty_fd > 2) ::close(tty_fd);
      }
      if (::chdir(workdir.c_str()) < 0) die(("workdir: " + workdir).c_str());
      // Descriptors the user's shell left open (`exec 7<file`) do not reach the program; the
      // error pipe is close-on-exec already and stays usable until the exec.
      if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) die("close inherited descriptors");
      ::execve(cargv[0], cargv.data(), cenv.data());
      die(("exec " + args[0]).c_str());
    }
    int saved = errno;
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ::close(pipe_fds[1]);
    if (tty_fd >= 0) ::close(tty_fd);
    tty_fd = -1;
    if (pid < 0) {
      ::close(pipe_fds[0]);
      close_terminal();
      return fail(std::string("spawn: fork: ") + std::strerror(saved));
    }
    std::string message;
    char b[512];
    for (;;) {
      ssize_t n = ::read(pipe_fds[0], b, sizeof b);
      if (n > 0) {
        message.append(b, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    ::close(pipe_fds[0]);
    if (!message.empty()) {
      int status;
      ::waitpid(pid, &status, 0);
      close_terminal();
      return fail("spawn: " + message);
    }
    return Spawned{pid, master};
  };
}

}  // namespace tokfence::sandbox
