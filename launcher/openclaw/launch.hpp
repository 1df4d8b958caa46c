#pragma once
// `tokfence launch`: OpenClaw (or any image) in a Docker container whose only way out is the proxy.
//
// The container runs with NetworkMode "none". Its one link to the world is a per-launch socket
// directory TOKFENCE_HOME/sockets/launch-<name>/ (ours, 0700) with two subdirectories:
//   proxy/proxy.sock  created by the daemon (open_proxy_socket, mode 0666) in a directory that is
//                     ours and mounted READ-ONLY at /run/tokfence; serves proxy routes only and logs
//                     every request with caller "openclaw:<name>";
//   ui/ui.sock        created inside the container by the relay in a directory that is the
//                     container user's, mounted read-write at /run/tokfence-ui; forwards to
//                     OpenClaw's gateway. The host only reaches it through a descriptor of ui/,
//                     never by path, and never follows a link there (docs/LAUNCH.md).
// The static tokfence-relay, bind-mounted read-only at /tokfence/relay, is the container's init: it
// serves 127.0.0.1:9471 inside the container (relayed to proxy.sock), serves ui.sock, and runs the
// image's entrypoint+command (or the arguments after `--`) as its child. On the host another relay
// listens on 127.0.0.1:<port> only and forwards to ui.sock (relay endpoint unixat:), for the dashboard.
//
// The container gets no control socket, no Docker socket, no TOKFENCE_HOME and no key: only the
// socket directory, the rendered config (read-only), its state home and its workspace.
//
// Every resource carries the label org.tokfence.launch=<name> (and org.tokfence.home=<home>), so a
// later launch finds and removes what a crashed one left behind.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/home.hpp"
#include "launcher/openclaw/config.hpp"
#include "launcher/openclaw/image.hpp"

namespace tokfence::launcher {

struct LaunchOptions {
  std::string name = "tokfence-openclaw";
  // The pinned OpenClaw image tokfence builds from npm (image.hpp); never pulled.
  std::string image = default_image_tag();
  bool pull = true;
  // An absent image that cannot be pulled is built from npm (image.hpp) instead of an error.
  bool build_image = false;
  std::filesystem::path image_cache;  // "" = default_image_cache()
  // Runs `openclaw config validate` in the image on the rendered config before the start (for
  // images that are OpenClaw: tokfence-built, or whose command is openclaw).
  bool validate_config = true;
  bool detach = false;
  bool json = false;
  bool open_browser = false;  // --open: opt-in (the URL holds the gateway token)
  int port = 18789;  // dashboard on the host's loopback; 0 = any free port
  // The host-side dashboard relay. The CLI turns it off for a command after `--` (a one-shot run
  // has no gateway) unless --port is given.
  bool dashboard = true;
  std::optional<std::string> model;
  std::optional<std::filesystem::path> workspace;
  std::string user;  // "" = as root an id no host account has (65000..65533), else the caller's uid:gid
  std::string memory = "2g";
  std::int64_t pids_limit = 1024;
  int stop_timeout_seconds = 10;
  std::vector<std::string> command;  // after `--`: replaces the image's command
  // open_proxy_socket's "egress" field ({"allow": [...], "presets": [...]}, checked by the CLI);
  // null: no host besides the model proxy. The container's HTTP clients are pointed at the
  // launch's listener as their forward proxy either way (docs/EGRESS.md).
  nlohmann::json egress;
  // --secret VAR=NAME, checked by the CLI (core/egress_env.hpp parse_secret_flag): the container's
  // VAR holds the placeholder tokfence-secret:NAME, never the secret.
  std::vector<std::pair<std::string, std::string>> secrets;
  // --telegram-secret/--telegram-allow-from (checked by the CLI: telegram_channel): rendered into
  // the config as channels.telegram, its botToken the placeholder.
  TelegramChannel telegram;
};

// Runs a launch. Foreground: streams the container's logs until it exits (or SIGINT/SIGTERM stops
// it), removes everything the launch created and returns the container's exit status. Detached:
// returns 0 once the container runs. Throws UserError on bad input and faults, after cleaning up.
int run_launch(const Home& home, const Config& config, const LaunchOptions& options);

struct LaunchTarget {
  std::string name = "tokfence-openclaw";
  bool json = false;
};

// `launch status`: 0 when running, 3 when not.
int launch_status(const Home& home, const LaunchTarget& target);
// `launch stop`: stops and removes the container and everything the launch created.
int launch_stop(const Home& home, const LaunchTarget& target, int timeout_seconds);
// `launch logs [-f]`.
int launch_logs(const Home& home, const LaunchTarget& target, bool follow, int tail, bool raw);
// `launch restart`: restarts the container (and the host's dashboard relay of a detached launch).
int launch_restart(const Home& home, const LaunchTarget& target, int timeout_seconds);
// `launch config`: the rendered config's path and content.
int launch_config(const Home& home, const LaunchTarget& target);

struct SetupOptions {
  std::optional<std::string> provider;
  bool test = false;
  bool json = false;
};
// `setup openclaw`: the proxy base URL and a models.providers snippet; with `test`, the checks
// daemon_reachable and provider_has_key (non-zero exit when one fails).
int setup_openclaw(const Home& home, const Config& config, const SetupOptions& options);

}  // namespace tokfence::launcher
