#pragma once
// Reading secrets (keys, passphrases) without echo and without copies: every byte goes from read(2)
// into an mlocked buffer that is wiped afterwards. Used by the passphrase prompt and by
// `tokfence vault add <provider> -`.
#include <cstddef>
#include <string_view>

#include "core/error.hpp"
#include "core/secret.hpp"

namespace tokfence::vault {

// Writes `prompt` to `prompt_fd`, turns echo off on the terminal `tty_fd`, reads one line (without
// its line ending), and restores the terminal, also when the user presses Ctrl-C.
Result<SecretString> read_hidden_line(int tty_fd, int prompt_fd, std::string_view prompt, std::size_t max_bytes = 4096);

// Reads `fd` (a pipe or file) to its end, at most `max_bytes`, into a SecretString.
Result<SecretString> read_secret_stream(int fd, std::size_t max_bytes);

// Without leading and trailing whitespace (a pasted key usually brings a newline along).
SecretString trim_secret(const SecretString& s);

}  // namespace tokfence::vault
