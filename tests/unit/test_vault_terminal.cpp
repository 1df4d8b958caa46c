// The terminal prompts (vault/terminal.hpp) on a real pseudo-terminal. Each case runs the prompt in a
// child process (it may end by a signal, which is the point) with an alarm as the bound: a prompt
// that waits on after Ctrl-C dies of SIGALRM and the case fails.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "vault/terminal.hpp"

namespace {

using tokfence::vault::Echo;
using tokfence::vault::read_terminal_line;

struct Pty {
  int master = -1;
  std::string slave_name;
  Pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    slave_name = ::ptsname(master);
  }
  ~Pty() { ::close(master); }
  // Waits (bounded) until the child printed `text` on the terminal.
  bool wait_for(const std::string& text) {
    std::string seen;
    for (int i = 0; i < 500 && seen.find(text) == std::string::npos; ++i) {
      char buf[256];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) seen.append(buf, static_cast<std::size_t>(n));
      else ::usleep(10'000);
    }
    return seen.find(text) != std::string::npos;
  }
};

// Runs `body(slave_fd)` in a child whose controlling terminal is the pty's slave (so a typed Ctrl-C
// is its SIGINT); returns the wait status.
template <class Body>
pid_t spawn_on_pty(const Pty& pty, Body body) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(5);
    ::setsid();
    int slave = ::open(pty.slave_name.c_str(), O_RDWR);
    if (slave < 0) ::_exit(90);
    ::_exit(body(slave));
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

}  // namespace

TEST_CASE("terminal: a typed line is returned without its line ending", "[vault][terminal]") {
  Pty pty;
  ::fcntl(pty.master, F_SETFL, O_NONBLOCK);
  pid_t pid = spawn_on_pty(pty, [](int tty) {
    auto line = read_terminal_line(tty, tty, "key: ", Echo::off, 64);
    return line && line->reveal() == "typed-secret" ? 0 : 1;
  });
  REQUIRE(pty.wait_for("key: "));
  REQUIRE(::write(pty.master, "typed-secret\r\n", 14) == 14);
  int status = wait_status(pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("terminal: a stop signal the caller recorded before the prompt ends it at once", "[vault][terminal]") {
  Pty pty;
  pid_t pid = spawn_on_pty(pty, [](int tty) {
    std::atomic<int> stopped{SIGINT};
    auto line = read_terminal_line(tty, tty, "key: ", Echo::off, 64, &stopped);
    return !line && line.error().message.find("interrupted") != std::string::npos ? 0 : 1;
  });
  int status = wait_status(pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// The race CI hit (launch_first_run hung 900 s): Ctrl-C landed after the caller's last check and
// before the prompt's read, and the read then waited for ever. A signal pending while the stop
// signals are blocked stands for that window.
TEST_CASE("terminal: a stop signal pending when the prompt starts ends the process", "[vault][terminal]") {
  for (Echo echo : {Echo::on, Echo::off}) {
    Pty pty;
    pid_t pid = spawn_on_pty(pty, [echo](int tty) {
      sigset_t block;
      sigemptyset(&block);
      sigaddset(&block, SIGINT);
      sigprocmask(SIG_BLOCK, &block, nullptr);
      ::raise(SIGINT);
      (void)read_terminal_line(tty, tty, "key: ", echo, 64);
      return 3;
    });
    int status = wait_status(pid);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGINT);
  }
}

TEST_CASE("terminal: Ctrl-C at a hidden prompt ends the process and turns echo back on", "[vault][terminal]") {
  Pty pty;
  ::fcntl(pty.master, F_SETFL, O_NONBLOCK);
  pid_t pid = spawn_on_pty(pty, [](int tty) {
    (void)read_terminal_line(tty, tty, "key: ", Echo::off, 64);
    return 3;
  });
  REQUIRE(pty.wait_for("key: "));
  REQUIRE(::write(pty.master, "part\x03", 5) == 5);
  int status = wait_status(pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
  struct termios now {};
  REQUIRE(::tcgetattr(pty.master, &now) == 0);
  CHECK((now.c_lflag & ECHO) != 0);
}
