#include "launcher/harness.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

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

// Written to a temporary name first, so a program never reads a half-written config.
Result<void> write_text(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) return fail("harness: cannot create " + path.parent_path().string() + ": " + ec.message());
  fs::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return fail("harness: cannot write " + tmp.string());
  }
  fs::rename(tmp, path, ec);
  if (ec) return fail("harness: cannot write " + path.string() + ": " + ec.message());
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, ec);
  return {};
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
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
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
  if (auto ok = ensure_private_dir(in.harness_home); !ok) return std::unexpected(ok.error());

  const fs::path home = in.harness_home;
  const fs::path tdir = in.templates_dir / "harness" / program.name;
  const std::string key(kDummyKey);
  std::map<std::string, std::string> values = {
      {"proxy_url", in.proxy_url},
      {"provider", in.provider},
      {"dummy_key", key},
      {"dummy_key_tail", key.size() > 20 ? key.substr(key.size() - 20) : key},
  };
  Rendered out;
  // Programs, and the tools they run, keep caches and state under XDG dirs: inside the harness
  // home, which is writable in the sandbox, rather than in the read-only real home.
  for (const char* sub : {"config", "cache", "data", "state"}) {
    std::error_code ec;
    fs::create_directories(home / "xdg" / sub, ec);
    if (ec) return fail("harness: cannot create " + (home / "xdg" / sub).string() + ": " + ec.message());
  }
  out.env["XDG_CONFIG_HOME"] = (home / "xdg" / "config").string();
  out.env["XDG_CACHE_HOME"] = (home / "xdg" / "cache").string();
  out.env["XDG_DATA_HOME"] = (home / "xdg" / "data").string();
  out.env["XDG_STATE_HOME"] = (home / "xdg" / "state").string();
  out.env["TMPDIR"] = in.tmpdir.string();

  auto render_file = [&](const std::string& name, const fs::path& dest) -> Result<void> {
    auto text = read_text(tdir / name);
    if (!text) return std::unexpected(text.error());
    auto filled = fill_template(*text, values, (tdir / name).string());
    if (!filled) return std::unexpected(filled.error());
    if (auto w = write_text(dest, *filled); !w) return w;
    out.files.push_back(dest);
    return {};
  };

  if (program.name == "codex") {
    values["key_var"] = "OPENAI_API_KEY";
    values["model_line"] = in.model ? "model = \"" + *in.model + "\"" : "";
    fs::path codex_home = home / "codex-home";
    if (auto r = render_file("config.toml", codex_home / "config.toml"); !r) return std::unexpected(r.error());
    out.env["CODEX_HOME"] = codex_home.string();
    out.env["OPENAI_API_KEY"] = key;
    out.env["OPENAI_BASE_URL"] = in.proxy_url + "/" + in.provider + "/v1";
    out.dummy_key_vars = {"OPENAI_API_KEY"};
  } else if (program.name == "claude") {
    fs::path config_dir = home / "claude-config";
    if (auto r = render_file("settings.json", config_dir / "settings.json"); !r) return std::unexpected(r.error());
    // Pre-approves the dummy key, so an interactive first run does not stop to ask about it.
    if (auto r = render_file("claude.json", config_dir / ".claude.json"); !r) return std::unexpected(r.error());
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
    out.dummy_key_vars = {"ANTHROPIC_API_KEY"};
  } else if (program.name == "opencode") {
    values["model"] = in.model.value_or(default_model(in.provider));
    values["sdk_package"] = in.provider == "anthropic" ? "@ai-sdk/anthropic" : "@ai-sdk/openai";
    fs::path config = home / "opencode.json";
    if (auto r = render_file("opencode.json", config); !r) return std::unexpected(r.error());
    // opencode runs `npm install` in its config dirs unless a node_modules is already there.
    for (const fs::path& dir : {home, home / "xdg" / "config" / "opencode"}) {
      std::error_code ec;
      fs::create_directories(dir / "node_modules", ec);
      if (ec) return fail("harness: cannot create " + (dir / "node_modules").string() + ": " + ec.message());
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
  if (!home.empty() && home[0] == '/') {
    for (const char* rel : {".ssh", ".gnupg", ".docker", ".aws", ".azure", ".kube", ".config/gcloud", ".config/gh",
                            ".local/share/keyrings", ".password-store", ".netrc", ".git-credentials", ".npmrc",
                            ".pypirc", ".codex", ".claude", ".claude.json", ".config/opencode",
                            ".local/share/opencode", ".tokfence"})
      out.push_back(fs::path(home) / rel);
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
