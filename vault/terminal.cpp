#include "vault/terminal.hpp"

#include <signal.h>
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

class EchoOff {
 public:
  explicit EchoOff(int fd) {
    if (tcgetattr(fd, &g_saved_termios) != 0) return;
    struct termios quiet = g_saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    struct sigaction sa {};
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &sa, &g_old_actions[i]);
    g_restore_fd = fd;
    fd_ = fd;
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  ~EchoOff() {
    if (fd_ < 0) return;
    tcsetattr(fd_, TCSAFLUSH, &g_saved_termios);
    g_restore_fd = -1;
    for (std::size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &g_old_actions[i], nullptr);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

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

}  // namespace

Result<SecretString> read_hidden_line(int tty_fd, int prompt_fd, std::string_view prompt, std::size_t max_bytes) {
  SecureBytes buf(max_bytes);
  std::size_t n = 0;
  bool got_newline = false;
  {
    write_all(prompt_fd, prompt);
    EchoOff quiet(tty_fd);
    while (true) {
      char c;
      ssize_t r = ::read(tty_fd, &c, 1);
      if (r < 0 && errno == EINTR) continue;
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
  write_all(prompt_fd, "\n");
  if (!got_newline && n == 0) return fail("input: ended before a line was entered");
  if (n > 0 && buf.chars()[n - 1] == '\r') --n;
  return SecretString(std::string_view(buf.chars(), n));
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
