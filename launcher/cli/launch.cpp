// `tokfence launch` (OpenClaw in Docker behind the proxy) and `tokfence setup openclaw`.
#include <memory>

#include "core/egress_env.hpp"
#include "launcher/cli/cli.hpp"
#include "launcher/openclaw/image.hpp"
#include "launcher/openclaw/launch.hpp"

namespace tokfence::cli {

namespace {

// The engine every launch command talks to: DOCKER_HOST, else `[launch] engine_socket`, else
// /var/run/docker.sock (docker_socket_from_env). Reads the config, so a bad config.toml stops
// the command with its positioned error before any engine is touched.
void use_configured_engine(Context& ctx) {
  launcher::set_configured_engine_socket(ctx.config().launch.engine_socket.string());
}

void add_target_flags(CLI::App* cmd, launcher::LaunchTarget& target) {
  cmd->add_option("--name", target.name, "the launch's name (container name)")->capture_default_str();
  cmd->add_flag("--json", target.json, "print JSON");
}

}  // namespace

void register_launch_commands(CLI::App& app, Context& ctx) {
  auto options = std::make_shared<launcher::LaunchOptions>();
  auto no_pull = std::make_shared<bool>(false);
  auto no_open = std::make_shared<bool>(false);
  auto workspace = std::make_shared<std::string>();
  auto model = std::make_shared<std::string>();
  auto no_validate = std::make_shared<bool>(false);
  auto image_cache = std::make_shared<std::string>();
  auto egress_allow = std::make_shared<std::vector<std::string>>();
  auto egress_presets = std::make_shared<std::vector<std::string>>();
  auto secrets = std::make_shared<std::vector<std::string>>();

  auto* launch = app.add_subcommand(
      "launch",
      "Run OpenClaw in Docker with no key and no network: its only way out is the tokfence proxy.\n"
      "The container has NetworkMode none; a per-launch Unix socket carries its API traffic to the\n"
      "daemon (logged with caller openclaw:<name>, under your budgets, revoke and kill), another\n"
      "carries the dashboard to http://127.0.0.1:<port> on the host. Arguments after -- replace the\n"
      "image's command.\n"
      "Other hosts (chat channels, web search, registries) only through tokfence's forward proxy, which\n"
      "HTTPS_PROXY and OPENCLAW_PROXY_URL point at, and only those --allow/--egress-preset name\n"
      "(deny by default; change them live with 'tokfence egress').\n"
      "The default image is OpenClaw " + std::string(launcher::kOpenClawVersion) + " (the version tokfence's config is validated\n"
      "against), built locally from npm when absent (see 'launch image'); --build-image builds another\n"
      "absent --image the same way instead of failing.\n"
      "With no key in the vault, launch asks for one on a terminal.\n"
      "Examples:\n"
      "  tokfence launch                  # first run builds the image and asks for a key; Ctrl-C stops it\n"
      "  tokfence launch --detach --port 18790 --open\n"
      "  tokfence launch --egress-preset telegram --allow api.search.brave.com\n"
      "  tokfence launch -- openclaw --log-level error agent --local --agent main --message ping");
  launch->add_option("--name", options->name, "container name")->capture_default_str();
  launch->add_option("--image", options->image, "image to run")->capture_default_str();
  launch->add_flag("--no-pull", *no_pull, "fail instead of pulling a missing image");
  launch->add_flag("--build-image", options->build_image,
                   "build an absent image from npm (OpenClaw " + std::string(launcher::kOpenClawVersion) + ") instead of failing");
  launch->add_option("--image-cache", *image_cache, "cache directory of --build-image (default ~/.cache/tokfence/openclaw-image)");
  launch->add_flag("--no-validate", *no_validate, "skip 'openclaw config validate' in the image before the start");
  launch->add_flag("-d,--detach", options->detach, "leave it running (restart policy unless-stopped)");
  launch->add_flag("--json", options->json, "print container id, dashboard URL, providers, model, config path, status as JSON");
  launch->add_flag("--open", options->open_browser,
                   "open the dashboard in a browser (xdg-open from PATH gets a 0600 page that redirects to the URL:\n"
                   "the token is never on a command line)");
  // The default now; still accepted so existing scripts keep working.
  launch->add_flag("--no-open", *no_open, "")->group("");
  launch->add_option("--port", options->port, "dashboard port on 127.0.0.1 (0 = any free port)")->capture_default_str();
  launch->add_option("--model", *model, "primary model as provider/model (default: from anthropic, openai, google, ...)");
  launch->add_option("--workspace", *workspace, "host directory mounted as the agent's workspace (default: TOKFENCE_HOME/openclaw/<name>/workspace)");
  launch->add_option("--user", options->user, "container user UID[:GID] (default: as root the first id from 65520, then 65000, no host account or process has, else your own ids)");
  launch->add_option("--memory", options->memory, "memory limit (e.g. 512m, 2g)")->capture_default_str();
  launch->add_option("--pids-limit", options->pids_limit, "process limit")->capture_default_str();
  launch->add_option("--stop-timeout", options->stop_timeout_seconds, "seconds to wait for a graceful stop")->capture_default_str();
  launch->add_option("--allow", *egress_allow,
                     "a host OpenClaw may reach through tokfence's forward proxy, HOST[:PORT] (port 443 unless given;\n"
                     "*.example.com for subdomains; repeatable; none by default)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  launch->add_option("--egress-preset", *egress_presets,
                     "a named set of hosts to allow: telegram, discord, slack, whatsapp, web-search, github, npm, pypi,\n"
                     "or [egress.presets.<name>] of config.toml (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  launch->add_option("--secret", *secrets,
                     "VAR=NAME: put the placeholder of the vault secret NAME (tokfence-secret:NAME) in the container's\n"
                     "variable VAR; the proxy swaps in the secret only towards the hosts NAME is bound to (repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto telegram_secret = std::make_shared<std::string>();
  auto telegram_allow = std::make_shared<std::vector<std::string>>();
  launch->add_option("--telegram-secret", *telegram_secret,
                     "NAME: turn on OpenClaw's Telegram channel with the placeholder of the vault secret NAME as its bot\n"
                     "token (vault add NAME - --host api.telegram.org; allow the host with --egress-preset telegram)");
  launch->add_option("--telegram-allow-from", *telegram_allow,
                     "ID: a numeric Telegram user id allowed to message the bot (repeatable; none: OpenClaw's pairing)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  launch->add_option("command", options->command, "command after -- (replaces the image's command)");
  launch->callback([&ctx, options, no_pull, no_open, workspace, model, no_validate, image_cache, egress_allow,
                    egress_presets, secrets, telegram_secret, telegram_allow, launch] {
    use_configured_engine(ctx);
    if (launch->get_subcommands().size() > 0) return;  // a subcommand ran instead
    // Before the engine, the image or the daemon is touched: a typo starts nothing.
    options->egress = egress_field(ctx, *egress_allow, *egress_presets);
    options->secrets.clear();
    for (const auto& entry : *secrets) {
      auto parsed = value_or_throw(parse_secret_flag(entry, "--secret"));
      for (const auto& [var, name] : options->secrets)
        if (var == parsed.first) throw UserError("--secret: '" + entry + "': " + var + " is given twice");
      options->secrets.push_back(std::move(parsed));
    }
    options->telegram = value_or_throw(launcher::telegram_channel(*telegram_secret, *telegram_allow));
    options->pull = !*no_pull;
    options->validate_config = !*no_validate;
    if (!image_cache->empty()) options->image_cache = *image_cache;
    if (*no_open) options->open_browser = false;
    options->dashboard = options->command.empty() || launch->count("--port") > 0;
    if (!workspace->empty()) options->workspace = *workspace;
    if (!model->empty()) options->model = *model;
    ctx.exit_code = launcher::run_launch(ctx.home, ctx.config(), *options);
  });

  // Subcommands: each has its own --name / --json.
  auto status_target = std::make_shared<launcher::LaunchTarget>();
  auto* status = launch->add_subcommand("status",
                                        "Show a launch's state (exit 0 running, 3 not running).\n"
                                        "Example:\n  tokfence launch status --json");
  add_target_flags(status, *status_target);
  status->callback([&ctx, status_target] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::launch_status(ctx.home, *status_target);
  });

  auto stop_target = std::make_shared<launcher::LaunchTarget>();
  auto stop_timeout = std::make_shared<int>(10);
  auto* stop = launch->add_subcommand("stop",
                                      "Stop and remove a launch's container, sockets and config (state and workspace stay).\n"
                                      "Example:\n  tokfence launch stop --name tokfence-openclaw");
  add_target_flags(stop, *stop_target);
  stop->add_option("--timeout", *stop_timeout, "seconds before the container is killed")->capture_default_str();
  stop->callback([&ctx, stop_target, stop_timeout] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::launch_stop(ctx.home, *stop_target, *stop_timeout);
  });

  auto logs_target = std::make_shared<launcher::LaunchTarget>();
  auto follow = std::make_shared<bool>(false);
  auto tail = std::make_shared<int>(-1);
  auto raw = std::make_shared<bool>(false);
  auto* logs = launch->add_subcommand(
      "logs",
      "Print a launch's container output (control characters and escape sequences shown as '?',\n"
      "as the container chooses them; --raw for the bytes).\nExample:\n  tokfence launch logs -f --tail 50");
  logs->add_option("--name", logs_target->name, "the launch's name")->capture_default_str();
  logs->add_flag("-f,--follow", *follow, "keep streaming until the container stops");
  logs->add_option("--tail", *tail, "only the last N lines (-1 = all)")->capture_default_str();
  logs->add_flag("--raw", *raw, "the container's bytes unchanged, escape sequences included (not for a terminal)");
  logs->callback([&ctx, logs_target, follow, tail, raw] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::launch_logs(ctx.home, *logs_target, *follow, *tail, *raw);
  });

  auto restart_target = std::make_shared<launcher::LaunchTarget>();
  auto restart_timeout = std::make_shared<int>(10);
  auto* restart = launch->add_subcommand("restart",
                                         "Restart a launch's container (and the dashboard relay of a detached one).\n"
                                         "Example:\n  tokfence launch restart");
  add_target_flags(restart, *restart_target);
  restart->add_option("--timeout", *restart_timeout, "seconds before the container is killed")->capture_default_str();
  restart->callback([&ctx, restart_target, restart_timeout] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::launch_restart(ctx.home, *restart_target, *restart_timeout);
  });

  auto config_target = std::make_shared<launcher::LaunchTarget>();
  auto* config = launch->add_subcommand("config",
                                        "Print the OpenClaw config a running launch uses (no key is in it).\n"
                                        "Example:\n  tokfence launch config | jq .models.providers");
  add_target_flags(config, *config_target);
  config->callback([&ctx, config_target] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::launch_config(ctx.home, *config_target);
  });

  // launch image build|list|rm
  auto* image = launch->add_subcommand("image",
                                       "The OpenClaw images tokfence builds from npm (no container registry needed).\n"
                                       "Examples:\n  tokfence launch image build\n  tokfence launch image list\n"
                                       "  tokfence launch image rm " + launcher::default_image_tag());
  image->require_subcommand(1);
  auto build_options = std::make_shared<launcher::ImageBuildOptions>();
  auto build_cache = std::make_shared<std::string>();
  auto build_json = std::make_shared<bool>(false);
  auto* build = image->add_subcommand(
      "build",
      "Build the OpenClaw image: node and openclaw from npm, a Debian bookworm root filesystem (debootstrap),\n"
      "then an image that only copies them (no RUN, no network). Each stage is cached and checked; an image\n"
      "built from the same inputs is reused. Prints the tag.\n"
      "Example:\n  tokfence launch image build --openclaw-version " + std::string(launcher::kOpenClawVersion));
  build->add_option("--openclaw-version", build_options->openclaw_version, "npm version of openclaw")->capture_default_str();
  build->add_option("--tag", build_options->tag, "image tag (default " + std::string(launcher::kImageRepository) + ":<version>)");
  build->add_option("--cache", *build_cache, "cache directory (default ~/.cache/tokfence/openclaw-image)");
  build->add_flag("--force", build_options->force, "rebuild the image even when it is up to date (stages stay cached)");
  build->add_flag("--json", *build_json, "print JSON");
  build->callback([&ctx, build_options, build_cache, build_json] {
    use_configured_engine(ctx);
    if (!build_cache->empty()) build_options->cache = *build_cache;
    ctx.exit_code = launcher::image_build_command(*build_options, *build_json);
  });
  auto list_json = std::make_shared<bool>(false);
  auto* list = image->add_subcommand("list", "List the images tokfence built.\nExample:\n  tokfence launch image list --json");
  list->add_flag("--json", *list_json, "print JSON");
  list->callback([&ctx, list_json] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::image_list(*list_json);
  });
  auto rm_refs = std::make_shared<std::vector<std::string>>();
  auto rm_json = std::make_shared<bool>(false);
  auto* rm = image->add_subcommand("rm", "Remove images tokfence built (others are refused).\nExample:\n  tokfence launch image rm " +
                                             launcher::default_image_tag());
  rm->add_option("image", *rm_refs, "image tags or ids")->required();
  rm->add_flag("--json", *rm_json, "print JSON");
  rm->callback([&ctx, rm_refs, rm_json] {
    use_configured_engine(ctx);
    ctx.exit_code = launcher::image_remove(*rm_refs, *rm_json);
  });

  // setup openclaw
  // Another part may also add `setup <agent>`: share the group.
  CLI::App* setup = nullptr;
  for (auto* sub : app.get_subcommands({}))
    if (sub->get_name() == "setup") setup = sub;
  if (setup == nullptr)
    setup = app.add_subcommand("setup", "Print settings to point an agent at the tokfence proxy.\nExample:\n  tokfence setup openclaw --test");
  setup->require_subcommand(1);
  auto setup_options = std::make_shared<launcher::SetupOptions>();
  auto provider = std::make_shared<std::string>();
  auto* openclaw = setup->add_subcommand(
      "openclaw",
      "Print the proxy base URL for a provider and a models.providers snippet for openclaw.json;\n"
      "with --test also check daemon_reachable and provider_has_key (exit 1 when one fails).\n"
      "Example:\n  tokfence setup openclaw --provider anthropic --test");
  openclaw->add_option("--provider", *provider, "provider (default: the first with a key: anthropic, openai, google, ...)");
  openclaw->add_flag("--test", setup_options->test, "run the checks");
  openclaw->add_flag("--json", setup_options->json, "print JSON");
  openclaw->callback([&ctx, setup_options, provider] {
    use_configured_engine(ctx);
    if (!provider->empty()) setup_options->provider = *provider;
    ctx.exit_code = launcher::setup_openclaw(ctx.home, ctx.config(), *setup_options);
  });
}

}  // namespace tokfence::cli
