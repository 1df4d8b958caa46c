#pragma once
// Reading secrets (keys, passphrases) without echo and without copies: every byte goes from read(2)
// into an mlocked buffer that is wiped afterwards. Used by the passphrase prompt and by
// `tokfence vault add <provider> -`.
#include <atomic>
#include <cstddef>
#include <string_view>

#include "core/error.hpp"
#include "core/secret.hpp"

namespace tokfence::vault {

enum class Echo { on, off };

// Writes `prompt` to `prompt_fd` and reads one line (without its line ending) from the terminal
// `tty_fd`; with Echo::off the typed text is not shown. A stop signal (Ctrl-C, SIGTERM, SIGHUP,
// SIGQUIT) while it waits restores the terminal and ends the process by that signal, whatever handler
// the caller installed. A signal the caller's own handler recorded in `stopped` before the call
// (non-zero) makes it return an error at once: no signal is lost between the caller's last check and
// the read, so a prompt never waits on after Ctrl-C.
Result<SecretString> read_terminal_line(int tty_fd, int prompt_fd, std::string_view prompt, Echo echo,
                                        std::size_t max_bytes, const std::atomic<int>* stopped = nullptr);

// read_terminal_line with Echo::off: keys and passphrases.
Result<SecretString> read_hidden_line(int tty_fd, int prompt_fd, std::string_view prompt, std::size_t max_bytes = 4096);

// Reads `fd` (a pipe or file) to its end, at most `max_bytes`, into a SecretString.
Result<SecretString> read_secret_stream(int fd, std::size_t max_bytes);

// Without leading and trailing whitespace (a pasted key usually brings a newline along).
SecretString trim_secret(const SecretString& s);

}  // namespace tokfence::vault
