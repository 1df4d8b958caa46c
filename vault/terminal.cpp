#include "vault/terminal.hpp"

#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "vault/secure_bytes.hpp"

namespace tokfence::vault {

namespace {

// The terminal state to restore if a signal arrives while echo is off. Only one prompt runs at a
// time in a CLI process; the handler touches nothing but these async-signal-safe values.
volatile sig_atomic_t g_restore_fd = -1;
struct termios g_saved_termios;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
struct sigaction g_old_actions[sizeof kSignals / sizeof kSignals[0]];

void restore_and_reraise(int sig) {
  if (g_restore_fd >= 0) {
    tcsetattr(g_restore_fd, TCSAFLUSH, &g_saved_termios);
    const char nl = '\n';
    (void)!write(g_restore_fd, &nl, 1);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// For a prompt's lifetime: the stop signals' handlers that restore the terminal and end the
// process, and with quiet, echo off. Without quiet only the handlers: a stop signal at a visible
// prompt ends the process as it would an unprompted one, whatever handler the caller had.
class PromptTerminal {
 public:
  PromptTerminal(int fd, bool quiet) {
    struct sigaction sa {};
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &sa, &g_old_actions[i]);
    if (!quiet || tcgetattr(fd, &g_saved_termios) != 0) return;
    struct termios q = g_saved_termios;
    q.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    q.c_lflag |= ICANON;
    g_restore_fd = fd;
    fd_ = fd;
    tcsetattr(fd, TCSAFLUSH, &q);
  }
  ~PromptTerminal() {
    if (fd_ >= 0) tcsetattr(fd_, TCSAFLUSH, &g_saved_termios);
    g_restore_fd = -1;
    for (std::size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &g_old_actions[i], nullptr);
  }
  PromptTerminal(const PromptTerminal&) = delete;
  PromptTerminal& operator=(const PromptTerminal&) = delete;

 private:
  int fd_ = -1;
};

void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Blocks the stop signals for its lifetime. While they are blocked no handler can run, so checking
// the caller's flag and installing the prompt's handlers happen with no signal in between; they are
// let through only inside ppoll (wait_mask), where a pending one is delivered at once.
class StopSignalsBlocked {
 public:
  StopSignalsBlocked() {
    sigset_t stop;
    sigemptyset(&stop);
    for (int s : kSignals) sigaddset(&stop, s);
    pthread_sigmask(SIG_BLOCK, &stop, &old_);
    wait_mask_ = old_;
    for (int s : kSignals) sigdelset(&wait_mask_, s);
  }
  ~StopSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  StopSignalsBlocked(const StopSignalsBlocked&) = delete;
  StopSignalsBlocked& operator=(const StopSignalsBlocked&) = delete;
  const sigset_t* wait_mask() const { return &wait_mask_; }

 private:
  sigset_t old_;
  sigset_t wait_mask_;
};

}  // namespace

Result<SecretString> read_terminal_line(int tty_fd, int prompt_fd, std::string_view prompt, Echo echo,
                                        std::size_t max_bytes, const std::atomic<int>* stopped) {
  SecureBytes buf(max_bytes);
  std::size_t n = 0;
  bool got_newline = false;
  {
    StopSignalsBlocked blocked;
    if (stopped && stopped->load() != 0) return fail("input: interrupted by signal " + std::to_string(stopped->load()));
    // Installs the handlers that restore the terminal (for Echo::on: only end the process).
    PromptTerminal terminal(tty_fd, echo == Echo::off);
    write_all(prompt_fd, prompt);
    while (true) {
      struct pollfd p {tty_fd, POLLIN, 0};
      int ready = ::ppoll(&p, 1, nullptr, blocked.wait_mask());
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return fail(std::string("input: cannot wait for the terminal: ") + std::strerror(errno));
      char c;
      ssize_t r = ::read(tty_fd, &c, 1);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r <= 0) break;
      if (c == '\n') {
        got_newline = true;
        break;
      }
      if (n == max_bytes) return fail("input: longer than " + std::to_string(max_bytes) + " bytes");
      buf.chars()[n++] = c;
    }
  }
  // Echo was off, so the user's Enter did not move the cursor.
  if (echo == Echo::off) write_all(prompt_fd, "\n");
  if (!got_newline && n == 0) return fail("input: ended before a line was entered");
  if (n > 0 && buf.chars()[n - 1] == '\r') --n;
  return SecretString(std::string_view(buf.chars(), n));
}

Result<SecretString> read_hidden_line(int tty_fd, int prompt_fd, std::string_view prompt, std::size_t max_bytes) {
  return read_terminal_line(tty_fd, prompt_fd, prompt, Echo::off, max_bytes);
}

Result<SecretString> read_secret_stream(int fd, std::size_t max_bytes) {
  SecureBytes buf(max_bytes + 1);
  std::size_t n = 0;
  while (n <= max_bytes) {
    ssize_t r = ::read(fd, buf.chars() + n, max_bytes + 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail(std::string("input: cannot read: ") + std::strerror(errno));
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
  }
  if (n > max_bytes) return fail("input: longer than " + std::to_string(max_bytes) + " bytes");
  return SecretString(std::string_view(buf.chars(), n));
}

SecretString trim_secret(const SecretString& s) {
  std::string_view v = s.reveal();
  while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
  while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
  return SecretString(v);
}

}  // namespace tokfence::vault
