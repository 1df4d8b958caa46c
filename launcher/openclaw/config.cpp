#include "launcher/openclaw/config.hpp"

#include "core/egress_env.hpp"
#include "core/file.hpp"
#include "core/names.hpp"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#ifndef TOKFENCE_TEMPLATES_DIR
#define TOKFENCE_TEMPLATES_DIR ""
#endif

namespace tokfence::launcher {

namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  std::size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

std::string self_dir() { return file::self_exe().parent_path().string(); }

}  // namespace

std::optional<std::string> openclaw_api(const ProviderSpec& spec) {
  switch (spec.style) {
    case ApiStyle::openai: return std::string("openai-completions");
    case ApiStyle::anthropic: return std::string("anthropic-messages");
    case ApiStyle::gemini: return std::string("google-generative-ai");
  }
  return std::nullopt;
}

std::string proxy_base_url(const ProviderSpec& spec, const std::string& proxy_root) {
  return proxy_root + "/" + spec.name + spec.client_base_suffix;
}

std::string default_model(const std::string& provider, const std::vector<std::string>& models) {
  // A current general-purpose model where the table has one; the table itself is alphabetical.
  static const std::map<std::string, std::vector<std::string>> preferred = {
      {"anthropic", {"claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet"}},
      {"openai", {"gpt-5", "gpt-4.1", "gpt-4o"}},
      {"google", {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"}},
      {"mistral", {"mistral-large", "mistral-medium"}},
      {"deepseek", {"deepseek-chat"}},
  };
  if (auto it = preferred.find(provider); it != preferred.end())
    for (const auto& want : it->second)
      if (std::find(models.begin(), models.end(), want) != models.end()) return want;
  return models.empty() ? std::string{} : models.front();
}

std::vector<std::string> provider_priority(std::vector<std::string> names) {
  auto rank = [](const std::string& name) {
    if (name == "anthropic") return 0;
    if (name == "openai") return 1;
    if (name == "google") return 2;
    return 3;
  };
  std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return rank(a) != rank(b) ? rank(a) < rank(b) : a < b;
  });
  return names;
}

Result<TelegramChannel> telegram_channel(std::string secret, std::vector<std::string> allow_from) {
  if (secret.empty()) {
    if (!allow_from.empty()) return fail("launch: --telegram-allow-from: needs --telegram-secret NAME (the bot token's vault name)");
    return TelegramChannel{};
  }
  if (!check_provider_name(secret)) return fail("launch: --telegram-secret: vault name must match [a-z0-9][a-z0-9_-]{0,31}");
  if (allow_from.size() > 100) return fail("launch: --telegram-allow-from: at most 100 user ids");
  for (const auto& id : allow_from) {
    bool digits = !id.empty() && id.size() <= 20 &&
                  std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
      // A few characters only: a bot token pasted here by mistake must not be echoed.
      std::string shown = id.substr(0, 8);
      for (auto& c : shown)
        if (c < 0x20 || c >= 0x7f) c = '?';
      if (id.size() > 8) shown += "...";
      return fail("launch: --telegram-allow-from: not a numeric Telegram user id: '" + shown + "'");
    }
  }
  return TelegramChannel{std::move(secret), std::move(allow_from)};
}

Result<RenderedConfig> render_openclaw_config(const std::string& template_text, const RenderRequest& request) {
  if (request.providers.empty())
    return fail("launch: no provider has a key: run 'tokfence vault add openai -' (or another provider) first");
  json providers = json::object();
  std::vector<std::string> names;
  for (const auto& p : request.providers) {
    if (p.models.empty()) return fail("launch: provider '" + p.name + "': no models known: pass --model " + p.name + "/<model>");
    json models = json::array();
    for (const auto& m : p.models) models.push_back({{"id", m}, {"name", m}});
    providers[p.name] = {{"baseUrl", p.base_url}, {"apiKey", request.api_key}, {"api", p.api}, {"models", models}};
    names.push_back(p.name);
  }

  std::string primary;
  if (request.model) {
    auto slash = request.model->find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == request.model->size())
      return fail("launch: --model: expected provider/model: " + *request.model);
    std::string provider = request.model->substr(0, slash);
    if (std::find(names.begin(), names.end(), provider) == names.end())
      return fail("launch: --model: provider '" + provider + "' has no key: run 'tokfence vault add " + provider + " -'");
    primary = *request.model;
  } else {
    std::string first = provider_priority(names).front();
    for (const auto& p : request.providers)
      if (p.name == first) primary = first + "/" + default_model(p.name, p.models);
  }

  std::string text = template_text;
  text = replace_all(text, "{{providers}}", providers.dump());
  text = replace_all(text, "{{primary_model}}", json(primary).dump());
  text = replace_all(text, "{{gateway_token}}", json(request.gateway_token).dump());
  text = replace_all(text, "{{gateway_port}}", std::to_string(request.gateway_port));
  text = replace_all(text, "{{workspace}}", json(request.workspace).dump());
  text = replace_all(text, "{{egress_proxy_url}}", json(request.egress_proxy_url).dump());
  if (text.find("{{") != std::string::npos) {
    auto at = text.find("{{");
    return fail("launch: template openclaw.json.tmpl: unknown placeholder: " + text.substr(at, text.find("}}", at) - at + 2));
  }
  auto parsed = json::parse(text, nullptr, false, /*ignore_comments=*/true);
  if (!parsed.is_object()) return fail("launch: template openclaw.json.tmpl: does not render to a JSON object");

  // A --model the pricing table does not know must still be listed, or OpenClaw rejects it.
  if (request.model) {
    auto slash = request.model->find('/');
    std::string provider = request.model->substr(0, slash), model = request.model->substr(slash + 1);
    auto* entry = parsed.contains("models") ? &parsed["models"]["providers"][provider]["models"] : nullptr;
    if (entry && entry->is_array()) {
      bool listed = std::any_of(entry->begin(), entry->end(), [&](const json& m) { return m.value("id", "") == model; });
      if (!listed) entry->insert(entry->begin(), json{{"id", model}, {"name", model}});
    }
  }
  // Telegram: the bot token is the placeholder; who may talk to the bot is an explicit list, or
  // OpenClaw's pairing (its default) when there is none.
  if (!request.telegram.secret.empty()) {
    json telegram = {{"enabled", true},
                     {"botToken", secret_placeholder(request.telegram.secret)},
                     {"dmPolicy", request.telegram.allow_from.empty() ? "pairing" : "allowlist"}};
    if (!request.telegram.allow_from.empty()) telegram["allowFrom"] = request.telegram.allow_from;
    parsed["channels"]["telegram"] = telegram;
  }
  RenderedConfig out;
  out.text = parsed.dump(2) + "\n";
  out.providers = request.providers;
  out.primary_model = primary;
  return out;
}

Result<std::string> read_template(const std::string& relative_path) {
  std::vector<std::filesystem::path> candidates;
  if (const char* dir = std::getenv("TOKFENCE_TEMPLATES_DIR"); dir && *dir) candidates.emplace_back(dir);
  if (std::string(TOKFENCE_TEMPLATES_DIR).size()) candidates.emplace_back(TOKFENCE_TEMPLATES_DIR);
  if (auto dir = self_dir(); !dir.empty()) candidates.push_back(std::filesystem::path(dir) / "../share/tokfence/templates");
  for (const auto& dir : candidates) {
    std::ifstream in(dir / relative_path);
    if (!in) continue;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  return fail("launch: template not found: " + relative_path + ": set TOKFENCE_TEMPLATES_DIR to tokfence's templates/");
}

std::string random_token() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no CSPRNG: nothing sensible to do
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

Result<void> check_launch_name(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 63 && std::isalnum(static_cast<unsigned char>(name[0]));
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') ok = false;
  if (!ok) return fail("launch: --name: must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}: " + name);
  return {};
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> subordinate_ranges(std::string_view text) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  auto number = [](std::string_view t) -> std::optional<std::uint64_t> {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) return std::nullopt;
    return v;
  };
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    auto c1 = line.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    auto first = number(line.substr(c1 + 1, c2 - c1 - 1));
    auto count = number(line.substr(c2 + 1));
    if (first && count && *count > 0 && *first <= UINT32_MAX && *count <= UINT32_MAX) out.emplace_back(*first, *first + *count);
  }
  return out;
}

std::optional<unsigned> first_free_id(unsigned first, unsigned last, const std::function<bool(unsigned)>& taken) {
  for (unsigned id = first; id <= last && id >= first; ++id)
    if (!taken(id)) return id;
  return std::nullopt;
}

std::optional<unsigned> first_free_dedicated_id(const std::function<bool(unsigned)>& taken) {
  if (auto id = first_free_id(kDedicatedIdPreferred, kDedicatedIdLast, taken)) return id;
  return first_free_id(kDedicatedIdFirst, kDedicatedIdPreferred - 1, taken);
}

std::vector<unsigned> status_uids(std::string_view status) {
  std::vector<unsigned> out;
  for (std::size_t at = 0; at < status.size();) {
    const auto end = std::min(status.find('\n', at), status.size());
    std::string_view line = status.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with("Uid:")) continue;
    line.remove_prefix(4);
    while (!line.empty()) {
      const auto digits = line.find_first_not_of(" \t");
      if (digits == std::string_view::npos) break;
      line.remove_prefix(digits);
      unsigned value = 0;
      auto [next, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
      if (ec != std::errc{}) return {};
      out.push_back(value);
      line.remove_prefix(static_cast<std::size_t>(next - line.data()));
    }
    return out;
  }
  return out;
}

std::optional<std::pair<unsigned, unsigned>> numeric_user(const std::string& user) {
  auto parse = [](std::string_view text) -> std::optional<unsigned> {
    unsigned value = 0;
    if (text.empty()) return std::nullopt;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
  };
  auto colon = user.find(':');
  auto uid = parse(std::string_view(user).substr(0, colon));
  if (!uid) return std::nullopt;
  if (colon == std::string::npos) return std::pair{*uid, *uid};
  auto gid = parse(std::string_view(user).substr(colon + 1));
  if (!gid) return std::nullopt;
  return std::pair{*uid, *gid};
}

std::optional<std::int64_t> parse_memory(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || value <= 0) return std::nullopt;
  std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  std::int64_t multiplier = 1;
  if (suffix == "" || suffix == "b") multiplier = 1;
  else if (suffix == "k" || suffix == "K") multiplier = 1LL << 10;
  else if (suffix == "m" || suffix == "M") multiplier = 1LL << 20;
  else if (suffix == "g" || suffix == "G") multiplier = 1LL << 30;
  else return std::nullopt;
  if (value > (std::int64_t{1} << 50) / multiplier) return std::nullopt;
  std::int64_t bytes = value * multiplier;
  if (bytes < (64LL << 20)) return std::nullopt;
  return bytes;
}

std::string container_proxy_url() { return "http://127.0.0.1:" + std::to_string(kContainerProxyPort); }

// The container's own variables. Every HTTP client is pointed at the relay's loopback listener as
// its forward proxy (the daemon's egress policy decides, docs/EGRESS.md); OpenClaw's managed proxy
// mode gets it too (it is also in the rendered config as proxy.proxyUrl). No key, nothing inherited.
json container_env() {
  json env = json::array({std::string("OPENCLAW_CONFIG_PATH=") + kContainerConfig, std::string("HOME=") + kContainerHome,
                          "TMPDIR=/tmp", "OPENCLAW_PROXY_URL=" + container_proxy_url()});
  for (const auto& [name, value] : egress_proxy_env(container_proxy_url())) env.push_back(name + "=" + value);
  // The local CA's files in the read-only proxy directory (launch.cpp writes them there).
  const std::string ca_dir = std::string(kContainerSocketDir) + "/";
  for (const auto& [name, value] :
       egress_ca_env(ca_dir + std::string(kFenceCaFile), ca_dir + std::string(kFenceCaBundleFile)))
    env.push_back(name + "=" + value);
  return env;
}

ContainerAccounts container_accounts(unsigned uid, unsigned gid) {
  // The accounts images commonly run or own files as (root, OpenClaw's image user node, nobody),
  // then the container user, named for what it runs, with the container's HOME.
  struct Account {
    const char* name;
    unsigned id;
    const char* home;
    const char* shell;
  };
  static constexpr Account kKnown[] = {{"root", 0, "/root", "/bin/sh"},
                                       {"node", 1000, "/home/node", "/bin/sh"},
                                       {"nobody", 65534, "/nonexistent", "/usr/sbin/nologin"}};
  static constexpr const char* kKnownGroups[] = {"root", "node", "nogroup"};
  ContainerAccounts out;
  bool uid_known = false, gid_known = false;
  for (std::size_t i = 0; i < std::size(kKnown); ++i) {
    const Account& a = kKnown[i];
    out.passwd += std::string(a.name) + ":x:" + std::to_string(a.id) + ":" + std::to_string(a.id) + ":" + a.name +
                  ":" + a.home + ":" + a.shell + "\n";
    out.group += std::string(kKnownGroups[i]) + ":x:" + std::to_string(a.id) + ":\n";
    uid_known = uid_known || a.id == uid;
    gid_known = gid_known || a.id == gid;
  }
  if (!gid_known) out.group += "openclaw:x:" + std::to_string(gid) + ":\n";
  // A uid one of the known accounts has (--user 1000, a non-root launch by uid 1000) keeps its name.
  if (!uid_known)
    out.passwd += "openclaw:x:" + std::to_string(uid) + ":" + std::to_string(gid) + ":OpenClaw (tokfence launch):" +
                  kContainerHome + ":/bin/sh\n";
  return out;
}

json container_spec(const ContainerSpecInput& input) {
  const std::string proxy_dir = kContainerSocketDir, ui_dir = kContainerUiDir;
  json cmd = json::array({"--forward", "tcp:127.0.0.1:" + std::to_string(kContainerProxyPort) + "=unix:" + proxy_dir + "/" + kProxySocketName,
                          "--forward", "unix:" + ui_dir + "/" + kUiSocketName + "=tcp:127.0.0.1:" + std::to_string(kGatewayPort)});
  // The engine resolves every bind's source by host path at each start, restarts included; a
  // source another principal renamed and replaced since (a second agent writing a parent of the
  // workspace: review 15c X1) would be mounted in its place. The relay refuses to start then.
  for (const auto& m : input.expected_mounts) {
    cmd.push_back("--expect-mount");
    cmd.push_back(m.container_path + "=" + std::to_string(m.dev) + ":" + std::to_string(m.ino) + ":" + std::to_string(m.fsid));
  }
  cmd.push_back("--");
  for (const auto& arg : input.command) cmd.push_back(arg);

  json binds = json::array({
      input.relay_binary.string() + ":" + kContainerRelay + ":ro",
      // Read-only: connect() works through it, but the container can neither replace proxy.sock nor
      // plant anything beside it for the host to trip over.
      input.proxy_socket_dir.string() + ":" + proxy_dir + ":ro",
      input.ui_socket_dir.string() + ":" + ui_dir,
      input.config_file.string() + ":" + kContainerConfig + ":ro",
      input.state_home.string() + ":" + kContainerHome,
      input.workspace.string() + ":" + kContainerWorkspace,
  });
  if (!input.passwd_file.empty()) binds.push_back(input.passwd_file.string() + ":/etc/passwd:ro");
  if (!input.group_file.empty()) binds.push_back(input.group_file.string() + ":/etc/group:ro");
  // After the workspace, so they land on top of it (Docker mounts parents first).
  for (const auto& bind : input.workspace_binds)
    binds.push_back((input.workspace / bind.relative).string() + ":" + kContainerWorkspace + "/" + bind.relative +
                    (bind.read_only ? ":ro" : ""));
  json labels = {
      {kLaunchLabel, input.name},
      {"org.tokfence.home", input.home_root},
      {"org.tokfence.mode", input.detach ? "detach" : "foreground"},
      {"org.tokfence.pid", std::to_string(input.launcher_pid)},
  };
  json host_config = {
      {"NetworkMode", "none"},
      {"Binds", binds},
      {"CapDrop", json::array({"ALL"})},
      {"SecurityOpt", json::array({"no-new-privileges"})},
      {"ReadonlyRootfs", true},
      {"Tmpfs", {{"/tmp", "rw,nosuid,nodev,size=512m"}}},
      {"PidsLimit", input.pids_limit},
      {"Memory", input.memory_bytes},
      {"MemorySwap", input.memory_bytes},  // no swap beyond the memory limit
      {"Privileged", false},
      {"IpcMode", "private"},
      {"RestartPolicy", {{"Name", input.detach ? "unless-stopped" : "no"}}},
      // What the container prints goes to a file on the host's disk that the engine keeps until
      // the container is removed: bounded, or a container that prints without end fills the disk
      // the request log lives on (review 15b L3). `launch logs` shows the last ~30 MiB.
      {"LogConfig", {{"Type", "json-file"}, {"Config", {{"max-size", kLogMaxSize}, {"max-file", kLogMaxFiles}}}}},
  };
  if (input.keep_host_ids) host_config["UsernsMode"] = "keep-id";
  json env = container_env();
  for (const auto& [name, value] : input.decoy_env) env.push_back(name + "=" + value);
  for (const auto& [name, value] : input.secret_env) env.push_back(name + "=" + value);
  return json{
      {"Image", input.image},
      {"Entrypoint", json::array({kContainerRelay})},
      {"Cmd", cmd},
      {"User", input.user},
      {"Env", env},
      {"WorkingDir", kContainerWorkspace},
      {"Tty", false},
      {"OpenStdin", false},
      {"AttachStdin", false},
      {"AttachStdout", false},
      {"AttachStderr", false},
      {"Labels", labels},
      {"HostConfig", host_config},
  };
}

namespace {

// One 512-byte ustar header. Numeric fields are octal, NUL-terminated; the checksum is computed
// with its own field as spaces.
// A uid or gid field (8 bytes): 7 octal digits and a NUL up to kUstarMaxId; above it the GNU
// base-256 form (0x80, then the value big-endian), which the engines' tar readers (Go's
// archive/tar) take: octal digits would spill into the next field.
std::string id_field(unsigned id) {
  if (id <= kUstarMaxId) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "%07o", id);
    return std::string(buffer, 7) + std::string(1, '\0');
  }
  std::string field(8, '\0');
  field[0] = static_cast<char>(0x80);
  for (int i = 7; i >= 4; --i, id >>= 8) field[static_cast<std::size_t>(i)] = static_cast<char>(id & 0xff);
  return field;
}

std::string tar_header(const std::string& name, char type, unsigned mode, unsigned uid, unsigned gid, std::size_t size) {
  std::string h(512, '\0');
  auto put = [&](std::size_t at, const std::string& text) { h.replace(at, text.size(), text); };
  auto octal = [](unsigned long long value, std::size_t width) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%0*llo", static_cast<int>(width - 1), value);
    return std::string(buffer);
  };
  put(0, name);
  put(100, octal(mode, 8));
  put(108, id_field(uid));
  put(116, id_field(gid));
  put(124, octal(size, 12));
  put(136, octal(static_cast<unsigned long long>(std::time(nullptr)), 12));
  h[156] = type;
  put(257, std::string("ustar\0", 6));
  put(263, "00");
  h.replace(148, 8, std::string(8, ' '));
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::string check = octal(sum, 7);
  h.replace(148, 7, check + std::string(1, '\0'));
  return h;
}

}  // namespace

Result<std::string> home_archive(const std::vector<ArchiveFile>& files, unsigned uid, unsigned gid) {
  std::string tar;
  std::vector<std::string> dirs;
  for (const auto& f : files) {
    if (f.path.empty() || f.path.size() > 99 || f.path.front() == '/' || f.path.find("..") != std::string::npos)
      return fail("launch: decoy path does not fit the archive: " + f.path);
    for (std::size_t at = f.path.find('/'); at != std::string::npos; at = f.path.find('/', at + 1)) {
      std::string dir = f.path.substr(0, at + 1);
      if (std::find(dirs.begin(), dirs.end(), dir) != dirs.end()) continue;
      dirs.push_back(dir);
      tar += tar_header(dir, '5', 0700, uid, gid, 0);
    }
    tar += tar_header(f.path, '0', 0600, uid, gid, f.content.size());
    tar += f.content;
    tar.append((512 - f.content.size() % 512) % 512, '\0');
  }
  tar.append(1024, '\0');
  return tar;
}

}  // namespace tokfence::launcher
