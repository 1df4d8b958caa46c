#include "sandbox/harness/harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/file.hpp"
#include "core/home.hpp"

#ifndef TOKFENCE_TEMPLATES_DIR
#define TOKFENCE_TEMPLATES_DIR "templates"
#endif

namespace tokfence::harness {
namespace fs = std::filesystem;
namespace {

Result<std::string> read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("harness: template missing: " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The harness home is writable inside the sandbox, so the agent may have planted symlinks, hard links or
// other entries under any name we use. Everything below it is therefore opened one component at a time
// without following links (core/file), and files are replaced atomically from a random O_EXCL temp name.
Error tampered(const fs::path& harness_home, const Error& error) {
  return Error{"harness: " + error.message + ": the sandboxed program can write " + harness_home.string() +
               "; remove that entry (or the whole directory) and run again"};
}

// Opens (creating, 0700) the directory `rel` below the open harness home `home_fd`, refusing links.
Result<file::Fd> harness_subdir(int home_fd, const fs::path& harness_home, const std::string& rel) {
  auto dir = file::open_dir_at(home_fd, rel, file::Create::yes);
  if (!dir) return std::unexpected(tampered(harness_home, dir.error()));
  return dir;
}

// Written to a random temporary name first and renamed, so a program never reads a half-written config
// and a link planted at the final name is replaced, not written through.
Result<void> write_text(int home_fd, const fs::path& harness_home, const fs::path& rel, const std::string& text) {
  file::Fd sub;
  int dir_fd = home_fd;
  if (rel.has_parent_path()) {
    auto dir = harness_subdir(home_fd, harness_home, rel.parent_path().string());
    if (!dir) return std::unexpected(dir.error());
    sub = std::move(*dir);
    dir_fd = sub.get();
  }
  auto ok = file::write_atomic_at(dir_fd, rel.filename().string(), text, {.mode = 0600, .owner = std::nullopt});
  if (!ok) return std::unexpected(tampered(harness_home, ok.error()));
  return {};
}

// Opens the harness home itself (TOKFENCE_HOME/harness/<program>, created 0700): its parent is not
// writable by the agent and is resolved normally; the home must be a real directory owned by us.
Result<file::Fd> open_harness_home(const fs::path& harness_home) {
  const fs::path root = harness_home.parent_path();
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return fail("harness: cannot create " + root.string() + ": " + ec.message());
  auto home = file::open_dir_beneath(root, harness_home, file::Create::yes);
  if (!home) return std::unexpected(tampered(harness_home, home.error()));
  if (::fchmod(home->get(), 0700) != 0)
    return fail("harness: " + harness_home.string() + ": cannot set mode 0700: " + std::strerror(errno));
  return home;
}

// Model names go into TOML and JSON strings unescaped: keep them to a safe alphabet.
bool safe_model_name(const std::string& model) {
  if (model.empty() || model.size() > 128) return false;
  return std::all_of(model.begin(), model.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':' || c == '/' ||
           c == '@';
  });
}

std::string default_model(const std::string& provider) {
  if (provider == "anthropic") return "claude-sonnet-4-5";
  return "gpt-5-mini";
}

}  // namespace

const std::vector<Program>& programs() {
  static const std::vector<Program> all = {
      {"codex", "openai", "codex", {"openai"}},
      {"claude", "anthropic", "claude", {"anthropic"}},
      {"opencode", "openai", "opencode", {"openai", "anthropic"}},
  };
  return all;
}

const Program* find_program(std::string_view name) {
  for (const auto& p : programs())
    if (p.name == name) return &p;
  return nullptr;
}

Result<std::string> fill_template(std::string_view text, const std::map<std::string, std::string>& values,
                                  std::string_view source_name) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto open = text.find("{{", pos);
    if (open == std::string_view::npos) {
      out.append(text.substr(pos));
      break;
    }
    out.append(text.substr(pos, open - pos));
    auto close = text.find("}}", open);
    if (close == std::string_view::npos) return fail("template " + std::string(source_name) + ": unclosed '{{'");
    std::string key(text.substr(open + 2, close - open - 2));
    auto it = values.find(key);
    if (it == values.end()) return fail("template " + std::string(source_name) + ": unknown placeholder: {{" + key + "}}");
    out += it->second;
    pos = close + 2;
  }
  return out;
}

fs::path templates_dir() {
  std::error_code ec;
  fs::path exe = file::self_exe();
  if (!exe.empty()) {
    fs::path installed = exe.parent_path().parent_path() / "share" / "tokfence" / "templates";
    if (fs::is_directory(installed / "harness", ec)) return installed;
  }
  return TOKFENCE_TEMPLATES_DIR;
}

Result<Rendered> render(const RenderInput& in) {
  const Program& program = *in.program;
  if (std::find(program.providers.begin(), program.providers.end(), in.provider) == program.providers.end()) {
    std::string list;
    for (const auto& p : program.providers) list += (list.empty() ? "" : ", ") + p;
    return fail(program.name + ": provider not supported: " + in.provider + " (use " + list + ")");
  }
  if (in.model && !safe_model_name(*in.model))
    return fail(program.name + ": bad model name: '" + *in.model + "' (letters, digits and -_.:/@ only)");
  if (!in.harness_home.is_absolute())
    return fail("harness: internal: harness home must be absolute: " + in.harness_home.string());
  auto home_dir = open_harness_home(in.harness_home);
  if (!home_dir) return std::unexpected(home_dir.error());
  const int home_fd = home_dir->get();

  const fs::path home = in.harness_home;
  const fs::path tdir = in.templates_dir / "harness" / program.name;
  const std::string& key = in.api_key;
  // The key goes into JSON strings unescaped: the token's alphabet (base64url and '.') and the
  // dummy need no escaping; anything else is refused rather than rendered wrong.
  if (key.empty() || key.size() > 4096 || !std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      }))
    return fail("harness: the session token has characters a config cannot hold unescaped");
  std::map<std::string, std::string> values = {
      {"proxy_url", in.proxy_url},
      {"provider", in.provider},
      {"api_key", key},
      {"api_key_tail", key.size() > kClaudeKeyTail ? key.substr(key.size() - kClaudeKeyTail) : key},
  };
  Rendered out;
  // Programs, and the tools they run, keep caches and state under XDG dirs: inside the harness
  // home, which is writable in the sandbox, rather than in the read-only real home.
  for (const char* sub : {"config", "cache", "data", "state"}) {
    if (auto dir = harness_subdir(home_fd, home, std::string("xdg/") + sub); !dir)
      return std::unexpected(dir.error());
  }
  out.env["XDG_CONFIG_HOME"] = (home / "xdg" / "config").string();
  out.env["XDG_CACHE_HOME"] = (home / "xdg" / "cache").string();
  out.env["XDG_DATA_HOME"] = (home / "xdg" / "data").string();
  out.env["XDG_STATE_HOME"] = (home / "xdg" / "state").string();
  out.env["TMPDIR"] = in.tmpdir.string();

  // `rel` is relative to the harness home.
  auto render_file = [&](const std::string& name, const fs::path& rel) -> Result<void> {
    auto text = read_text(tdir / name);
    if (!text) return std::unexpected(text.error());
    auto filled = fill_template(*text, values, (tdir / name).string());
    if (!filled) return std::unexpected(filled.error());
    if (auto w = write_text(home_fd, home, rel, *filled); !w) return w;
    out.files.push_back(home / rel);
    return {};
  };

  if (program.name == "codex") {
    values["key_var"] = "OPENAI_API_KEY";
    values["model_line"] = in.model ? "model = \"" + *in.model + "\"" : "";
    fs::path codex_home = home / "codex-home";
    if (auto r = render_file("config.toml", "codex-home/config.toml"); !r) return std::unexpected(r.error());
    out.env["CODEX_HOME"] = codex_home.string();
    out.env["OPENAI_API_KEY"] = key;
    out.env["OPENAI_BASE_URL"] = in.proxy_url + "/" + in.provider + "/v1";
    out.key_vars = {"OPENAI_API_KEY"};
  } else if (program.name == "claude") {
    fs::path config_dir = home / "claude-config";
    if (auto r = render_file("settings.json", "claude-config/settings.json"); !r) return std::unexpected(r.error());
    // Pre-approves the key, so an interactive first run does not stop to ask about it.
    if (auto r = render_file("claude.json", "claude-config/.claude.json"); !r) return std::unexpected(r.error());
    out.env["CLAUDE_CONFIG_DIR"] = config_dir.string();
    out.env["ANTHROPIC_BASE_URL"] = in.proxy_url + "/" + in.provider;
    out.env["ANTHROPIC_API_KEY"] = key;
    out.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
    out.env["DISABLE_AUTOUPDATER"] = "1";
    out.env["DISABLE_TELEMETRY"] = "1";
    out.env["DISABLE_ERROR_REPORTING"] = "1";
    if (in.model) out.env["ANTHROPIC_MODEL"] = *in.model;
    // claude refuses permission-skipping flags as root unless told it runs in a sandbox: it does.
    if (in.running_as_root) out.env["IS_SANDBOX"] = "1";
    out.key_vars = {"ANTHROPIC_API_KEY"};
  } else if (program.name == "opencode") {
    values["model"] = in.model.value_or(default_model(in.provider));
    values["sdk_package"] = in.provider == "anthropic" ? "@ai-sdk/anthropic" : "@ai-sdk/openai";
    fs::path config = home / "opencode.json";
    if (auto r = render_file("opencode.json", "opencode.json"); !r) return std::unexpected(r.error());
    // opencode runs `npm install` in its config dirs unless a node_modules is already there.
    for (const char* rel : {"node_modules", "xdg/config/opencode/node_modules"}) {
      if (auto dir = harness_subdir(home_fd, home, rel); !dir) return std::unexpected(dir.error());
    }
    out.env["OPENCODE_CONFIG"] = config.string();
    out.env["OPENCODE_DISABLE_MODELS_FETCH"] = "1";
    out.env["OPENCODE_DISABLE_AUTOUPDATE"] = "1";
    out.env["OPENCODE_DISABLE_LSP_DOWNLOAD"] = "1";
    out.env["OPENCODE_DISABLE_SHARE"] = "1";
  }
  return out;
}

}  // namespace tokfence::harness

namespace tokfence::harness {

namespace {

// Below $HOME: key stores, token files, shell histories (commands typed with secrets in them),
// browser profiles (cookies, saved passwords), and the agents' own real configs and logins.
constexpr const char* kHomeCredentialStores[] = {
    ".ssh", ".gnupg", ".docker", ".aws", ".azure", ".kube", ".config/gcloud", ".config/gh", ".config/hub",
    ".local/share/keyrings", ".password-store", ".netrc", ".git-credentials", ".config/git/credentials", ".npmrc",
    ".pypirc", ".pgpass", ".cargo/credentials.toml", ".cargo/credentials", ".terraform.d/credentials.tfrc.json",
    ".vault-token", ".config/rclone", ".m2/settings.xml", ".gem/credentials", ".bash_history", ".zsh_history",
    ".local/share/fish/fish_history", ".mozilla", ".config/google-chrome", ".config/chromium", ".codex", ".claude",
    ".claude.json", ".config/opencode", ".local/share/opencode", ".tokfence"};

// Only when running as root (an ordinary user cannot read them anyway). SSH host keys are added by
// listing /etc/ssh (ssh_host_*_key, not the .pub halves).
constexpr const char* kRootOnlySecrets[] = {"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
                                            "/etc/sudoers", "/etc/sudoers.d", "/etc/kubernetes", "/etc/rancher",
                                            "/var/lib/rancher", "/var/lib/kubelet", "/root"};

}  // namespace

std::vector<fs::path> sensitive_paths(const std::map<std::string, std::string>& env, const fs::path& tokfence_home,
                                      unsigned uid) {
  std::vector<fs::path> out = {tokfence_home,
                               "/run",
                               "/var/run",
                               "/run/user/" + std::to_string(uid),
                               "/var/run/docker.sock",
                               "/run/docker.sock",
                               "/run/podman",
                               "/var/lib/docker",
                               "/run/dbus",
                               "/var/run/dbus"};
  auto get = [&](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  // A socket named by the environment: hide its directory, unless that directory is one the
  // child legitimately needs whole ($HOME, /, /tmp which is private anyway) - then only the socket.
  const std::string home = get("HOME");
  auto add_socket = [&](std::string path) {
    if (path.empty() || path[0] != '/') return;
    fs::path p(path), dir = p.parent_path();
    if (dir == "/" || dir == fs::path(home) || dir.empty())
      out.push_back(p);
    else
      out.push_back(dir);
  };
  add_socket(get("SSH_AUTH_SOCK"));
  if (auto info = get("GPG_AGENT_INFO"); !info.empty()) add_socket(info.substr(0, info.find(':')));
  if (auto runtime = get("XDG_RUNTIME_DIR"); !runtime.empty() && runtime[0] == '/') out.push_back(runtime);
  for (const char* var : {"DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "CONTAINER_HOST"}) {
    std::string value = get(var);
    for (const char* prefix : {"unix:path=", "unix://"}) {
      auto at = value.find(prefix);
      if (at == std::string::npos) continue;
      std::string path = value.substr(at + std::string_view(prefix).size());
      add_socket(path.substr(0, path.find_first_of(",;")));
    }
  }
  // A deny-list, not an allow-list: everything else the user can read stays readable inside
  // (docs/SANDBOX.md "What stays readable"). These are the common places credentials are kept.
  if (!home.empty() && home[0] == '/') {
    for (const char* rel : kHomeCredentialStores) out.push_back(fs::path(home) / rel);
  }
  // As root the sandbox's uid 0 is the host's, without capabilities but still the owner of root's
  // mode-0600 files: the password hashes, sudo rules, SSH host keys, cluster admin configs and
  // root's own home. /root is brought back where the run needs it (the workdir, the harness home,
  // --allow-write paths below it are mounted back; run.cpp drops it when the workdir is /root).
  if (uid == 0) {
    for (const char* path : kRootOnlySecrets) out.push_back(path);
    std::error_code ec;
    for (fs::directory_iterator it("/etc/ssh", ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with("ssh_host_") && !name.ends_with(".pub")) out.push_back(it->path());
    }
  }
  std::vector<fs::path> existing;
  for (const auto& p : out) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(p, ec)) &&
        std::find(existing.begin(), existing.end(), p) == existing.end())
      existing.push_back(p);
  }
  return existing;
}

}  // namespace tokfence::harness

namespace tokfence::harness {
namespace {

constexpr std::size_t kScrubFileLimit = 32u << 20;
constexpr std::size_t kScrubEntryLimit = 20000;
constexpr int kScrubDepthLimit = 16;

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

// Any capability token ("tfc1." + at least 16 of [A-Za-z0-9._-]) replaced by kDummyKey: tokens of
// runs that were killed before their own scrub, found by the next run's.
bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}
std::string replace_tokens(std::string text) {
  for (std::size_t at = 0; (at = text.find("tfc1.", at)) != std::string::npos;) {
    std::size_t end = at + 5;
    while (end < text.size() && token_char(text[end])) ++end;
    if (end - at - 5 >= 16) {
      text.replace(at, end - at, kDummyKey);
      at += kDummyKey.size();
    } else {
      at = end;
    }
  }
  return text;
}

// One directory of the walk: `dir_fd` was opened without following a link and checked to be ours.
Result<void> scrub_dir(int dir_fd, std::string_view secret, std::string_view tail, int depth, std::size_t& entries,
                       ScrubResult& result) {
  int list_fd = ::dup(dir_fd);
  if (list_fd < 0) return fail(std::string("harness: scrub: dup: ") + std::strerror(errno));
  DIR* dir = ::fdopendir(list_fd);
  if (!dir) {
    ::close(list_fd);
    return fail(std::string("harness: scrub: fdopendir: ") + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  for (const auto& name : names) {
    if (++entries > kScrubEntryLimit) {
      ++result.skipped;
      continue;
    }
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (st.st_uid != ::geteuid()) continue;  // not ours to rewrite (and not written by the program as us)
    if (S_ISDIR(st.st_mode)) {
      if (depth >= kScrubDepthLimit) {
        ++result.skipped;
        continue;
      }
      auto sub = file::open_dir_at(dir_fd, name, file::Create::no);
      if (!sub) continue;  // replaced meanwhile: not followed
      if (auto r = scrub_dir(sub->get(), secret, tail, depth + 1, entries, result); !r) return r;
    } else if (S_ISREG(st.st_mode)) {
      if (static_cast<std::size_t>(st.st_size) > kScrubFileLimit) {
        ++result.skipped;
        continue;
      }
      auto text = file::read_at(dir_fd, name, kScrubFileLimit);
      if (!text) continue;
      if (text->find(secret) == std::string::npos && (tail.empty() || text->find(tail) == std::string::npos) &&
          text->find("tfc1.") == std::string::npos)
        continue;
      std::string clean = replace_all(*text, secret, kDummyKey);
      if (!tail.empty()) clean = replace_all(std::move(clean), tail, kDummyKey);
      clean = replace_tokens(std::move(clean));
      if (clean == *text) continue;
      auto ok = file::write_atomic_at(dir_fd, name, clean, {.mode = static_cast<mode_t>(st.st_mode & 0777), .owner = std::nullopt});
      if (!ok) return fail("harness: scrub: cannot rewrite " + file::describe_fd(dir_fd) + "/" + name);
      ++result.rewritten;
    }
  }
  return {};
}

}  // namespace

Result<ScrubResult> scrub_secret(const fs::path& harness_home, std::string_view secret) {
  ScrubResult result;
  if (secret.size() < kClaudeKeyTail) return fail("harness: scrub: secret too short to look for");
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(harness_home, ec))) return result;
  auto home = file::open_dir_beneath(harness_home.parent_path(), harness_home, file::Create::no);
  if (!home) return std::unexpected(tampered(harness_home, home.error()));
  std::string_view tail = secret.substr(secret.size() - kClaudeKeyTail);
  std::size_t entries = 0;
  if (auto r = scrub_dir(home->get(), secret, tail, 0, entries, result); !r) return std::unexpected(r.error());
  return result;
}

}  // namespace tokfence::harness
