#pragma once
// The macOS sandbox: a sandbox-exec (Seatbelt) profile rendered from templates/macos/tokfence.sb
// and the argv that runs the child under it. Platform-independent text generation, so it is
// unit-tested on Linux too; only running it needs macOS.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "sandbox/sandbox.hpp"

namespace tokfence::sandbox {

struct MacProfileInput {
  std::string program;                              // "codex", shown in the header comment
  int proxy_port = 0;                               // localhost:<port> is the only TCP destination
  std::filesystem::path proxy_socket;               // the only Unix socket the child may connect to
  std::vector<std::filesystem::path> writable;      // workdir, harness home, private tmp, --allow-write
  std::vector<std::filesystem::path> hidden;        // neither read nor written: tokfence home, keychains
};

// The paths that hold keychains for a user whose home is `user_home`.
std::vector<std::filesystem::path> macos_keychain_paths(const std::filesystem::path& user_home);

// Fills the template's {{program}}, {{proxy_port}}, {{proxy_socket}}, {{writable_rules}} and
// {{hidden_rules}}. Paths are absolute and quoted for SBPL; a relative path, a path with a NUL
// or newline, or an unknown placeholder left in the template is an error.
Result<std::string> render_macos_profile(std::string_view template_text, const MacProfileInput& input);

// {"/usr/bin/sandbox-exec", "-f", profile, argv...}
std::vector<std::string> macos_sandbox_argv(const std::filesystem::path& profile, const std::vector<std::string>& argv);

}  // namespace tokfence::sandbox
