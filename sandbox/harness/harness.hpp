#pragma once
// Harness wrappers: what `tokfence run codex|claude|opencode` writes and sets so that each
// program talks only to the tokfence proxy, with its run's session token as its key (ImmuneFence,
// issue 19: the proxy checks it, strips it and adds the real key), and phones home nowhere.
// Pure file and string work (no processes): cli_run.cpp does the running.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace tokfence::harness {

// The placeholder key of the time before sessions: what RenderInput::api_key defaults to (unit
// tests), and what scrub_secret() puts where a run's token was. `tokfence run` always renders
// with the session's token instead; the proxy refuses this one on a run's socket.
inline constexpr std::string_view kDummyKey = "tokfence-managed";

// claude pre-approves a key by its last this-many characters (.claude.json customApiKeyResponses).
inline constexpr std::size_t kClaudeKeyTail = 20;

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
  // The key the program sends: the run's session token (a secret: it goes into the environment
  // and the rendered configs only, never into a message).
  std::string api_key = std::string(kDummyKey);
};

struct Rendered {
  std::map<std::string, std::string> env;   // the harness's own variables
  std::vector<std::string> key_vars;        // variables in `env` that hold `api_key`
  std::vector<std::filesystem::path> files; // written config files
};

// Writes the program's native config under `harness_home` from the templates and returns the
// variables that point the program at it. Errors name the file or the bad value (e.g. a model
// name with characters that cannot go into TOML/JSON unescaped).
Result<Rendered> render(const RenderInput& input);

// Paths a harness child must not see, given the parent's environment `env` and tokfence home
// `tokfence_home`: the tokfence home, per-user runtime dirs (D-Bus, keyring, agents), Docker and
// Podman sockets, the agent/bus sockets the environment names, and credential stores under $HOME
// (~/.ssh, ~/.gnupg, ~/.docker, ~/.aws, keyrings, git/pg/cargo/... credential files, shell
// histories, browser profiles, the programs' own real configs...); with `uid` 0 also root's own
// secrets (/etc/shadow, /etc/gshadow, sudoers, SSH host keys, cluster configs, /root). A deny-list:
// the rest stays readable. Paths that do not exist are left out.
std::vector<std::filesystem::path> sensitive_paths(const std::map<std::string, std::string>& env,
                                                   const std::filesystem::path& tokfence_home, unsigned uid);

// After a run: every regular file below `harness_home` (the program's own state included) that
// holds `secret`, or its last kClaudeKeyTail characters, or any other capability token ("tfc1."
// and 16 or more of [A-Za-z0-9._-]: one a killed run left), is rewritten with each occurrence
// replaced by kDummyKey (atomically, same mode; walked through descriptors without following a link, since
// the program could write there). Files larger than 32 MiB, and entries past a bound of 20000 or
// 16 levels deep, are left alone and counted in `skipped`. Errors never quote the secret.
struct ScrubResult {
  std::size_t rewritten = 0;
  std::size_t skipped = 0;
};
Result<ScrubResult> scrub_secret(const std::filesystem::path& harness_home, std::string_view secret);

// Replaces every {{key}} in `text`; an unknown {{...}} left over is an error naming it.
Result<std::string> fill_template(std::string_view text, const std::map<std::string, std::string>& values,
                                  std::string_view source_name);

// Where templates live: <exe dir>/../share/tokfence/templates when installed, else the source
// tree's templates/ folder this build came from.
std::filesystem::path templates_dir();

}  // namespace tokfence::harness
