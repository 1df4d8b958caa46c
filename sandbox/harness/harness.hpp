#pragma once
// Harness wrappers: what `tokfence run codex|claude|opencode` writes and sets so that each
// program talks only to the tokfence proxy, with a dummy key, and phones home nowhere.
// Pure file and string work (no processes): cli_run.cpp does the running.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tokfence::harness {

// The key every harness child holds. The proxy strips it and adds the real one.
inline constexpr std::string_view kDummyKey = "tokfence-managed";

struct Program {
  std::string name;              // "codex": also the caller name in the request log
  std::string default_provider;  // "openai"
  std::string command;           // looked up on PATH unless --command is given
  std::vector<std::string> providers;  // providers the program can speak to
};

// codex, claude, opencode.
const std::vector<Program>& programs();
const Program* find_program(std::string_view name);

struct RenderInput {
  const Program* program = nullptr;
  std::string provider;                 // one of program->providers
  std::string proxy_url;                // "http://127.0.0.1:9471" as the child sees it
  std::optional<std::string> model;     // --model
  std::filesystem::path harness_home;   // TOKFENCE_HOME/harness/<program>
  std::filesystem::path templates_dir;  // contains harness/<program>/...
  std::filesystem::path tmpdir;         // the child's TMPDIR
  bool running_as_root = false;
};

struct Rendered {
  std::map<std::string, std::string> env;   // the harness's own variables
  std::vector<std::string> dummy_key_vars;  // variables in `env` that hold the dummy key
  std::vector<std::filesystem::path> files; // written config files
};

// Writes the program's native config under `harness_home` from the templates and returns the
// variables that point the program at it. Errors name the file or the bad value (e.g. a model
// name with characters that cannot go into TOML/JSON unescaped).
Result<Rendered> render(const RenderInput& input);

// Paths a harness child must not see, given the parent's environment `env` and tokfence home
// `tokfence_home`: the tokfence home, per-user runtime dirs (D-Bus, keyring, agents), Docker and
// Podman sockets, the agent/bus sockets the environment names, and credential stores under $HOME
// (~/.ssh, ~/.gnupg, ~/.docker, ~/.aws, keyrings, the programs' own real configs...). Paths that
// do not exist are left out.
std::vector<std::filesystem::path> sensitive_paths(const std::map<std::string, std::string>& env,
                                                   const std::filesystem::path& tokfence_home, unsigned uid);

// Replaces every {{key}} in `text`; an unknown {{...}} left over is an error naming it.
Result<std::string> fill_template(std::string_view text, const std::map<std::string, std::string>& values,
                                  std::string_view source_name);

// Where templates live: <exe dir>/../share/tokfence/templates when installed, else the source
// tree's templates/ folder this build came from.
std::filesystem::path templates_dir();

}  // namespace tokfence::harness
