#pragma once
// What `tokfence launch` hands OpenClaw and Docker, as pure functions of their inputs (no I/O but
// reading the template), so they can be unit-tested without a container:
//  - the OpenClaw config (templates/openclaw/openclaw.json.tmpl) with one `models.providers`
//    entry per provider that has a vault key, every one pointing at the proxy as the container
//    sees it and carrying the launch's session token as its apiKey (ImmuneFence, issue 19);
//  - the container create body: no network, the relay as init, read-only root, no capabilities;
//  - the tar of decoy files put into the container's $HOME before it starts.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/providers.hpp"

namespace tokfence::launcher {

using json = nlohmann::json;

// Inside the container the proxy is the relay's TCP listener on loopback.
inline constexpr int kContainerProxyPort = 9471;
inline constexpr int kGatewayPort = 18789;
// The apiKey of the time before sessions: still what `setup openclaw` prints for a hand-written
// config on the main listener, and RenderRequest's default. A launch renders its session token.
inline constexpr const char* kPlaceholderKey = "tokfence-managed";
inline constexpr const char* kLaunchLabel = "org.tokfence.launch";
// The engine's log of a container: at most this many files of this size (json-file driver).
inline constexpr const char* kLogMaxSize = "10m";
inline constexpr const char* kLogMaxFiles = "3";

// Paths inside the container.
inline constexpr const char* kContainerRelay = "/tokfence/relay";
inline constexpr const char* kContainerConfig = "/tokfence/config/openclaw.json";
inline constexpr const char* kContainerHome = "/tokfence/home";
inline constexpr const char* kContainerWorkspace = "/workspace";
// The proxy socket's directory (host-owned, read-only) and the dashboard socket's (the container
// user's, read-write): see launch.hpp for why they are two.
inline constexpr const char* kContainerSocketDir = "/run/tokfence";
inline constexpr const char* kContainerUiDir = "/run/tokfence-ui";
inline constexpr const char* kProxySocketName = "proxy.sock";
inline constexpr const char* kUiSocketName = "ui.sock";

// "http://127.0.0.1:9471": the proxy as the container sees it (model requests, and the forward
// proxy for every other host: HTTPS_PROXY, OPENCLAW_PROXY_URL).
std::string container_proxy_url();
// The container's environment ("NAME=value"): OPENCLAW_CONFIG_PATH, HOME, TMPDIR, OPENCLAW_PROXY_URL
// and core/egress_env.hpp's proxy variables, all pointing at container_proxy_url(). No key.
json container_env();

// How OpenClaw talks to one provider through the proxy.
struct OpenClawProvider {
  std::string name;
  std::string api;       // openai-completions | anthropic-messages | google-generative-ai
  std::string base_url;  // e.g. http://127.0.0.1:9471/openai/v1
  std::vector<std::string> models;
};

// The OpenClaw `api` for a provider's wire format; nullopt when OpenClaw cannot speak it.
std::optional<std::string> openclaw_api(const ProviderSpec& spec);
// `proxy_root` + "/" + name + the provider's client suffix ("/v1" for OpenAI-style APIs).
std::string proxy_base_url(const ProviderSpec& spec, const std::string& proxy_root);

// The model to make primary for `provider`: a current general-purpose one when listed, else the
// first of `models`.
std::string default_model(const std::string& provider, const std::vector<std::string>& models);

// Orders providers for choosing the default model: anthropic, openai, google, then by name.
std::vector<std::string> provider_priority(std::vector<std::string> names);

struct RenderedConfig {
  std::string text;  // pretty JSON, ends with a newline
  std::vector<OpenClawProvider> providers;
  std::string primary_model;  // "provider/model"
};

// OpenClaw's Telegram channel in a launch (`launch --telegram-secret NAME [--telegram-allow-from ID]...`,
// docs/LAUNCH.md "Telegram"): channels.telegram with botToken = the placeholder
// tokfence-secret:`secret` (never the secret: the proxy swaps it in on the way to api.telegram.org,
// the host the vault binds it to), dmPolicy "allowlist" with `allow_from` (numeric Telegram user
// ids), or OpenClaw's default "pairing" when `allow_from` is empty. An empty `secret`: no channel.
struct TelegramChannel {
  std::string secret;
  std::vector<std::string> allow_from;
};

// Checks the CLI's values: `secret` a vault name, each id 1-20 digits, at most 100, no ids without a
// secret. Errors name the flag.
Result<TelegramChannel> telegram_channel(std::string secret, std::vector<std::string> allow_from);

struct RenderRequest {
  std::vector<OpenClawProvider> providers;  // non-empty; each with at least one model
  std::optional<std::string> model;         // --model provider/model
  std::string gateway_token;
  int gateway_port = kGatewayPort;
  std::string workspace = kContainerWorkspace;
  // OpenClaw's proxy.proxyUrl (managed proxy mode): the launch's listener, which is also the
  // forward proxy its egress policy applies to.
  std::string egress_proxy_url = container_proxy_url();
  // Every provider's apiKey: the launch's session token (a secret; [A-Za-z0-9._-] only).
  std::string api_key = kPlaceholderKey;
  TelegramChannel telegram = {};
};

// Renders `template_text` ({{providers}}, {{primary_model}}, {{gateway_token}}, {{gateway_port}},
// {{workspace}}, {{egress_proxy_url}} are replaced by JSON values), adds channels.telegram when
// `request.telegram` names a secret, and checks the result is one JSON object. Errors: no
// provider, a --model whose provider is not among them (naming `vault add`), a malformed template.
Result<RenderedConfig> render_openclaw_config(const std::string& template_text, const RenderRequest& request);

// The template: $TOKFENCE_TEMPLATES_DIR, else the source tree's templates/, else next to the binary
// (../share/tokfence/templates).
Result<std::string> read_template(const std::string& relative_path);

// 48 hex characters from the system CSPRNG: the gateway token (not a provider key).
std::string random_token();

// Container names: Docker's rule [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}; they also name host directories.
Result<void> check_launch_name(const std::string& name);

// "1000:1000" -> {1000, 1000}; "1000" -> {1000, 1000}; names -> nullopt.
std::optional<std::pair<unsigned, unsigned>> numeric_user(const std::string& user);

// The container's uid and gid when `launch` runs as root and no --user is given: one id (uid = gid)
// no host account has, so that no host user shares the agent's uid. A shared uid is the agent's
// user as far as the kernel is concerned: that user reads /proc/<pid>/root (the session token in
// the rendered config, the proxy socket as the container sees it), signals and ptraces the agent.
// Debian's policy (9.2.2) reserves 65000..65533 ("never allocated"; 65534 is nobody, 65535 is
// (uint16_t)-1), and adduser/useradd hand out ids from 1000 up, so an id here is normally
// nobody's; launch still checks each one (container_id_taken) and takes the first that is free.
// They also fit a ustar header's 7 octal digits (home_archive).
inline constexpr unsigned kDedicatedIdFirst = 65000;
inline constexpr unsigned kDedicatedIdLast = 65533;
// Tried first: 65520..65533 lies above systemd's DynamicUser= range (61184..65519), whose ids
// nss-systemd knows only while their service runs, so a service started after the launch could be
// given the container's uid (review 13a O3).
inline constexpr unsigned kDedicatedIdPreferred = 65520;

// The [first, first + count) ranges of an /etc/subuid or /etc/subgid text ("owner:first:count"
// per line). Lines that do not parse are skipped. Rootless containers of other users run as ids in
// these ranges, so they are not free either.
std::vector<std::pair<std::uint64_t, std::uint64_t>> subordinate_ranges(std::string_view text);

// The first id in [first, last] for which `taken` is false; nullopt when every one is taken.
std::optional<unsigned> first_free_id(unsigned first, unsigned last, const std::function<bool(unsigned)>& taken);

// The container id launch picks as root: the first of kDedicatedIdPreferred..kDedicatedIdLast,
// then of kDedicatedIdFirst..kDedicatedIdPreferred-1, for which `taken` is false.
std::optional<unsigned> first_free_dedicated_id(const std::function<bool(unsigned)>& taken);

// The ids on the "Uid:" line of a /proc/<pid>/status text (real, effective, saved set, file
// system); empty when there is no such line or it does not parse.
std::vector<unsigned> status_uids(std::string_view status);

// The largest uid or gid a ustar header holds in octal (7 digits); home_archive writes larger ones
// in GNU base-256.
inline constexpr unsigned kUstarMaxId = 07777777;

// "2g", "512m", "1073741824" -> bytes; nullopt for anything else or below 64 MiB.
std::optional<std::int64_t> parse_memory(const std::string& text);

struct ContainerSpecInput {
  std::string name;
  std::string image;
  std::vector<std::string> command;  // what the relay runs (image entrypoint + cmd, or the override)
  std::string user;                  // "65000:65000"
  std::int64_t memory_bytes = 0;
  std::int64_t pids_limit = 0;
  bool detach = false;
  int launcher_pid = 0;  // foreground: the supervising tokfence (a dead one marks a leftover)
  std::string home_root;
  // Host paths. `proxy_socket_dir` is mounted read-only, `ui_socket_dir` read-write.
  std::filesystem::path relay_binary, proxy_socket_dir, ui_socket_dir, config_file, state_home, workspace;
  // Paths relative to `workspace` bound over themselves inside /workspace, after the workspace
  // (e.g. ".git" read-write, so it cannot be renamed away, and ".git/hooks" read-only).
  struct WorkspaceBind {
    std::string relative;
    bool read_only = true;
  };
  std::vector<WorkspaceBind> workspace_binds;
  // Rootless Podman: map our uid and gid to themselves in the container (UsernsMode "keep-id").
  bool keep_host_ids = false;
  // The session's decoy variables (GH_TOKEN), added to container_env(). Never a key.
  std::vector<std::pair<std::string, std::string>> decoy_env = {};
  // --secret placeholders (VAR, "tokfence-secret:NAME"). Never a secret.
  std::vector<std::pair<std::string, std::string>> secret_env = {};
  // Host files bound read-only over /etc/passwd and /etc/group (container_accounts); none: the image's.
  std::filesystem::path passwd_file = {}, group_file = {};
  // What each bind's source was when the container was made (device and inode), by its path in the
  // container: the relay checks them at every start, before the agent runs (`--expect-mount`).
  struct MountIdentity {
    std::string container_path;
    std::uint64_t dev = 0, ino = 0;
    // statfs's f_fsid (0: none): the same file system after a reboot even where st_dev is not
    // stable (btrfs subvolumes, NFS, LVM: review 15e E3).
    std::uint64_t fsid = 0;
  };
  std::vector<MountIdentity> expected_mounts = {};
};

// The container's /etc/passwd and /etc/group, bound read-only over the image's. The ids a launch
// picks (65520.., docs/LAUNCH.md) are in no image's account files, and software that looks its own
// uid up fails without an entry: node's os.userInfo() throws, whoami, git's committer identity and
// ssh refuse. Read-only and written by the host, so the agent cannot add an account either.
struct ContainerAccounts {
  std::string passwd, group;
};
ContainerAccounts container_accounts(unsigned uid, unsigned gid);

// The body of POST /containers/create: NetworkMode none, the relay as entrypoint forwarding
// 127.0.0.1:9471 -> /run/tokfence/proxy.sock (read-only mount) and /run/tokfence-ui/ui.sock ->
// 127.0.0.1:18789, all capabilities dropped, no-new-privileges, read-only root with a tmpfs /tmp,
// pids and memory limits, labels for finding leftovers. The environment holds no key.
json container_spec(const ContainerSpecInput& input);

// A tar (ustar, built in memory) of `files` (paths relative to the container's $HOME, as
// decoys_from_json checked them) for PUT /containers/{id}/archive?path=$HOME: every directory on
// the way as its own entry (0700) and every file (0600), all owned by `uid`:`gid`, so the engine
// creates nothing as root. The engine replaces whatever is at those names (a planted symlink
// included) instead of following it. A uid or gid above kUstarMaxId (7 octal digits) is written in
// the GNU base-256 form. Errors: a path that does not fit a ustar header.
struct ArchiveFile {
  std::string path;
  std::string content;
};
Result<std::string> home_archive(const std::vector<ArchiveFile>& files, unsigned uid, unsigned gid);

}  // namespace tokfence::launcher
